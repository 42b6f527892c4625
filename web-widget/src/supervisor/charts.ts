// Small SVG charts, enough for the dashboard: a line over time, stacked columns of several
// counts over time, and horizontal bars. Each has a title and a text description so screen readers
// get the figures too.

export interface Point {
  t: number;
  v: number;
}
export interface Bar {
  label: string;
  v: number;
  max: number;
}

const NS = "http://www.w3.org/2000/svg";

function el(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(w: number, h: number, title: string, desc: string): SVGSVGElement {
  const s = el("svg", { viewBox: `0 0 ${w} ${h}`, role: "img", class: "svgchart" }) as SVGSVGElement;
  s.append(el("title", {}, title), el("desc", {}, desc));
  return s;
}

export function lineChart(points: Point[], title: string): SVGSVGElement {
  const W = 480, H = 160, L = 36, B = 22, T = 10, R = 10;
  const last = points[points.length - 1];
  const s = svg(W, H, title, points.length ? `${title}: latest ${last.v}, highest ${Math.max(...points.map((p) => p.v))}` : `${title}: no data yet`);
  const max = Math.max(1, ...points.map((p) => p.v));
  const y = (v: number) => T + (H - T - B) * (1 - v / max);
  for (const v of [0, max / 2, max]) {
    s.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    s.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }
  if (points.length > 1) {
    const t0 = points[0].t, t1 = last.t;
    const x = (t: number) => L + ((W - L - R) * (t - t0)) / Math.max(1, t1 - t0);
    const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
    s.append(el("path", { d: `${d}L${x(t1)},${y(0)}L${x(t0)},${y(0)}Z`, class: "area" }));
    s.append(el("path", { d, class: "line" }));
    s.append(el("text", { x: L, y: H - 6, class: "axis" }, `${Math.round((t1 - t0) / 1000)} s ago`));
    s.append(el("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "axis" }, "now"));
  } else {
    s.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "collecting…"));
  }
  return s;
}

export interface Series {
  name: string;
  /** A CSS class giving the line its colour and dash pattern (supervisor.css, `.s-…`). */
  cls: string;
  points: Point[];
}

/**
 * Counts per interval of several series sampled at the same times, as stacked columns, the
 * newest at the right; the description reads the latest interval of each.
 */
export function stackedColumns(series: Series[], title: string, slots: number): SVGSVGElement {
  const W = 480, H = 160, L = 36, B = 22, T = 10, R = 10;
  const times = series[0]?.points.map((p) => p.t) ?? [];
  const desc = times.length
    ? `${title}: ${series.map((s) => `${s.name} ${s.points.length ? s.points[s.points.length - 1].v : 0}`).join(", ")} in the latest interval`
    : `${title}: no data yet`;
  const s = svg(W, H, title, desc);
  const totals = times.map((_, i) => series.reduce((n, x) => n + (x.points[i]?.v ?? 0), 0));
  const max = Math.max(1, ...totals);
  const y = (v: number) => T + (H - T - B) * (1 - v / max);
  for (const v of [0, max / 2, max]) {
    s.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    s.append(el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, Number.isInteger(v) ? String(v) : v.toFixed(1)));
  }
  if (!times.length) {
    s.append(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, "collecting…"));
    return s;
  }
  const n = Math.max(slots, times.length);
  const slot = (W - L - R) / n;
  times.forEach((_, i) => {
    const x = W - R - (times.length - i) * slot;
    let base = 0;
    for (const line of series) {
      const v = line.points[i]?.v ?? 0;
      if (!v) continue;
      s.append(el("rect", { x: x + slot * 0.1, width: slot * 0.8, y: y(base + v), height: y(base) - y(base + v), class: `seg ${line.cls}` }));
      base += v;
    }
  });
  s.append(el("text", { x: L, y: H - 6, class: "axis" }, `${Math.round((times[times.length - 1] - times[0]) / 1000)} s ago`));
  s.append(el("text", { x: W - R, y: H - 6, "text-anchor": "end", class: "axis" }, "now"));
  return s;
}

export function barChart(bars: Bar[], title: string): SVGSVGElement {
  const row = 28, W = 480, L = 120, R = 60;
  const H = Math.max(1, bars.length) * row + 10;
  const s = svg(W, H, title, bars.map((b) => `${b.label}: ${b.v} of ${b.max}`).join("; ") || "no agents");
  const max = Math.max(1, ...bars.map((b) => b.max));
  bars.forEach((b, i) => {
    const top = 5 + i * row;
    const full = ((W - L - R) * b.max) / max;
    s.append(el("text", { x: L - 8, y: top + 17, "text-anchor": "end", class: "label" }, b.label));
    s.append(el("rect", { x: L, y: top + 4, width: full, height: 18, rx: 3, class: "cap" }));
    s.append(el("rect", { x: L, y: top + 4, width: (full * Math.min(b.v, b.max)) / Math.max(1, b.max), height: 18, rx: 3, class: b.v >= b.max ? "bar full" : "bar" }));
    s.append(el("text", { x: L + full + 6, y: top + 17, class: "label" }, `${b.v}/${b.max}`));
  });
  if (!bars.length) s.append(el("text", { x: 10, y: 24, class: "axis" }, "No agents yet."));
  return s;
}
