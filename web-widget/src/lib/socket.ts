// The deskgate.v1 client shared by the widget and the consoles: hello with the token, resume
// from the last seq held per conversation, an outbox that re-sends unacknowledged frames by
// client_id after a reconnect (the gateway answers a repeated client_id with the original seq,
// so nothing is doubled), reconnect with backoff, and a heartbeat that notices a dead link.

export type Frame = { type: string; [k: string]: any };
export type ConnState = "connecting" | "online" | "reconnecting" | "offline" | "closed";

export interface SocketOptions {
  url: string;
  /** Returns the token for hello; called on every (re)connect. */
  token: () => Promise<string> | string;
  onFrame: (f: Frame) => void;
  onState?: (s: ConnState, detail?: string) => void;
  /** Close codes after which reconnecting cannot help (e.g. 4001, 4003). */
  onFatal?: (code: number) => void;
}

const PROTOCOL = "deskgate.v1";
const HEARTBEAT_MS = 20_000;
const PONG_GRACE_MS = 10_000;
/** How long a request made while (re)connecting waits for the connection before it fails. */
const PARK_MS = 10_000;

export class DeskSocket {
  private ws: WebSocket | null = null;
  private opts: SocketOptions;
  /** Last seq held per conversation, reported in hello.resume. */
  readonly lastSeq = new Map<number, number>();
  /** Frames with a client_id not yet answered by ack/blocked/ok/error, in send order. */
  private outbox = new Map<string, Frame>();
  private ready = false;
  private attempt = 0;
  private timer: number | undefined;
  private beat: number | undefined;
  private pongDue: number | undefined;
  private stopped = false;
  private refSeq = 0;
  private waiters = new Map<string, (f: Frame) => void>();
  /** Requests made while (re)connecting, sent once the gateway has said welcome. */
  private parked: Array<() => void> = [];
  state: ConnState = "connecting";

  constructor(opts: SocketOptions) {
    this.opts = opts;
    addEventListener("offline", () => this.drop("offline"));
    addEventListener("online", () => this.reconnectNow());
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.beat);
    this.ws?.close(1000);
    this.ws = null;
    this.setState("closed");
  }

  /** Records that `seq` of `conversation` is held; returns false for one already held. */
  accept(conversation: number, seq: number): boolean {
    const last = this.lastSeq.get(conversation) ?? 0;
    if (seq <= last) return false;
    this.lastSeq.set(conversation, seq);
    return true;
  }

  /** Sends a frame that must arrive (send, note): kept until the gateway answers it. */
  sendReliable(frame: Frame): void {
    // The client_id doubles as the ref, so that an error (which has no client_id) is matched.
    if (frame.client_id) {
      frame = { ...frame, ref: frame.client_id };
      this.outbox.set(frame.client_id, frame);
    }
    if (this.ready) this.raw(frame);
  }

  /** Sends a frame that may be lost (typing, read); dropped while offline. */
  sendLossy(frame: Frame): void {
    if (this.ready) this.raw(frame);
  }

  /** Sends a frame with a fresh ref and resolves with the gateway's direct reply. A request
   * made while (re)connecting waits up to PARK_MS for the connection, then fails unsent. */
  request(frame: Frame): Promise<Frame> {
    const ref = `r${++this.refSeq}`;
    return new Promise((resolve) => {
      const send = () => {
        this.waiters.set(ref, resolve);
        this.raw({ ...frame, ref });
      };
      if (this.ready) return send();
      if (this.stopped) return resolve({ type: "error", code: "unavailable", message: "not connected" });
      const parked = () => {
        clearTimeout(giveUp);
        send();
      };
      const giveUp = setTimeout(() => {
        this.parked = this.parked.filter((p) => p !== parked);
        resolve({ type: "error", code: "unavailable", message: "not connected" });
      }, PARK_MS);
      this.parked.push(parked);
    });
  }

  /** Requests sent on a socket that is gone get no reply: each is told so. */
  private lost(): void {
    for (const w of this.waiters.values()) w({ type: "error", code: "unavailable", message: "connection lost" });
    this.waiters.clear();
  }

  /** Says hello again at once, so that hello.resume covers conversations just learnt of. */
  resync(): void {
    if (!this.ws) return;
    this.ready = false;
    this.reconnectNow();
  }


  private raw(frame: Frame): void {
    try {
      this.ws?.send(JSON.stringify(frame));
    } catch {
      this.drop("send failed");
    }
  }

  private setState(s: ConnState, detail?: string): void {
    this.state = s;
    this.opts.onState?.(s, detail);
  }

  private async open(): Promise<void> {
    if (this.stopped) return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let token: string;
    try {
      token = await this.opts.token();
    } catch {
      this.schedule();
      return;
    }
    const ws = new WebSocket(this.opts.url, PROTOCOL);
    this.ws = ws;
    ws.onopen = () => {
      const resume = [...this.lastSeq].map(([conversation, after]) => ({ conversation, after }));
      ws.send(JSON.stringify(resume.length ? { type: "hello", token, resume } : { type: "hello", token }));
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      let f: Frame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.pongDue = undefined;
      if (f.type === "welcome") {
        this.ready = true;
        this.attempt = 0;
        this.setState("online");
        this.opts.onFrame(f);
        if (ws !== this.ws) return; // the handler asked for a fresh hello (resync)
        // Whatever was not answered before the link dropped goes again, in order.
        for (const pending of this.outbox.values()) this.raw(pending);
        const parked = this.parked;
        this.parked = [];
        for (const send of parked) send();
        this.heartbeat();
        return;
      }
      const sent = f.client_id ?? f.ref;
      if (sent && this.outbox.has(sent) && ["ack", "blocked", "error"].includes(f.type)) {
        if (f.type === "error" && f.code === "unavailable") {
          // Nothing was stored: the same client_id goes again a little later.
          const frame = this.outbox.get(sent)!;
          setTimeout(() => this.outbox.has(sent) && this.ready && this.raw(frame), 2000);
        } else this.outbox.delete(sent);
      }
      if (f.ref && this.waiters.has(f.ref)) {
        const w = this.waiters.get(f.ref)!;
        this.waiters.delete(f.ref);
        w(f);
      }
      this.opts.onFrame(f);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ready = false;
      this.ws = null;
      clearInterval(this.beat);
      this.lost();
      if (ev.code === 4001 || ev.code === 4003) {
        // The token is no good: this socket stays down (its online listener included).
        this.stopped = true;
        this.setState("closed", String(ev.code));
        this.opts.onFatal?.(ev.code);
        return;
      }
      this.schedule();
    };
  }

  private heartbeat(): void {
    clearInterval(this.beat);
    this.beat = setInterval(() => {
      if (this.pongDue !== undefined && Date.now() > this.pongDue) {
        this.drop("no answer");
        return;
      }
      this.pongDue ??= Date.now() + PONG_GRACE_MS;
      this.raw({ type: "ping" });
    }, HEARTBEAT_MS) as unknown as number;
  }

  /** Gives up on the current socket and reconnects (with backoff unless online again). */
  private drop(why: string): void {
    if (!this.ws) return;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    clearInterval(this.beat);
    ws.onclose = null;
    ws.close();
    this.lost();
    this.setState(navigator.onLine ? "reconnecting" : "offline", why);
    if (navigator.onLine) this.schedule();
  }

  private reconnectNow(): void {
    if (this.stopped || this.ready) return;
    clearTimeout(this.timer);
    this.attempt = Math.max(this.attempt, 1);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
      this.lost();
    }
    this.open();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.attempt++;
    if (!navigator.onLine) {
      this.setState("offline");
      return; // the online event reconnects
    }
    this.setState("reconnecting");
    const base = Math.min(10_000, 500 * 2 ** Math.min(this.attempt - 1, 5));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), base / 2 + Math.random() * (base / 2)) as unknown as number;
  }
}

/** A client_id unique per sender: 122 random bits in the UUID v4 form. Built from
 * getRandomValues, since crypto.randomUUID exists only on secure (https) pages and the widget
 * may be embedded on a plain http one. */
export function clientId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** ws(s):// URL of a gateway path, from the gateway's http(s) base. */
export function wsUrl(base: string, path: string): string {
  return base.replace(/^http/, "ws") + path;
}
