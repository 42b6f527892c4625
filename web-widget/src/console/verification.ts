// The customer panel's verification section: request step-up verification for one of the
// configured actions, resend a pending code, see each action's latest challenge (pending,
// approved, expired, canceled, max_attempts) and a mail failure, the verified badge counting
// down to `verified_until`, and the flag a risky first message raised. The code itself never
// reaches the console: the gateway sends staff the challenge's state only.
import { h, clear } from "../lib/dom";
import type { Frame } from "../lib/socket";

export interface Verification {
  challenge: number;
  ticket: number;
  action: string;
  state: "pending" | "approved" | "expired" | "canceled" | "max_attempts";
  attempts_left: number;
  resends_left: number;
  expires_at: string;
  verified_until: string | null;
  destination: string;
}

export interface TicketVerification {
  flagged: string | null;
  verifications: Verification[];
  actions: string[];
}

export function words(action: string): string {
  return action.replace(/_/g, " ");
}

function mmss(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return s >= 3600 ? `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, "0")}m` : `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Whether a verification currently verifies its action (the badge). */
export function live(v: Verification, now = Date.now()): boolean {
  return v.state === "approved" && v.verified_until !== null && Date.parse(v.verified_until) > now;
}

export class VerificationSection {
  readonly el: HTMLElement;
  /** The verified badges for the chat's header. */
  readonly badges: HTMLElement;
  private flag = h("p", { class: "vflag", hidden: true });
  private list = h("ul", { class: "vlist", "aria-label": "Verifications of this ticket" });
  private select = h("select", { "data-action": "verify-action" });
  private ask = h("button", { class: "secondary", type: "submit", "data-action": "request-verification" }, "Request verification");
  private msg = h("p", { class: "vmsg", role: "status", "aria-live": "polite" });
  private byAction = new Map<string, Verification>();
  private flagged: string | null = null;
  private actions: string[] = [];

  constructor(
    private ticket: number,
    private customerVerified: () => boolean,
    private request: (frame: Frame) => Promise<Frame>,
  ) {
    const id = `vsel-${ticket}`;
    this.select.id = id;
    const form = h("form", { class: "vrequest" }, h("label", { for: id }, "Action"), h("div", { class: "vrow" }, this.select, this.ask));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.requestNow();
    });
    this.badges = h("span", { class: "vbadges" });
    this.el = h("section", { class: "verification", "aria-labelledby": `vt-${ticket}` }, h("h3", { id: `vt-${ticket}` }, "Verification"), this.flag, this.list, form, this.msg);
    this.render();
  }

  /** The ticket's state from GET /api/tickets/{id}/verifications. */
  load(s: TicketVerification): void {
    this.actions = s.actions;
    if (s.flagged) this.flagged = s.flagged;
    for (const v of s.verifications) this.update(v, false);
    clear(this.select);
    for (const a of this.actions) this.select.append(h("option", { value: a }, words(a)));
    this.render();
  }

  /** A `step_up_flag` for this ticket. */
  setFlag(phrase: string): void {
    this.flagged = phrase;
    this.render();
  }

  /** A `verification` frame (or a listed state); the newest challenge of each action wins. */
  update(v: Verification, render = true): void {
    const had = this.byAction.get(v.action);
    if (had && had.challenge > v.challenge) return;
    this.byAction.set(v.action, v);
    if (render) this.render();
  }

  private say(text: string, tone: "" | "bad" | "ok" = ""): void {
    this.msg.textContent = text;
    this.msg.className = `vmsg ${tone}`;
  }

  private async requestNow(): Promise<void> {
    const action = this.select.value;
    if (!action) return;
    this.ask.disabled = true;
    this.say(`Sending a code for ${words(action)}…`);
    const r = await this.request({ type: "request_verification", ticket: this.ticket, action });
    this.ask.disabled = false;
    if (r.type === "ok") return this.say(`Code sent for ${words(action)}. Waiting for the customer to enter it.`, "ok");
    this.say(explain(r), "bad");
  }

  private async resend(v: Verification): Promise<void> {
    this.say(`Sending a new code for ${words(v.action)}…`);
    const r = await this.request({ type: "resend_verification", challenge: v.challenge });
    if (r.type === "ok") return this.say(`A new code was sent for ${words(v.action)}; the earlier one no longer works.`, "ok");
    this.say(explain(r), "bad");
  }

  /** Redraws the list and the header badges; called on changes and when a countdown ends. */
  render(): void {
    this.flag.hidden = !this.flagged;
    this.flag.textContent = this.flagged ? `Flagged for step-up: the first message asks for something risky (“${this.flagged}”). Verify the customer before acting on it.` : "";
    clear(this.list);
    clear(this.badges);
    const now = Date.now();
    const items = [...this.byAction.values()].sort((a, b) => b.challenge - a.challenge);
    if (!items.length) {
      this.list.append(
        h("li", { class: "muted" }, this.customerVerified() ? "Not verified for any action on this ticket." : "Not verified. This customer has no signed identity, so a code can only go to an address the site vouches for."),
      );
    }
    for (const v of items) {
      const li = h("li", { class: `vitem ${live(v, now) ? "approved" : v.state}`, "data-action": v.action, "data-state": live(v, now) ? "approved" : v.state === "approved" ? "expired" : v.state });
      li.append(h("strong", {}, words(v.action)), " ");
      if (live(v, now)) {
        const until = h("span", { class: "countdown", "data-until": v.verified_until! }, mmss(Date.parse(v.verified_until!) - now));
        li.append(h("span", { class: "vok" }, "✓ Verified", " · ", until, " left"));
        this.badges.append(h("span", { class: "vbadge", "data-action": v.action }, `✓ Verified: ${words(v.action)} · `, h("span", { class: "countdown", "data-until": v.verified_until! }, mmss(Date.parse(v.verified_until!) - now))));
      } else if (v.state === "pending" && Date.parse(v.expires_at) > now) {
        li.append(
          h(
            "span",
            {},
            `pending: code sent to ${v.destination} · ${v.attempts_left === 1 ? "1 attempt" : `${v.attempts_left} attempts`} left · expires in `,
            h("span", { class: "countdown", "data-until": v.expires_at }, mmss(Date.parse(v.expires_at) - now)),
          ),
        );
        if (v.resends_left > 0) {
          const b = h("button", { class: "link-dark", type: "button", "data-action": "resend-verification" }, `Resend code (${v.resends_left} left)`);
          b.addEventListener("click", () => this.resend(v));
          li.append(" ", b);
        }
      } else {
        const why: Record<string, string> = {
          approved: "verification expired",
          expired: v.verified_until ? "verification expired" : "expired: the code was not entered in time",
          pending: "expired: the code was not entered in time",
          canceled: "canceled: a newer request replaced it",
          max_attempts: "failed: too many wrong codes",
        };
        li.append(h("span", { class: "vend" }, why[v.state]));
      }
      this.list.append(li);
    }
  }

  /** Every second: counts down; a countdown that reaches zero changes the state shown. */
  tick(): void {
    const now = Date.now();
    let ended = false;
    for (const root of [this.list, this.badges]) {
      for (const el of root.querySelectorAll<HTMLElement>(".countdown")) {
        const left = Date.parse(el.dataset.until!) - now;
        if (left <= 0) ended = true;
        else el.textContent = mmss(left);
      }
    }
    if (ended) this.render();
  }
}

/** A refused request or resend, in words for the agent. */
function explain(r: Frame): string {
  switch (r.code) {
    case "mail_failed":
      return `Mail failure: ${r.message}`;
    case "cannot_verify":
      return "This customer cannot be verified: there is no email address from a signed identity on file.";
    case "locked":
      return "Verification is locked for this customer today after too many wrong codes. A supervisor has been alerted.";
    case "retry_later":
      return `Not yet: ${r.message}`;
    case "forbidden":
    case "not_found":
      return "This ticket is not assigned to you any more.";
    default:
      return r.message || "The request failed.";
  }
}
