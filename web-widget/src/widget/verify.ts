// The step-up code-entry panel: shown when the agent asks the customer to verify
// (`verification_requested`, or `welcome.verifications` after a reload), apart from the chat
// log and its compose form. The code goes out only in a `verify` frame, never as a chat
// message; the panel shows where the code went, the attempts left and a countdown to expiry.
import { h } from "../lib/dom";
import type { Strings } from "../lib/i18n";
import type { Frame } from "../lib/socket";

export interface Pending {
  ticket: number;
  challenge: number;
  action: string;
  expires_at: string;
  attempts_left: number;
  destination: string;
}

export interface VerifyPanel {
  el: HTMLElement;
  /** A challenge waiting for a code (new, resent, or listed again in welcome). */
  show(p: Pending): void;
  /** `verification_unavailable`: the code email could not be sent. */
  unavailable(f: Frame): void;
}

function mmss(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * `submit` sends the `verify` frame and resolves with the gateway's reply; `closed` is called
 * when the panel goes away (focus goes back to the chat); `attention` when a request arrives.
 */
export function verifyPanel(t: Strings, submit: (challenge: number, code: string) => Promise<Frame>, closed: () => void, attention: () => void): VerifyPanel {
  const desc = h("p", { class: "vdesc" });
  const input = h("input", {
    id: "dg-vcode",
    name: "code",
    inputmode: "numeric",
    autocomplete: "one-time-code",
    maxlength: "7",
    "aria-describedby": "dg-vmeta",
  });
  const go = h("button", { class: "primary", type: "submit" }, t.vSubmit);
  const form = h("form", { class: "vform" }, h("label", { for: "dg-vcode" }, t.vCode), h("div", { class: "vrow" }, input, go));
  const meta = h("p", { class: "vmeta", id: "dg-vmeta" });
  // Results are announced; the ticking countdown is not (it would speak every second).
  const say = h("p", { class: "vsay", role: "status", "aria-live": "polite" });
  const close = h("button", { class: "vclose", type: "button", hidden: true }, t.vClose);
  const el = h(
    "section",
    { class: "verify", "aria-labelledby": "dg-vtitle", hidden: true },
    h("h3", { id: "dg-vtitle" }, t.vTitle),
    desc,
    h("p", { class: "vnever" }, t.vNever),
    form,
    meta,
    say,
    close,
  );

  let cur: Pending | null = null;
  let ended = false;
  let timer: number | undefined;

  function tick(): void {
    if (!cur || ended) return;
    const left = Date.parse(cur.expires_at) - Date.now();
    if (left <= 0) return end(t.vExpired, "bad", false);
    meta.textContent = `${t.vLeft(cur.attempts_left)} · ${t.vExpires(mmss(left))}`;
  }

  function end(text: string, tone: "ok" | "bad", focus = true): void {
    ended = true;
    clearInterval(timer);
    form.hidden = true;
    meta.textContent = "";
    say.textContent = text;
    say.className = `vsay ${tone}`;
    close.hidden = false;
    el.dataset.state = tone === "ok" ? "approved" : "ended";
    if (focus) close.focus();
  }

  function hide(): void {
    clearInterval(timer);
    el.hidden = true;
    cur = null;
    closed();
  }
  close.addEventListener("click", hide);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!cur || ended) return;
    const code = input.value.replace(/\s/g, "");
    if (!/^[0-9]{6}$/.test(code)) {
      say.textContent = t.vSix;
      say.className = "vsay bad";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    input.value = "";
    input.removeAttribute("aria-invalid");
    go.disabled = true;
    const challenge = cur.challenge;
    let r: Frame;
    try {
      r = await submit(challenge, code);
    } finally {
      go.disabled = false;
    }
    if (!cur || cur.challenge !== challenge) return;
    if (r.type === "verification_result") {
      cur.attempts_left = r.attempts_left;
      if (r.state === "approved") return end(t.vOk, "ok");
      if (r.state === "max_attempts") return end(t.vMax, "bad");
      say.textContent = t.vWrong(r.attempts_left);
      say.className = "vsay bad";
      tick();
      input.focus();
    } else if (r.code === "locked") end(t.vLocked, "bad");
    else if (r.code === "conflict" || r.code === "not_found") end(t.vEnded, "bad");
    else {
      // Not connected or the store is busy: nothing was counted. The code stays in the field,
      // to be sent again with the button.
      if (!input.value) input.value = code;
      say.textContent = t.vRetry;
      say.className = "vsay bad";
      input.focus();
    }
  });

  function open(): void {
    el.hidden = false;
    clearInterval(timer);
    timer = setInterval(tick, 1000) as unknown as number;
    tick();
  }

  return {
    el,
    show(p: Pending): void {
      const same = cur !== null && cur.challenge === p.challenge && !ended;
      if (same && cur!.expires_at === p.expires_at) {
        // Listed again by welcome after a reconnect: nothing new to say.
        cur!.attempts_left = p.attempts_left;
        return tick();
      }
      if (!same && cur && !ended && p.challenge < cur.challenge) return; // an older one
      cur = { ...p };
      ended = false;
      form.hidden = false;
      close.hidden = true;
      el.dataset.state = "pending";
      desc.textContent = t.vIntro(t.vActions[p.action] ?? p.action.replace(/_/g, " "), p.destination);
      // The same challenge with a new expiry: the agent resent the code.
      say.textContent = same ? t.vResent : "";
      say.className = "vsay";
      open();
      attention();
      input.focus();
    },
    unavailable(f: Frame): void {
      if (f.challenge && cur && cur.challenge === f.challenge && !ended) {
        say.textContent = t.vResendFailed;
        say.className = "vsay bad";
        return;
      }
      cur = null;
      desc.textContent = "";
      open();
      end(t.vNoMail, "bad");
      attention();
    },
  };
}
