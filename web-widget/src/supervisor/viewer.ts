// The transcript viewer: a closed ticket's messages read through an approved grant, with the
// time left on the grant ticking. When the grant runs out or is revoked, the viewer takes the
// transcript off the screen (the gateway refuses further reads in any case).
import { h, clear, duration } from "../lib/dom";
import { api, ApiError } from "./http";
import { serverNow, syncServerClock, when } from "./clock";
import type { Grant } from "./grants";
import { session } from "../lib/staff";
import { openFile, size, type Att } from "../lib/files";

interface Message {
  seq: number;
  at: string;
  from: { kind: "customer" | "agent" | "system"; name: string };
  text: string;
  blocked?: boolean;
  attachment?: Att;
}
interface Transcript {
  grant: number;
  ticket: { id: number; subject: string; customer: { name: string }; closed_at: string | null };
  messages: Message[];
  expires_at: string | null;
  now: string;
}

const PAGE = 500;

const ENDED: Record<string, string> = {
  expired: "the grant expired",
  revoked: "the grant was revoked",
};

export interface Viewer {
  panel: HTMLElement;
  open(g: Grant): Promise<void>;
  /** The latest list of grants: closes the transcript if its grant is no longer approved. */
  update(list: Grant[]): void;
}

export function viewer(): Viewer {
  const heading = h("h2", { id: "viewer-h", tabindex: "-1" }, "Transcript viewer");
  const timer = h("p", { class: "timer", role: "timer", "aria-live": "off", id: "viewer-timer" });
  const status = h("p", { class: "viewer-status", role: "status", id: "viewer-status" }, "Open an approved request to read its transcript here.");
  const log = h("ol", { class: "log transcript", "aria-label": "Transcript" });
  const closeBtn = h("button", { class: "secondary small", type: "button", hidden: true }, "Close transcript");
  const panel = h(
    "section",
    { class: "card viewer", "aria-labelledby": "viewer-h", id: "viewer" },
    h("div", { class: "viewer-head" }, heading, closeBtn),
    timer,
    status,
    log,
  );
  let grantId: number | null = null;
  let expiresAt = 0;
  let ticket = 0;

  function end(why: string): void {
    if (grantId === null) return;
    grantId = null;
    clear(log);
    timer.textContent = "";
    closeBtn.hidden = true;
    status.textContent = why;
    panel.classList.add("ended");
  }

  closeBtn.addEventListener("click", () => {
    end("Transcript closed.");
    heading.textContent = "Transcript viewer";
  });

  setInterval(() => {
    if (grantId === null) return;
    const left = expiresAt - serverNow();
    if (left <= 0) end(`Access to ticket ${ticket} ended: the grant expired. The transcript is closed; ask again if you still need it.`);
    else timer.textContent = `Access ends in ${duration(left)}`;
  }, 1000);

  /** A file of the transcript, fetched through the grant (each read is audited). */
  function fileChip(grant: number, a: Att): HTMLButtonElement {
    const open = async () => {
      try {
        await openFile(`/api/grants/${grant}/attachments/${a.id}`, session()?.token ?? "", a.name);
      } catch (e) {
        status.textContent = `Could not open ${a.name}: ${(e as Error).message}`;
      }
    };
    return h("button", { class: "file secondary small", type: "button", "data-attachment": a.id, title: `Download ${a.name}`, onclick: open }, `${a.name} · ${size(a.size)}`);
  }

  function render(t: Transcript, messages: Message[]): void {
    heading.textContent = `Transcript of ticket ${t.ticket.id} (${t.ticket.customer.name})`;
    status.textContent = `Read through grant #${t.grant}; this read is in the audit log. Closed ${when(t.ticket.closed_at)}.`;
    clear(log);
    for (const m of messages) {
      const cls = m.blocked ? "msg withheld" : m.from.kind === "system" ? "msg sys" : m.from.kind === "agent" ? "msg me" : "msg";
      log.append(
        h(
          "li",
          { class: cls },
          m.from.kind !== "system" && h("span", { class: "who" }, `${m.from.name} (${m.from.kind})`),
          m.attachment ? fileChip(t.grant, m.attachment) : m.text,
          h("span", { class: "meta" }, when(m.at)),
        ),
      );
    }
    if (!messages.length) log.append(h("li", { class: "msg sys" }, "The transcript has no messages."));
  }

  return {
    panel,
    async open(g: Grant): Promise<void> {
      panel.classList.remove("ended");
      grantId = g.id;
      ticket = g.object;
      // Counted from the grant as listed until the transcript brings the gateway's clock.
      expiresAt = g.expires_at ? Date.parse(g.expires_at) : 0;
      syncServerClock(g.now);
      heading.textContent = `Transcript of ticket ${g.object}`;
      status.textContent = "Loading…";
      clear(log);
      closeBtn.hidden = false;
      panel.scrollIntoView({ block: "start" });
      heading.focus();
      try {
        const messages: Message[] = [];
        let after = 0;
        let t: Transcript;
        for (;;) {
          t = await api<Transcript>("GET", `/api/grants/${g.id}/transcript?after=${after}&limit=${PAGE}`);
          messages.push(...t.messages);
          if (t.messages.length < PAGE) break;
          after = t.messages[t.messages.length - 1].seq;
        }
        if (grantId !== g.id) return;
        syncServerClock(t.now);
        expiresAt = t.expires_at ? Date.parse(t.expires_at) : 0;
        timer.textContent = `Access ends in ${duration(expiresAt - serverNow())}`;
        render(t, messages);
      } catch (e) {
        const why = e instanceof ApiError && e.status === 409 ? e.message : e instanceof ApiError ? e.message : "the gateway could not be reached";
        end(`The transcript of ticket ${g.object} cannot be opened: ${why}.`);
      }
    },
    update(list: Grant[]): void {
      if (grantId === null) return;
      const g = list.find((x) => x.id === grantId);
      if (!g) return;
      // An approved grant only ends; it never goes back to pending.
      if (g.status === "expired" || g.status === "revoked") {
        end(`Access to ticket ${g.object} ended: ${ENDED[g.status] ?? g.status}. The transcript is closed; ask again if you still need it.`);
      } else if (g.expires_at) {
        expiresAt = Date.parse(g.expires_at);
      }
    },
  };
}
