// The chat's call bar: when a ticket of the agent's turns into a call (the customer pressed the
// widget's call button, or a phone call came in), the agent joins it here. The customer is
// heard through the jitter buffer and the agent's microphone goes back over the same leg.
// Recording can be paused for card details (with a reason) and resumed; the bar always says
// whether the call is being recorded, and a pause the step-up flow started shows up too.
import { h } from "../lib/dom";
import { api } from "../lib/staff";
import { Leg, LegError } from "../voice/leg";

interface CallView {
  call: string;
  rate: number;
  ticket: number;
  recording: number;
  paused: boolean;
  paused_by: string | null;
  agent: number | null;
}

export class CallSection {
  readonly el: HTMLElement;
  private readonly say = h("span", { class: "call-state", role: "status", "aria-live": "polite" });
  private readonly rec = h("span", { class: "call-rec", "data-recording": "on" });
  /** How loud the caller is in the agent's ear: says at a glance that audio arrives. */
  private readonly level = h("meter", { class: "call-level", min: "0", max: "1", value: "0", "aria-label": "Caller's voice level", hidden: true }) as HTMLMeterElement;
  private meterTimer: number | undefined;
  private readonly join = h("button", { class: "primary", type: "button", "data-action": "join-call" }, "Join call");
  private readonly leave = h("button", { class: "secondary", type: "button", "data-action": "leave-call", hidden: true }, "Leave call");
  private readonly reason = h("input", { class: "call-reason", "aria-label": "Reason to pause the recording", value: "card details", maxlength: "200", hidden: true });
  private readonly pause = h("button", { class: "secondary", type: "button", "data-action": "pause-recording", hidden: true }, "Pause recording");
  private readonly resume = h("button", { class: "secondary", type: "button", "data-action": "resume-recording", hidden: true }, "Resume recording");
  private call: CallView | null = null;
  leg: Leg | null = null;

  constructor(
    private readonly ticket: number,
    private readonly token: () => string,
  ) {
    this.el = h("div", { class: "callbar", hidden: true, "aria-label": "Call" }, this.say, this.level, this.rec, this.join, this.reason, this.pause, this.resume, this.leave);
    this.join.addEventListener("click", () => void this.joinCall());
    this.leave.addEventListener("click", () => this.leg?.hangup());
    this.pause.addEventListener("click", () => this.leg?.send({ type: "pause", reason: this.reason.value }));
    this.resume.addEventListener("click", () => this.leg?.send({ type: "resume" }));
  }

  /** Asks whether a call is going on in the ticket; called when the ticket changes. */
  async check(): Promise<void> {
    if (this.leg) return;
    try {
      this.call = await api<CallView>("GET", `/api/tickets/${this.ticket}/call`);
      this.el.dataset.recordingId = String(this.call.recording);
    } catch {
      this.call = null;
    }
    this.el.hidden = !this.call && !this.el.dataset.ended;
    if (this.call) {
      delete this.el.dataset.ended;
      this.say.textContent = `The customer is on a call (${this.call.rate / 1000} kHz)`;
      this.recording(!this.call.paused, this.call.paused_by);
      this.join.hidden = false;
    }
  }

  private recording(on: boolean, by?: string | null, why?: string): void {
    this.rec.dataset.recording = on ? "on" : "paused";
    this.rec.textContent = on ? "● Recording" : `Recording paused${by === "step-up" ? " for a payment verification" : ""}${why ? ` (${why})` : ""}`;
    if (this.leg) {
      this.pause.hidden = !on;
      this.reason.hidden = !on;
      this.resume.hidden = on;
    }
  }

  private async joinCall(): Promise<void> {
    if (!this.call || this.leg) return;
    this.join.hidden = true;
    this.say.textContent = "Joining…";
    try {
      this.leg = await Leg.open(location.origin, { token: this.token(), call: this.call.call }, {
        started: (f) => {
          this.el.dataset.joined = "true";
          this.level.hidden = false;
          // The counters on the bar too, for whoever looks at the page (and its tests).
          this.meterTimer = setInterval(() => {
            const st = this.leg?.stats;
            if (!st) return;
            this.level.value = Math.min(1, st.speakerPeak * 2);
            this.el.dataset.played = String(st.played);
            this.el.dataset.sent = String(st.sent);
          }, 250) as unknown as number;
          this.say.textContent = "On the call";
          this.leave.hidden = false;
          this.recording(f.recording !== "paused");
        },
        event: (f) => {
          if (f.type === "paused") this.recording(false, f.by, f.reason);
          else if (f.type === "resumed") this.recording(true);
          else if (f.type === "dtmf") this.say.textContent = `On the call · the caller pressed ${f.digit}`;
          else if (f.type === "keypad") this.say.textContent = `On the call · ${keypadText(f)}`;
          else if (f.type === "error") this.say.textContent = `On the call · ${f.message}`;
        },
        ended: (reason) => this.ended(reason),
      });
    } catch (e) {
      const kind = e instanceof LegError ? e.kind : "network";
      this.ended(kind === "microphone" ? "The call needs your microphone: allow it and join again." : "The call could not be joined.");
    }
  }

  private ended(reason: string): void {
    this.leg = null;
    clearInterval(this.meterTimer);
    this.level.hidden = true;
    delete this.el.dataset.joined;
    this.el.dataset.ended = "true";
    this.say.textContent = reason && reason !== "call ended" ? `Left the call: ${reason}` : "The call has ended.";
    for (const b of [this.leave, this.pause, this.resume, this.reason]) b.hidden = true;
    this.join.hidden = true;
    // The customer may still be on it (the agent left, or their socket dropped).
    void this.check();
  }
}

/** What the caller's code entry on their keypad came to; the console never sees the digits. */
export function keypadText(f: { keys?: number; result?: string; attempts_left?: number }): string {
  switch (f.result) {
    case undefined:
      return `the caller is keying in the code ${"●".repeat(f.keys ?? 0)}`;
    case "approved":
      return "the code the caller keyed in verified them";
    case "wrong":
      return `the code the caller keyed in is wrong (${f.attempts_left ?? 0} attempts left)`;
    case "max_attempts":
      return "the caller keyed in too many wrong codes; ask for a new verification";
    case "incomplete":
      return "the caller pressed # before six digits; they key the code again";
    case "cleared":
      return "the caller pressed * and keys the code again";
    case "not_pending":
      return "the verification the caller answered has ended; ask for a new one";
    case "locked":
      return "verification is locked for this customer today";
    case "rate_limited":
      return "the caller keyed in too many codes in a short time; they try again later";
    default:
      return "the keyed code could not be checked; the caller keys it again";
  }
}
