// The recording player: a call recording played through an approved grant. The WAV comes from
// `GET /api/grants/{id}/recording` (the gateway checks the recording against its manifest and
// decrypts it as it streams; every play is audited). It is drawn as a waveform in two lanes,
// the customer above and the agent below, with the PCI pauses shaded, and played in the page
// with a playhead. Nothing is saved to disk and no download link is made: the audio lives in
// this page's memory until the player is closed or the grant ends.
import { h, clear } from "../lib/dom";
import { api, ApiError } from "./http";
import { session } from "../lib/staff";
import type { Grant } from "./grants";

interface Pause {
  start_ms: number;
  end_ms: number | null;
  by: string;
  resumed_by: string | null;
}
interface Recording {
  id: number;
  ticket: number;
  rate: number;
  duration_ms: number;
  channels: string[];
  pauses: Pause[];
}

export interface Wav {
  rate: number;
  channels: Float32Array<ArrayBuffer>[];
}

/** A 16-bit PCM WAV as the gateway writes it (44-byte header), as float channels. */
export function parseWav(buf: ArrayBuffer): Wav {
  const v = new DataView(buf);
  const tag = (at: number) => String.fromCharCode(v.getUint8(at), v.getUint8(at + 1), v.getUint8(at + 2), v.getUint8(at + 3));
  if (tag(0) !== "RIFF" || tag(8) !== "WAVE" || v.getUint16(20, true) !== 1 || v.getUint16(34, true) !== 16) throw new Error("not a 16-bit PCM WAV");
  const n = v.getUint16(22, true);
  const rate = v.getUint32(24, true);
  const frames = Math.floor((buf.byteLength - 44) / (2 * n));
  const channels = Array.from({ length: n }, () => new Float32Array(frames));
  for (let i = 0; i < frames; i++) for (let c = 0; c < n; c++) channels[c][i] = v.getInt16(44 + (i * n + c) * 2, true) / 32768;
  return { rate, channels };
}

const LANE = 70;
const WIDTH = 900;

export interface Player {
  panel: HTMLElement;
  open(g: Grant): Promise<void>;
  /** The latest list of grants: closes the player if its grant is no longer approved. */
  update(list: Grant[]): void;
}

function mmss(s: number): string {
  return `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

export function player(): Player {
  const heading = h("h2", { id: "player-h", tabindex: "-1" }, "Recording player");
  const status = h("p", { class: "viewer-status", role: "status", id: "player-status" }, "Open an approved request for a call recording to play it here.");
  const canvas = h("canvas", { width: String(WIDTH), height: String(2 * LANE + 20), class: "waveform", role: "img", "aria-label": "Waveform", hidden: true }) as HTMLCanvasElement;
  const playBtn = h("button", { class: "primary small", type: "button", "data-action": "play", hidden: true }, "Play");
  const clock = h("span", { class: "play-clock", "aria-live": "off" });
  const legend = h("p", { class: "hint", hidden: true }, "Top: the customer. Bottom: the agent. Shaded: the recording was paused (card details); both sides are silent there.");
  const closeBtn = h("button", { class: "secondary small", type: "button", hidden: true }, "Close recording");
  const panel = h(
    "section",
    { class: "card viewer", "aria-labelledby": "player-h", id: "player" },
    h("div", { class: "viewer-head" }, heading, closeBtn),
    status,
    canvas,
    legend,
    h("div", { class: "player-controls" }, playBtn, clock),
  );
  let grantId: number | null = null;
  let wav: Wav | null = null;
  let rec: Recording | null = null;
  let ctx: AudioContext | null = null;
  let source: AudioBufferSourceNode | null = null;
  let startedAt = 0;
  let offset = 0;
  let frame = 0;

  const seconds = () => (wav ? wav.channels[0].length / wav.rate : 0);
  const position = () => (source && ctx ? Math.min(seconds(), offset + ctx.currentTime - startedAt) : offset);

  function draw(): void {
    if (!wav || !rec) return;
    const g = canvas.getContext("2d")!;
    const total = wav.channels[0].length;
    g.clearRect(0, 0, canvas.width, canvas.height);
    // The pauses, shaded across both lanes.
    g.fillStyle = "#f3e3c0";
    for (const p of rec.pauses) {
      const a = (p.start_ms / 1000) * wav.rate;
      const b = ((p.end_ms ?? rec.duration_ms) / 1000) * wav.rate;
      g.fillRect((a / total) * WIDTH, 0, ((b - a) / total) * WIDTH, 2 * LANE);
    }
    wav.channels.slice(0, 2).forEach((ch, lane) => {
      const mid = lane * LANE + LANE / 2;
      g.fillStyle = lane === 0 ? "#1f4fd1" : "#1e6b3a";
      const per = Math.max(1, Math.floor(total / WIDTH));
      // Each lane scaled to its loudest moment, so a quiet line still shows its shape.
      let peak = 0.05;
      for (let i = 0; i < total; i++) peak = Math.max(peak, Math.abs(ch[i]));
      const scale = (LANE / 2 - 2) / peak;
      for (let x = 0; x < WIDTH; x++) {
        let lo = 0, hi = 0;
        const from = Math.floor((x / WIDTH) * total);
        for (let i = from; i < Math.min(total, from + per); i++) {
          lo = Math.min(lo, ch[i]);
          hi = Math.max(hi, ch[i]);
        }
        g.fillRect(x, mid - hi * scale, 1, Math.max(1, (hi - lo) * scale));
      }
    });
    g.fillStyle = "#33405a";
    g.font = "12px system-ui, sans-serif";
    g.fillText(rec.channels[0] ?? "customer", 4, 12);
    g.fillText(rec.channels[1] ?? "agent", 4, LANE + 12);
    g.fillText(mmss(seconds()), WIDTH - 32, 2 * LANE + 16);
    const x = (position() / Math.max(seconds(), 0.001)) * WIDTH;
    g.fillStyle = "#b3261e";
    g.fillRect(x, 0, 2, 2 * LANE);
    clock.textContent = `${mmss(position())} / ${mmss(seconds())}`;
    panel.dataset.position = position().toFixed(2);
  }

  function stop(): void {
    if (source) {
      offset = position();
      source.onended = null;
      source.stop();
      source = null;
    }
    cancelAnimationFrame(frame);
    playBtn.textContent = "Play";
  }

  async function play(): Promise<void> {
    if (!wav) return;
    if (source) return stop();
    ctx ??= new AudioContext({ sampleRate: wav.rate });
    await ctx.resume();
    const buffer = ctx.createBuffer(wav.channels.length, wav.channels[0].length, wav.rate);
    wav.channels.forEach((c, i) => buffer.copyToChannel(c, i));
    if (offset >= seconds()) offset = 0;
    source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    source.onended = () => {
      source = null;
      offset = 0;
      playBtn.textContent = "Play";
      draw();
    };
    startedAt = ctx.currentTime;
    source.start(0, offset);
    playBtn.textContent = "Pause";
    const loop = () => {
      draw();
      if (source) frame = requestAnimationFrame(loop);
    };
    loop();
  }
  playBtn.addEventListener("click", () => void play());

  function end(why: string): void {
    if (grantId === null) return;
    grantId = null;
    stop();
    wav = null;
    rec = null;
    offset = 0;
    void ctx?.close();
    ctx = null;
    canvas.hidden = true;
    legend.hidden = true;
    playBtn.hidden = true;
    closeBtn.hidden = true;
    clock.textContent = "";
    status.textContent = why;
    panel.classList.add("ended");
  }
  closeBtn.addEventListener("click", () => {
    end("Recording closed.");
    heading.textContent = "Recording player";
  });

  return {
    panel,
    async open(g: Grant): Promise<void> {
      if (grantId !== null) end("");
      panel.classList.remove("ended");
      grantId = g.id;
      heading.textContent = `Recording ${g.object}`;
      status.textContent = "Loading and checking the recording…";
      closeBtn.hidden = false;
      panel.scrollIntoView({ block: "start" });
      heading.focus();
      try {
        const r = await fetch(`/api/grants/${g.id}/recording`, { headers: { authorization: `Bearer ${session()?.token ?? ""}` } });
        if (!r.ok) {
          const body = await r.json().catch(() => null);
          throw new ApiError(r.status, body?.error?.code ?? "error", body?.error?.message ?? `HTTP ${r.status}`);
        }
        const audio = parseWav(await r.arrayBuffer());
        const info = await api<Recording>("GET", `/api/recordings/${g.object}`);
        if (grantId !== g.id) return;
        wav = audio;
        rec = info;
        panel.dataset.durationMs = String(info.duration_ms);
        heading.textContent = `Recording ${info.id} of ticket ${info.ticket}`;
        const paused = info.pauses.length ? `, paused ${info.pauses.length === 1 ? "once" : `${info.pauses.length} times`}` : "";
        status.textContent = `Played through grant #${g.id}; this play is in the audit log. ${mmss(seconds())} at ${audio.rate / 1000} kHz${paused}.`;
        canvas.hidden = false;
        legend.hidden = false;
        playBtn.hidden = false;
        canvas.setAttribute("aria-label", `Waveform of the customer and the agent, ${mmss(seconds())}${paused}`);
        draw();
        clear(clock);
        clock.textContent = `0:00 / ${mmss(seconds())}`;
      } catch (e) {
        const why = e instanceof ApiError ? e.message : "the gateway could not be reached";
        end(`Recording ${g.object} cannot be played: ${why}.`);
      }
    },
    update(list: Grant[]): void {
      if (grantId === null) return;
      const g = list.find((x) => x.id === grantId);
      if (g && (g.status === "expired" || g.status === "revoked")) end(`Access to recording ${g.object} ended: the grant ${g.status === "expired" ? "expired" : "was revoked"}. The recording is closed.`);
    },
  };
}
