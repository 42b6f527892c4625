// One leg of a call in the browser, for the widget (the customer) and the agent console: the
// microphone (with echo cancellation, noise suppression and gain control) through an
// AudioWorklet as 16 kHz mono PCM16 in 20 ms frames over /media/pcm, and the other side's
// audio played through a jitter buffer of about 60 ms (capped at 200 ms, the oldest dropped).
import { wsUrl } from "../lib/socket";

export const RATE = 16000;
const JITTER = { frameMs: 20, targetMs: 60, capMs: 200 };

export interface LegStats {
  sent: number;
  received: number;
  played: number;
  underruns: number;
  dropped: number;
  bufferedMs: number;
  micPeak: number;
  speakerPeak: number;
}

export interface LegHandlers {
  /** The gateway's `started` frame (the call id, ticket, rate, recording state). */
  started(f: Record<string, any>): void;
  /** Any other control frame: `paused`, `resumed`, `dtmf`, `keypad`, `mark`, `clear`, `error`. */
  event(f: Record<string, any>): void;
  /** The leg is over: the call ended, or the socket closed (with the gateway's reason). */
  ended(reason: string): void;
}

/** Why a leg could not start, for the page to say. */
export class LegError extends Error {
  constructor(readonly kind: "microphone" | "unsupported" | "network") {
    super(kind);
  }
}

export class Leg {
  stats: LegStats | null = null;
  private live = false;
  private done = false;

  private constructor(
    private readonly ws: WebSocket,
    private readonly ctx: AudioContext,
    private readonly mic: MediaStream,
    private readonly node: AudioWorkletNode,
    private readonly handlers: LegHandlers,
    private readonly echoMarks: boolean,
  ) {}

  /**
   * Captures the microphone and opens the leg with `start` as its start frame (`token`,
   * `call` or `leg`); `base` is the gateway's origin.
   */
  static async open(base: string, start: Record<string, unknown>, handlers: LegHandlers): Promise<Leg> {
    if (!navigator.mediaDevices?.getUserMedia || typeof AudioWorkletNode === "undefined") throw new LegError("unsupported");
    let mic: MediaStream;
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
      });
    } catch {
      throw new LegError("microphone");
    }
    const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    let node: AudioWorkletNode;
    try {
      await ctx.audioWorklet.addModule(`${base}/assets/voice-worklet.js`);
      node = new AudioWorkletNode(ctx, "deskgate-pcm", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: JITTER,
      });
    } catch {
      mic.getTracks().forEach((t) => t.stop());
      await ctx.close();
      throw new LegError("unsupported");
    }
    ctx.createMediaStreamSource(mic).connect(node);
    node.connect(ctx.destination);
    await ctx.resume();
    const ws = new WebSocket(wsUrl(base, "/media/pcm"));
    ws.binaryType = "arraybuffer";
    const leg = new Leg(ws, ctx, mic, node, handlers, start.leg === "customer");
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", codec: "pcm16", rate: RATE, ...start }));
    ws.onmessage = (e) => leg.onMessage(e.data);
    ws.onclose = (e) => leg.finish(e.reason || (e.code === 1000 ? "" : `closed (${e.code})`));
    node.port.onmessage = (e) => {
      if (e.data.frame && leg.live && ws.readyState === WebSocket.OPEN) ws.send(e.data.frame);
      else if (e.data.stats) leg.stats = e.data.stats;
    };
    return leg;
  }

  private onMessage(data: ArrayBuffer | string): void {
    if (typeof data !== "string") {
      this.node.port.postMessage({ play: data }, [data]);
      return;
    }
    let f: Record<string, any>;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (f.type === "started") {
      this.live = true;
      this.handlers.started(f);
    } else if (f.type === "ended") {
      this.finish("");
    } else {
      if (f.type === "clear") this.node.port.postMessage({ clear: true });
      // A customer's leg plays as it receives, so a mark is reached as soon as it arrives.
      if (f.type === "mark" && this.echoMarks) this.send({ type: "mark", name: f.name });
      this.handlers.event(f);
    }
  }

  /** A control frame (`pause`, `resume`, `hangup`, …). */
  send(f: Record<string, unknown>): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
  }

  /** Leaves the call: the customer's leg hangs up, the agent's leaves it. */
  hangup(): void {
    if (this.echoMarks) this.send({ type: "hangup" });
    this.ws.close(1000);
    this.finish("");
  }

  private finish(reason: string): void {
    if (this.done) return;
    this.done = true;
    this.live = false;
    this.mic.getTracks().forEach((t) => t.stop());
    this.node.disconnect();
    void this.ctx.close();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    this.handlers.ended(reason);
  }
}
