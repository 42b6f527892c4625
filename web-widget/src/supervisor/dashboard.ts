// The live dashboard: queue depth, longest wait, agents online and their load (for roles that
// see the queue), and, for everyone on this page, card numbers blocked and step-up
// verification outcomes over time. Figures come from /api/queue, /api/tickets, /api/users and
// /metrics, sampled every five seconds and at once when the staff socket reports a queue change.
import { h, clear, duration } from "../lib/dom";
import { api, type User } from "../lib/staff";
import { lineChart, barChart, stackedColumns, type Point, type Series } from "./charts";
import { can } from "./perms";

interface QueueView {
  stats: { queued: number; assigned: number; resolved: number; longest_wait_ms: number };
  agents_online: number;
  /** Over every node when the gateway runs as several. */
  agents: { id: number; connections: number; nodes: number }[];
}
interface Ticket {
  id: number;
  status: string;
  agent: { id: number; name: string } | null;
}

const SAMPLE_MS = 5000;
const KEEP = 120; // samples on the time charts: ten minutes

/** The outcomes of `deskgate_verifications_total`, in the order the legend lists them. */
export const OUTCOMES: [string, string][] = [
  ["approved", "Approved"],
  ["failed_code", "Wrong code"],
  ["expired", "Code after expiry"],
  ["max_attempts", "Out of attempts"],
  ["mail_failed", "Email not sent"],
  ["locked", "Locked for the day"],
];

function metric(text: string, name: string, labels = ""): number | null {
  const esc = (labels ? `${name}{${labels}}` : name).replace(/[{}"]/g, "\\$&");
  const m = text.match(new RegExp(`^${esc} ([0-9.e+-]+)$`, "m"));
  return m ? Number(m[1]) : null;
}

/** A counter sampled over time: each point is what it grew by since the previous sample. */
class Rate {
  points: Point[] = [];
  total: number | null = null;
  add(t: number, value: number | null): void {
    if (value === null) return;
    if (this.total !== null) this.points.push({ t, v: Math.max(0, value - this.total) });
    if (this.points.length > KEEP) this.points.shift();
    this.total = value;
  }
}

export interface Dashboard {
  panel: HTMLElement;
  /** Samples again shortly (a queue event arrived). */
  poke(): void;
}

export function dashboard(role: string, onError: (what: string) => void): Dashboard {
  const seesQueue = can(role, "view_queue");
  const tiles = {
    depth: h("strong", { "data-tile": "depth" }, "–"),
    longest: h("strong", { "data-tile": "longest" }, "–"),
    online: h("strong", { "data-tile": "online" }, "–"),
    assigned: h("strong", { "data-tile": "assigned" }, "–"),
  };
  const tile = (label: string, v: HTMLElement) => h("div", { class: "tile" }, h("span", {}, label), v);
  const depthChart = h("figure", { class: "chart" });
  const loadChart = h("figure", { class: "chart" });
  const onlineList = h("ul", { class: "online", "data-list": "online", "aria-label": "Agents online now" });
  const blockedChart = h("figure", { class: "chart", "data-chart": "blocked" });
  const outcomesChart = h("figure", { class: "chart", "data-chart": "verifications" });
  const card = (id: string, title: string, body: HTMLElement) =>
    h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), body);

  const panel = h(
    "div",
    { class: "dash" },
    seesQueue &&
      h("section", { class: "tiles", "aria-label": "Now" }, tile("Queue depth", tiles.depth), tile("Longest wait", tiles.longest), tile("Agents online", tiles.online), tile("Chats in progress", tiles.assigned)),
    seesQueue && card("c1", "Queue depth, last 10 minutes", depthChart),
    seesQueue && card("c2", "Agents and their load", h("div", {}, loadChart, h("h3", {}, "Online now"), onlineList)),
    card("c3", "Card numbers blocked, per 5 seconds", blockedChart),
    card("c4", "Verification outcomes, per 5 seconds", outcomesChart),
  );

  const depth: Point[] = [];
  const blocked = new Rate();
  const outcomes = new Map(OUTCOMES.map(([k]) => [k, new Rate()]));
  let longestSince: number | null = null;

  function drawCounters(now: number, text: string): void {
    blocked.add(now, metric(text, "deskgate_messages_blocked_total"));
    for (const [k, r] of outcomes) r.add(now, metric(text, "deskgate_verifications_total", `outcome="${k}"`));
    clear(blockedChart);
    blockedChart.append(lineChart(blocked.points, "Blocked card numbers"), h("figcaption", {}, `total since the gateway started: ${blocked.total ?? 0}`));
    const series: Series[] = OUTCOMES.map(([k, name]) => ({ name, cls: `s-${k}`, points: outcomes.get(k)!.points }));
    const svg = stackedColumns(series, "Verification outcomes", 24);
    // The highest of each outcome in the window, for readers of the description.
    svg.querySelector("desc")!.textContent += `; highest per interval: ${OUTCOMES.map(([k, name]) => `${name} ${Math.max(0, ...outcomes.get(k)!.points.map((p) => p.v))}`).join(", ")}`;
    clear(outcomesChart);
    outcomesChart.append(
      svg,
      h(
        "figcaption",
        {},
        "Totals since the gateway started:",
        h(
          "ul",
          { class: "legend" },
          OUTCOMES.map(([k, name]) => h("li", {}, h("span", { class: `swatch s-${k}`, "aria-hidden": "true" }), `${name} `, h("strong", { "data-outcome": k }, String(outcomes.get(k)!.total ?? 0)))),
        ),
      ),
    );
  }

  async function sampleQueue(now: number): Promise<void> {
    const [q, users, assigned] = await Promise.all([
      api<QueueView>("GET", "/api/queue"),
      api<User[]>("GET", "/api/users"),
      api<Ticket[]>("GET", "/api/tickets?status=assigned&limit=500"),
    ]);
    depth.push({ t: now, v: q.stats.queued });
    if (depth.length > KEEP) depth.shift();
    // The gateway measures the wait on its own clock; this page only ticks it on.
    longestSince = q.stats.queued > 0 ? Date.now() - q.stats.longest_wait_ms : null;
    tiles.depth.textContent = String(q.stats.queued);
    tiles.online.textContent = String(q.agents_online);
    tiles.assigned.textContent = String(q.stats.assigned);
    tick();
    const load = new Map<number, number>();
    for (const t of assigned) if (t.agent) load.set(t.agent.id, (load.get(t.agent.id) ?? 0) + 1);
    // Agents and leads, and anyone else (a supervisor, an admin) who holds chats right now.
    const agents = users.filter((u) => u.active !== false && (["agent", "lead"].includes(u.role) || load.has(u.id)));
    clear(loadChart);
    loadChart.append(
      barChart(agents.map((u) => ({ label: u.name, v: load.get(u.id) ?? 0, max: u.capacity })), "Open chats per agent against capacity"),
      h("figcaption", {}, `${agents.length} ${agents.length === 1 ? "agent" : "agents"}; each bar shows open chats out of capacity`),
    );
    const names = new Map(users.map((u) => [u.id, u.name]));
    const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"}`;
    clear(onlineList);
    onlineList.append(
      ...(q.agents.length
        ? q.agents.map((a) =>
            h("li", { "data-agent": String(a.id) }, h("strong", {}, names.get(a.id) ?? `user ${a.id}`), ` ${plural(a.connections, "console")} open`, a.nodes > 1 ? ` on ${plural(a.nodes, "node")}` : ""),
          )
        : [h("li", {}, "Nobody has a console open.")]),
    );
    clear(depthChart);
    depthChart.append(lineChart(depth, "Queued tickets"), h("figcaption", {}, `now ${q.stats.queued} waiting; sampled every 5 s`));
  }

  async function sample(): Promise<void> {
    const now = Date.now();
    try {
      const metrics = await fetch("/metrics").then((r) => r.text());
      drawCounters(now, metrics);
      if (seesQueue) await sampleQueue(now);
    } catch {
      onError("Cannot load figures");
    }
  }

  function tick(): void {
    tiles.longest.textContent = longestSince === null ? "none waiting" : duration(Date.now() - longestSince);
  }
  setInterval(tick, 1000);
  setInterval(sample, SAMPLE_MS);
  sample();

  let pending: number | undefined;
  return {
    panel,
    poke() {
      clearTimeout(pending);
      pending = setTimeout(sample, 200) as unknown as number;
    },
  };
}
