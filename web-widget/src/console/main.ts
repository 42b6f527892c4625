// The agent console: the live queue with ticking waits, claim, chats in tabs, the customer
// panel (masked contact details with a reveal that asks for a reason, step-up verification
// with the verified badge, earlier tickets, internal notes),
// transfer, resolve, keyboard shortcuts. Everything live comes over /ws/agent (deskgate.v1);
// history and lists over the REST API.
import { h, clear, duration, clock } from "../lib/dom";
import { DeskSocket, clientId, wsUrl, type Frame, type ConnState } from "../lib/socket";
import { login, logout, api, type Session, type User } from "../lib/staff";
import { VerificationSection, type TicketVerification } from "./verification";
import { ContactSection } from "./contact";
import { CallSection } from "./call";
import { ACCEPT, openFile, size, upload, type Att } from "../lib/files";

interface Ticket {
  id: number;
  conversation: number;
  status: string;
  priority: string;
  subject: string;
  customer: { id: number; name: string; verified: boolean };
  agent: { id: number; name: string } | null;
  queued_at: string;
  created_at: string;
  last_seq: number;
  customer_read_seq: number;
  agent_read_seq: number;
  kind?: "chat" | "call";
}
interface Msg {
  seq?: number;
  kind: string;
  name: string;
  text: string;
  at?: string;
  blocked?: boolean;
  pending?: boolean;
  att?: Att;
}
interface Note {
  id: number;
  at: string;
  author: { id: number; name: string };
  text: string;
}
interface Chat {
  ticket: Ticket;
  messages: Map<number, Msg>;
  pending: Map<string, Msg>;
  notes: Note[];
  customerTyping: boolean;
  customerRead: number;
  history: Ticket[] | null;
  view: ChatView | null;
  unread: number;
  /** Built with the chat, so verification frames are kept before its tab is first shown. */
  verify: VerificationSection;
  /** Masked email and phone, with Reveal for roles that may. */
  contact: ContactSection;
  /** The call going on in the ticket, if any. */
  call: CallSection;
}
interface ChatView {
  panel: HTMLElement;
  log: HTMLElement;
  typing: HTMLElement;
  input: HTMLTextAreaElement;
  alert: HTMLElement;
  /** "This was recorded": shown once a copy or an export has its audit entry. */
  recorded: HTMLElement;
  customer: HTMLElement;
  /**
   * What re-renders of the customer panel fill; everything else in it (the note form, the
   * verification and contact sections) is built once, so what an agent is typing or has
   * focused there survives notes and history arriving.
   */
  facts: HTMLElement;
  history: HTMLElement;
  notes: HTMLElement;
}

const app = document.getElementById("app")!;

async function main(): Promise<void> {
  const s = await login(app, "Agent console");
  run(s);
}

function run(s: Session): void {
  const queue = new Map<number, Ticket>();
  const chats = new Map<number, Chat>();
  let current: number | null = null;
  let colleagues: User[] = [];
  let me = s.user;
  /** Tickets a risky first message flagged for step-up (`step_up_flag`), with the phrase. */
  const flags = new Map<number, string>();

  // --- layout -------------------------------------------------------------------------------
  const state = h("span", { class: "conn", role: "status", "aria-live": "polite" }, "Connecting…");
  const queueList = h("ul", { class: "queue-list", "aria-label": "Queued tickets", tabindex: "-1" });
  const queueCount = h("span", { class: "count" }, "0");
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Your chats" });
  const panels = h("div", { class: "panels" });
  const empty = h("p", { class: "empty" }, "No chat open. Claim a ticket from the queue (Alt+C claims the longest waiting).");
  const help = h(
    "dl",
    { class: "shortcuts", "aria-label": "Keyboard shortcuts" },
    ...[
      ["Alt+C", "claim the next ticket"],
      ["Alt+1…9", "switch chat"],
      ["Alt+Q", "go to the queue"],
      ["Alt+N", "write a note"],
      ["Alt+T", "transfer"],
      ["Alt+R", "resolve"],
      ["Enter", "send (Shift+Enter: new line)"],
    ].flatMap(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)]),
  );
  const logoutBtn = h("button", { class: "link", type: "button" }, "Log out");
  logoutBtn.addEventListener("click", () => logout());
  clear(app);
  app.append(
    h(
      "header",
      { class: "top" },
      h("h1", {}, "deskgate ", h("span", { class: "sub" }, "Agent console")),
      state,
      h("span", { class: "who" }, `${me.name} (${me.role})`),
      logoutBtn,
    ),
    h(
      "div",
      { class: "console" },
      h("nav", { class: "queue", "aria-labelledby": "queue-title" }, h("h2", { id: "queue-title" }, "Queue ", queueCount), queueList, help),
      h("main", { class: "work", "aria-label": "Chats" }, tabs, panels, empty),
    ),
  );

  // --- queue --------------------------------------------------------------------------------
  function renderQueue(): void {
    clear(queueList);
    const list = [...queue.values()].sort((a, b) => a.queued_at.localeCompare(b.queued_at));
    queueCount.textContent = String(list.length);
    if (!list.length) queueList.append(h("li", { class: "empty" }, "Nobody is waiting."));
    for (const t of list) {
      const claim = h("button", { class: "primary small", type: "button", "aria-label": `Claim ticket ${t.id}: ${t.subject}` }, "Claim");
      claim.addEventListener("click", () => doClaim(t.id));
      queueList.append(
        h(
          "li",
          { class: `qitem prio-${t.priority}`, "data-ticket": t.id },
          h("div", { class: "qsubject" }, t.subject || "(no subject)"),
          h(
            "div",
            { class: "qmeta" },
            `#${t.id} · ${t.customer.name}${t.customer.verified ? " ✓" : ""} · `,
            h("span", { class: "wait", "data-since": t.queued_at }, duration(Date.now() - Date.parse(t.queued_at))),
            t.priority !== "normal" ? ` · ${t.priority}` : "",
            flags.has(t.id) ? h("span", { class: "qflag", title: `First message: “${flags.get(t.id)}”` }, " · verify first") : "",
          ),
          claim,
        ),
      );
    }
  }
  // Waits and verification countdowns tick every second without re-rendering (focus stays).
  setInterval(() => {
    for (const el of queueList.querySelectorAll<HTMLElement>(".wait")) {
      el.textContent = duration(Date.now() - Date.parse(el.dataset.since!));
    }
    for (const c of chats.values()) c.verify.tick();
  }, 1000);

  async function doClaim(id: number): Promise<void> {
    const r = await sock.request({ type: "claim", ticket: id });
    if (r.type === "error") flash(r.code === "conflict" ? "Someone else took that ticket." : r.message);
  }

  // --- chats --------------------------------------------------------------------------------
  function chatFor(t: Ticket): Chat {
    let c = chats.get(t.id);
    if (!c) {
      const verify = new VerificationSection(t.id, () => chats.get(t.id)?.ticket.customer.verified ?? false, (f) => sock.request(f));
      const contact = new ContactSection(t.customer.id, me.role, String(t.id));
      const call = new CallSection(t.id, () => s.token);
      c = { ticket: t, messages: new Map(), pending: new Map(), notes: [], customerTyping: false, customerRead: t.customer_read_seq, history: null, view: null, unread: 0, verify, contact, call };
      chats.set(t.id, c);
      if (t.kind === "call") void call.check();
      contact.load();
      if (flags.has(t.id)) verify.setFlag(flags.get(t.id)!);
      loadVerification(c);
      // History comes through sync; the socket resumes it after a reconnect.
      sock.sendLossy({ type: "sync", ticket: t.id, after: sock.lastSeq.get(t.conversation) ?? 0 });
      sock.lastSeq.set(t.conversation, sock.lastSeq.get(t.conversation) ?? 0);
      loadNotes(c);
      loadHistory(c);
    } else {
      if (t.kind === "call") void c.call.check();
      c.ticket = t;
    }
    return c;
  }

  function renderTabs(): void {
    clear(tabs);
    let i = 0;
    for (const c of chats.values()) {
      i++;
      const selected = c.ticket.id === current;
      const tab = h(
        "button",
        {
          class: "tab",
          role: "tab",
          type: "button",
          id: `tab-${c.ticket.id}`,
          "aria-selected": String(selected),
          "aria-controls": `panel-${c.ticket.id}`,
          tabindex: selected ? "0" : "-1",
        },
        `${i}. ${c.ticket.customer.name}`,
        c.unread ? h("span", { class: "badge", "aria-label": `${c.unread} new` }, String(c.unread)) : null,
      );
      tab.addEventListener("click", () => select(c.ticket.id));
      tab.addEventListener("keydown", (e) => {
        const ids = [...chats.keys()];
        const at = ids.indexOf(c.ticket.id);
        if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
          e.preventDefault();
          const next = ids[(at + (e.key === "ArrowRight" ? 1 : ids.length - 1)) % ids.length];
          select(next);
          document.getElementById(`tab-${next}`)?.focus();
        }
      });
      tabs.append(tab);
    }
    empty.hidden = chats.size > 0;
  }

  function select(id: number): void {
    current = id;
    const c = chats.get(id);
    if (c) c.unread = 0;
    for (const other of chats.values()) if (other.view) other.view.panel.hidden = other.ticket.id !== id;
    if (c) {
      view(c).panel.hidden = false;
      markRead(c);
    }
    renderTabs();
  }

  function view(c: Chat): ChatView {
    if (c.view) return c.view;
    const t = c.ticket;
    const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": `Conversation with ${t.customer.name}`, tabindex: "0" });
    const typing = h("div", { class: "typing", "aria-live": "polite" });
    const alert = h("div", { class: "alert", role: "alert", hidden: true });
    const input = h("textarea", { class: "reply", "aria-label": "Reply to the customer", placeholder: "Reply to the customer", maxlength: "8000" });
    const send = h("button", { class: "primary", type: "submit" }, "Send");
    const picker = h("input", { type: "file", accept: ACCEPT, hidden: true, tabindex: "-1", "aria-hidden": "true" });
    const attach = h("button", { class: "secondary", type: "button", "data-action": "attach" }, "Attach file");
    const progress = h("span", { class: "upload-progress", role: "status", "aria-live": "polite" });
    attach.addEventListener("click", () => picker.click());
    picker.addEventListener("change", async () => {
      const file = picker.files?.[0];
      picker.value = "";
      if (!file) return;
      attach.disabled = true;
      progress.textContent = "Uploading… 0%";
      const r = await upload(`/api/tickets/${t.id}/attachments`, s.token, file, (pct) => (progress.textContent = `Uploading… ${pct}%`));
      attach.disabled = false;
      progress.textContent = "";
      if (r.status !== 200 && r.status !== 201) showAlert(c, r.body?.error?.message || `Upload failed (HTTP ${r.status})`);
      attach.focus();
    });
    const form = h("form", { class: "compose" }, attach, picker, input, send, progress);
    let typingSent = 0;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      const id = clientId();
      c.pending.set(id, { kind: "agent", name: me.name, text, pending: true });
      sock.sendReliable({ type: "send", ticket: t.id, client_id: id, text });
      sock.sendLossy({ type: "typing", ticket: t.id, active: false });
      typingSent = 0;
      input.value = "";
      renderLog(c);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    input.addEventListener("input", () => {
      if (Date.now() - typingSent > 3000) {
        typingSent = Date.now();
        sock.sendLossy({ type: "typing", ticket: t.id, active: true });
      }
    });
    const resolve = h("button", { class: "secondary", type: "button", "data-action": "resolve" }, "Resolve");
    const exportBtn = h("button", { class: "secondary", type: "button", "data-action": "export" }, "Export transcript");
    exportBtn.addEventListener("click", () => exportTranscript(c));
    resolve.addEventListener("click", async () => {
      const r = await sock.request({ type: "resolve", ticket: t.id });
      if (r.type === "error") showAlert(c, r.message);
    });
    const target = h("select", { "aria-label": "Transfer to", "data-action": "transfer-target" });
    const transfer = h("button", { class: "secondary", type: "button", "data-action": "transfer" }, "Transfer");
    transfer.addEventListener("click", async () => {
      const to = target.value === "" ? null : Number(target.value);
      const r = await sock.request({ type: "transfer", ticket: t.id, to });
      if (r.type === "error") showAlert(c, r.code === "capacity" ? "That agent is at their limit of chats." : r.message);
    });
    const refreshTargets = () => {
      clear(target);
      target.append(h("option", { value: "" }, "Back to the queue"));
      for (const u of colleagues) if (u.id !== me.id && u.active !== false && ["agent", "lead"].includes(u.role)) target.append(h("option", { value: u.id }, u.name));
    };
    refreshTargets();
    target.addEventListener("focus", refreshTargets);
    const noteInput = h("textarea", { class: "note-input", "aria-label": "Internal note", placeholder: "Internal note (staff only)", maxlength: "8000" });
    const noteForm = h("form", { class: "note-form" }, noteInput, h("button", { class: "secondary", type: "submit" }, "Add note"));
    noteForm.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = noteInput.value.trim();
      if (!text) return;
      sock.sendReliable({ type: "note", ticket: t.id, client_id: clientId(), text });
      noteInput.value = "";
    });
    const facts = h("div", {});
    const history = h("div", {});
    const notes = h("div", {});
    const customer = h(
      "aside",
      { class: "customer", "aria-label": "Customer" },
      h("h3", {}, "Customer"),
      facts,
      c.contact.el,
      c.verify.el,
      h("h3", {}, "Earlier tickets"),
      history,
      h("h3", {}, "Notes"),
      notes,
      noteForm,
    );
    const recorded = h("p", { class: "recorded-notice", role: "status", "aria-live": "polite", hidden: true });
    const panel = h(
      "section",
      { class: "chat", role: "tabpanel", id: `panel-${t.id}`, "aria-labelledby": `tab-${t.id}`, hidden: true },
      h(
        "div",
        { class: "thread" },
        h("div", { class: "chat-head" }, h("h2", {}, `#${t.id} ${t.subject}`), c.verify.badges, h("div", { class: "actions" }, target, transfer, exportBtn, resolve)),
        c.call.el,
        recorded,
        log,
        typing,
        alert,
        form,
      ),
      customer,
    );
    // Copying out of the transcript or the customer panel is recorded before the notice says
    // so. What the agent types (reply, note, reason) is theirs and not reported.
    panel.addEventListener("copy", (e) => {
      const target = e.target as HTMLElement | null;
      if (target && /^(TEXTAREA|INPUT|SELECT)$/.test(target.tagName)) return;
      const sel = document.getSelection();
      const copied = sel?.toString() ?? "";
      const at = sel?.anchorNode ?? null;
      if (!copied.trim() || !at) return;
      const source = log.contains(at) ? "transcript" : customer.contains(at) ? "customer" : null;
      if (source) recordCopy(c, source, [...copied].length);
    });
    panels.append(panel);
    c.view = { panel, log, typing, input, alert, recorded, customer, facts, history, notes };
    renderLog(c);
    renderCustomer(c);
    return c.view;
  }

  /** Writes the audit entry of a copy or an export; `null` (and an alert) if it was not written. */
  async function recordExport(c: Chat, body: Record<string, unknown>): Promise<{ audit_seq: number } | null> {
    try {
      return await api<{ audit_seq: number }>("POST", `/api/tickets/${c.ticket.id}/exports`, body);
    } catch (e) {
      showAlert(c, `Could not record this in the audit log (${(e as Error).message}).`);
      return null;
    }
  }

  function showRecorded(c: Chat, text: string): void {
    const v = view(c);
    v.recorded.textContent = text;
    v.recorded.hidden = false;
  }

  async function recordCopy(c: Chat, source: "transcript" | "customer", chars: number): Promise<void> {
    const r = await recordExport(c, { kind: "copy", source, chars });
    if (r) showRecorded(c, `Copying customer data is recorded: your copy from the ${source === "transcript" ? "conversation" : "customer panel"} is audit entry ${r.audit_seq}.`);
  }

  /** The open ticket's conversation as plain text, after its export is recorded. */
  async function exportTranscript(c: Chat): Promise<void> {
    const r = await recordExport(c, { kind: "transcript" });
    if (!r) return;
    const t = c.ticket;
    const lines = [`Ticket #${t.id}: ${t.subject}`, `Customer: ${t.customer.name} (id ${t.customer.id})`, `Exported by ${me.name} at ${new Date().toISOString()} (audit entry ${r.audit_seq})`, ""];
    for (const m of [...c.messages.values()].sort((a, b) => a.seq! - b.seq!)) {
      lines.push(`[${m.at ?? ""}] ${m.kind === "system" ? "—" : m.name}: ${m.blocked ? "(withheld: it contained a payment card number)" : m.text}`);
    }
    const name = `ticket-${t.id}-transcript.txt`;
    const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/plain;charset=utf-8" }));
    const a = h("a", { href: url, download: name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    showRecorded(c, `Transcript exported as ${name}. Exporting customer data is recorded: audit entry ${r.audit_seq}.`);
  }

  function showAlert(c: Chat, text: string): void {
    const v = view(c);
    v.alert.textContent = text;
    v.alert.hidden = false;
  }

  /** A file in the conversation: a button that fetches it with the session and saves it. */
  function fileChip(c: Chat, a: Att): HTMLButtonElement {
    const open = async () => {
      try {
        await openFile(`/api/attachments/${a.id}`, s.token, a.name);
      } catch (e) {
        showAlert(c, `Could not open ${a.name}: ${(e as Error).message}`);
      }
    };
    return h("button", { class: "file", type: "button", "data-attachment": a.id, title: `Download ${a.name}`, onclick: open }, `${a.name} · ${size(a.size)}`);
  }

  function renderLog(c: Chat): void {
    if (!c.view) return;
    const { log, typing } = c.view;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    clear(log);
    const all = [...[...c.messages.values()].sort((a, b) => a.seq! - b.seq!), ...c.pending.values()];
    for (const m of all) {
      if (m.kind === "system") {
        log.append(h("div", { class: "msg sys" }, m.blocked ? "A message was withheld because it contained a card number." : m.text));
        continue;
      }
      const mine = m.kind === "agent";
      const read = mine && m.seq && m.seq <= c.customerRead;
      log.append(
        h(
          "div",
          { class: `msg ${mine ? "me" : ""} ${m.blocked ? "withheld" : ""}`, "data-seq": m.seq ?? "" },
          h("span", { class: "who" }, m.name),
          m.blocked ? "Withheld: this message contained a card number." : m.att ? fileChip(c, m.att) : m.text,
          h("span", { class: "meta" }, [clock(m.at), m.pending ? "sending…" : mine ? (read ? "read" : "sent") : ""].filter(Boolean).join(" · ")),
        ),
      );
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
    typing.textContent = c.customerTyping ? `${c.ticket.customer.name} is typing…` : "";
  }

  // The customer panel. Notes and history arrive while the agent may be typing a note or a
  // reveal reason, or has the verification's action chosen: only the facts, the history and
  // the notes are redrawn, each in its own box.
  function renderCustomer(c: Chat): void {
    if (!c.view) return;
    const { facts, history, notes } = c.view;
    const t = c.ticket;
    clear(facts);
    facts.append(
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Name"),
        h("dd", {}, t.customer.name),
        h("dt", {}, "Identity"),
        h("dd", {}, t.customer.verified ? h("span", { class: "verified" }, "Signed in on the site") : "Not verified (typed by the customer)"),
        h("dt", {}, "Customer id"),
        h("dd", {}, String(t.customer.id)),
      ),
    );
    clear(history);
    const earlier = (c.history ?? []).filter((x) => x.id !== t.id);
    history.append(
      c.history === null
        ? h("p", { class: "muted" }, "Loading…")
        : earlier.length === 0
          ? h("p", { class: "muted" }, "None.")
          : h("ul", { class: "history" }, ...earlier.map((x) => h("li", { "data-ticket": x.id }, `#${x.id} ${x.subject || (x.status === "closed" ? "(closed: its transcript opens only through an access grant)" : "(no subject)")} — ${x.status}, ${new Date(x.created_at).toLocaleDateString()}`))),
    );
    clear(notes);
    notes.append(
      c.notes.length
        ? h("ul", { class: "notes" }, ...c.notes.map((n) => h("li", {}, h("span", { class: "who" }, `${n.author.name} · ${clock(n.at)}`), n.text)))
        : h("p", { class: "muted" }, "No notes yet."),
    );
  }

  async function loadVerification(c: Chat): Promise<void> {
    try {
      c.verify.load(await api<TicketVerification>("GET", `/api/tickets/${c.ticket.id}/verifications`));
    } catch {
      /* the section says nothing is verified; live frames still arrive */
    }
  }

  async function loadNotes(c: Chat): Promise<void> {
    try {
      const notes = await api<Note[]>("GET", `/api/tickets/${c.ticket.id}/notes`);
      const known = new Set(c.notes.map((n) => n.id));
      c.notes = [...c.notes, ...notes.filter((n) => !known.has(n.id))].sort((a, b) => a.id - b.id);
      renderCustomer(c);
    } catch {
      /* shown as empty; live notes still arrive */
    }
  }

  async function loadHistory(c: Chat): Promise<void> {
    try {
      c.history = await api<Ticket[]>("GET", `/api/customers/${c.ticket.customer.id}/tickets`);
    } catch {
      c.history = [];
    }
    renderCustomer(c);
  }

  function markRead(c: Chat): void {
    if (c.ticket.id !== current || document.visibilityState !== "visible") return;
    let last = 0;
    for (const m of c.messages.values()) if (m.kind === "customer" && m.seq! > last) last = m.seq!;
    if (last > c.ticket.agent_read_seq) {
      c.ticket.agent_read_seq = last;
      sock.sendLossy({ type: "read", ticket: c.ticket.id, seq: last });
    }
  }
  document.addEventListener("visibilitychange", () => {
    const c = current !== null ? chats.get(current) : undefined;
    if (c) markRead(c);
  });

  function chatByTicket(id: number): Chat | undefined {
    return chats.get(id);
  }

  function drop(id: number): void {
    const c = chats.get(id);
    if (!c) return;
    c.call.leg?.hangup();
    c.view?.panel.remove();
    chats.delete(id);
    if (current === id) {
      const next = chats.keys().next();
      current = next.done ? null : next.value;
      if (current !== null) select(current);
    }
    renderTabs();
  }

  // --- frames -------------------------------------------------------------------------------
  function onFrame(f: Frame): void {
    switch (f.type) {
      case "welcome": {
        me = f.user;
        queue.clear();
        for (const t of f.queue as Ticket[]) queue.set(t.id, t);
        const mine = new Set((f.assigned as Ticket[]).map((t) => t.id));
        for (const id of [...chats.keys()]) if (!mine.has(id)) drop(id);
        for (const t of f.assigned as Ticket[]) chatFor(t);
        if (current === null && chats.size) select(chats.keys().next().value!);
        renderQueue();
        renderTabs();
        break;
      }
      case "queue":
        if (f.op === "reset") {
          // The console fell behind on queue updates: this is the whole queue now.
          queue.clear();
          for (const t of f.tickets as Ticket[]) queue.set(t.id, t);
          for (const fl of f.flags as { ticket: number; phrase: string }[]) flags.set(fl.ticket, fl.phrase);
        } else if (f.op === "remove") queue.delete(f.ticket.id);
        else queue.set(f.ticket.id, f.ticket);
        renderQueue();
        break;
      case "ticket": {
        const t: Ticket = f.ticket;
        if (t.status === "assigned" && t.agent?.id === me.id) {
          const fresh = !chats.has(t.id);
          const c = chatFor(t);
          if (fresh) select(t.id);
          renderCustomer(c);
        } else drop(t.id);
        break;
      }
      case "message": {
        const c = chatByTicket(f.ticket);
        if (!c || !sock.accept(f.conversation, f.seq)) return;
        if (f.client_id) c.pending.delete(f.client_id);
        c.messages.set(f.seq, { seq: f.seq, kind: f.from.kind, name: f.from.name, text: f.text, at: f.at, blocked: f.blocked, att: f.attachment });
        if (f.from.kind === "customer") {
          c.customerTyping = false;
          if (c.ticket.id !== current) c.unread++;
        }
        renderLog(c);
        renderTabs();
        markRead(c);
        break;
      }
      case "ack":
        break;
      case "verification": {
        chatByTicket(f.ticket)?.verify.update(f as any);
        break;
      }
      case "step_up_flag": {
        flags.set(f.ticket, f.phrase);
        chatByTicket(f.ticket)?.verify.setFlag(f.phrase);
        renderQueue();
        break;
      }
      case "blocked": {
        const c = chatByTicket(f.ticket);
        if (!c) return;
        c.pending.delete(f.client_id);
        renderLog(c);
        showAlert(c, f.message);
        break;
      }
      case "typing": {
        const c = chatByTicket(f.ticket);
        if (!c || f.from?.kind !== "customer") return;
        c.customerTyping = f.active;
        renderLog(c);
        break;
      }
      case "read": {
        const c = chatByTicket(f.ticket);
        if (!c || f.by !== "customer") return;
        c.customerRead = Math.max(c.customerRead, f.seq);
        renderLog(c);
        break;
      }
      case "note": {
        const c = chatByTicket(f.ticket);
        if (!c || c.notes.some((n) => n.id === f.id)) return;
        c.notes.push({ id: f.id, at: f.at, author: f.author, text: f.text });
        renderCustomer(c);
        break;
      }
      case "error": {
        // A refused send or note (its ref is its client_id): put the text back.
        for (const c of chats.values()) {
          const m = f.ref ? c.pending.get(f.ref) : undefined;
          if (m && f.code !== "unavailable") {
            c.pending.delete(f.ref);
            if (c.view && !c.view.input.value) c.view.input.value = m.text;
            renderLog(c);
            showAlert(c, f.message);
            return;
          }
        }
        if (!f.ref || !f.ref.startsWith("r")) flash(f.message);
        break;
      }
    }
  }

  const flashEl = h("div", { class: "flash", role: "alert", hidden: true });
  app.append(flashEl);
  let flashTimer: number | undefined;
  function flash(text: string): void {
    flashEl.textContent = text;
    flashEl.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => (flashEl.hidden = true), 6000) as unknown as number;
  }

  const sock = new DeskSocket({
    url: wsUrl(location.origin, "/ws/agent"),
    token: () => s.token,
    onFrame,
    onState: (st: ConnState) => {
      const text: Record<ConnState, string> = { connecting: "Connecting…", online: "Online", reconnecting: "Reconnecting…", offline: "Offline", closed: "Disconnected" };
      state.textContent = text[st];
      state.className = `conn ${st}`;
    },
    onFatal: () => logout(),
  });
  sock.start();
  api<User[]>("GET", "/api/users").then((u) => (colleagues = u)).catch(() => {});

  // --- keyboard -----------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (!e.altKey || e.ctrlKey || e.metaKey) return;
    const c = current !== null ? chats.get(current) : undefined;
    const key = e.key.toLowerCase();
    if (key === "c" || e.code === "KeyC") {
      const next = [...queue.values()].sort((a, b) => a.queued_at.localeCompare(b.queued_at))[0];
      if (next) doClaim(next.id);
    } else if (/^Digit[1-9]$/.test(e.code)) {
      const id = [...chats.keys()][Number(e.code.slice(5)) - 1];
      if (id !== undefined) {
        select(id);
        chats.get(id)?.view?.input.focus();
      }
    } else if (e.code === "KeyQ") {
      // The oldest ticket's Claim button, or the (empty) list itself.
      ((queueList.querySelector("button") as HTMLElement | null) ?? queueList).focus();
    } else if (e.code === "KeyN" && c) {
      c.view?.customer.querySelector<HTMLElement>(".note-input")?.focus();
    } else if (e.code === "KeyT" && c) {
      c.view?.panel.querySelector<HTMLElement>("[data-action=transfer-target]")?.focus();
    } else if (e.code === "KeyR" && c) {
      c.view?.panel.querySelector<HTMLElement>("[data-action=resolve]")?.click();
    } else return;
    e.preventDefault();
  });
}

main();
