// The embeddable widget: <script src="https://gateway/widget.js" data-site="acme"></script>.
// Everything lives in one shadow root (isolated from the host's CSS and DOM) and one global,
// window.DeskgateWidget. Options on the script tag:
//   data-site            site key (required)
//   data-lang            en | ru | zh | fa (else the page's <html lang>, else the browser's)
//   data-prechat         "on" or "off": ask for a name and optional email before the first
//                        message, whatever the site's setting (`prechat` in [[sites]])
//   data-identity-token  JWT signed by the site for a logged-in customer (marks them verified)
import { h, clear, clock } from "../lib/dom";
import { pickLang, strings, isRtl, type Strings } from "../lib/i18n";
import { DeskSocket, clientId, wsUrl, type Frame, type ConnState } from "../lib/socket";
import { OutgoingScreen } from "./outgoing";
import { CSS } from "./styles";
import { verifyPanel } from "./verify";
import { ACCEPT, openFile, size, upload, type Att } from "../lib/files";
import { Leg, LegError } from "../voice/leg";

interface Msg {
  seq?: number;
  clientId?: string;
  kind: "customer" | "agent" | "system";
  name: string;
  text: string;
  at?: string;
  blocked?: boolean;
  status?: "sending" | "sent" | "withheld";
  att?: Att;
}

const script = document.currentScript as HTMLScriptElement | null;

function boot(): void {
  if ((window as any).DeskgateWidget) return; // loaded twice: keep the first
  const data = script?.dataset ?? {};
  const site = data.site || "demo";
  const base = script ? new URL(script.src).origin : location.origin;
  const lang = pickLang(data.lang, document.documentElement.lang, ...(navigator.languages || [navigator.language]));
  const t: Strings = strings(lang);
  const storeKey = `deskgate.visitor.${site}`;

  const host = h("div", { "data-deskgate": "widget" });
  const shadow = host.attachShadow({ mode: "open" });
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(CSS);
  shadow.adoptedStyleSheets = [sheet];

  // --- elements -----------------------------------------------------------------------------
  const badge = h("span", { class: "badge", "aria-hidden": "true", hidden: true });
  const launcherLabel = h("span", {}, t.open);
  const launcherSr = h("span", { class: "sr" });
  const launcher = h(
    "button",
    { class: "launcher", type: "button", "aria-expanded": "false", "aria-controls": "dg-panel" },
    launcherLabel,
    launcherSr,
    badge,
  );
  // Hidden until the widget first connects (not while the pre-chat form is showing).
  const state = h("div", { class: "state", role: "status", "aria-live": "polite", hidden: true }, t.connecting);
  const notice = h("div", { class: "notice", hidden: true });
  const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": t.messages, tabindex: "0" });
  const typing = h("div", { class: "typing", "aria-live": "polite" });
  const alert = h("div", { class: "alert", role: "alert", hidden: true });
  const input = h("textarea", { rows: "1", "aria-label": t.placeholder, placeholder: t.placeholder, maxlength: "8000" });
  // The attach button opens the file picker; the input itself stays hidden (a button is what
  // keyboard and screen-reader users reach).
  const picker = h("input", { type: "file", accept: ACCEPT, hidden: true, tabindex: "-1", "aria-hidden": "true" });
  const attach = h("button", { class: "attach", type: "button", "aria-label": t.attach, title: t.attach }, "+");
  const progress = h("div", { class: "progress", role: "status", "aria-live": "polite", hidden: true });
  const compose = h("form", { class: "compose" }, attach, picker, input, h("button", { class: "primary", type: "submit" }, t.send));
  const nameIn = h("input", { name: "name", autocomplete: "name", required: true, maxlength: "120" });
  const emailIn = h("input", { name: "email", type: "email", autocomplete: "email", maxlength: "254" });
  const prechat = h(
    "form",
    { class: "prechat", hidden: true },
    h("p", {}, t.prechatIntro),
    h("label", {}, t.name, nameIn),
    h("label", {}, t.email, emailIn),
    h("button", { class: "primary", type: "submit" }, t.start),
  );
  const closeBtn = h("button", { class: "x", type: "button", "aria-label": t.close }, "×");
  const title = h("h2", { id: "dg-title" }, t.title);
  // A call from the browser: the button places it on this conversation; the bar shows it.
  const callBtn = h("button", { class: "callbtn", type: "button", hidden: true }, t.call);
  const callState = h("span", { class: "cstate", role: "status", "aria-live": "polite" });
  const hangupBtn = h("button", { class: "hangup", type: "button" }, t.hangup);
  const callBar = h("div", { class: "callbar", hidden: true }, callState, hangupBtn);
  // Step-up verification's code-entry panel sits beside `alert`, outside the message log and
  // the compose form, so that a code typed there never becomes a chat message.
  const verify = verifyPanel(
    t,
    (challenge, code) => (socket ? socket.request({ type: "verify", challenge, code }) : Promise.resolve({ type: "error", code: "unavailable" })),
    () => open && input.focus(),
    () => {
      if (!open || document.visibilityState !== "visible") {
        unread++;
        render();
      }
    },
  );
  const panel = h(
    "section",
    { class: "panel", id: "dg-panel", role: "dialog", "aria-labelledby": "dg-title", hidden: true },
    h("header", {}, title, callBtn, closeBtn),
    state,
    callBar,
    notice,
    prechat,
    log,
    typing,
    alert,
    verify.el,
    progress,
    compose,
  );
  const root = h("div", { class: "root", dir: isRtl(lang) ? "rtl" : "ltr", lang }, panel, launcher);
  shadow.append(root);

  // --- state --------------------------------------------------------------------------------
  let conversation: number | null = null;
  let ticketStatus = "";
  let agentName = "";
  let customerRead = 0; // the last seq the customer has seen
  let agentRead = 0; // the last seq the agent has seen
  let unread = 0;
  let open = false;
  const bySeq = new Map<number, Msg>();
  const pending = new Map<string, Msg>(); // own messages not yet in the conversation
  let socket: DeskSocket | null = null;
  // Card numbers are refused before sending, over the tail of what this customer sent.
  const outgoing = new OutgoingScreen();
  let typingTimer: number | undefined;
  let typingSentAt = 0;
  let typingClear: number | undefined;

  const saved = (() => {
    try {
      return JSON.parse(sessionStorage.getItem(storeKey) || "null") as { token: string; conversation?: number } | null;
    } catch {
      return null;
    }
  })();
  let token: string | null = saved?.token ?? null;

  async function visitor(name?: string, email?: string): Promise<string> {
    // The widget's language is also the language of the customer's step-up code emails.
    const body: Record<string, string> = { site_key: site, lang };
    if (data.identityToken) body.identity_token = data.identityToken;
    if (name) body.name = name;
    if (email) body.email = email;
    const r = await fetch(`${base}/api/visitor`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`visitor ${r.status}`);
    const v = await r.json();
    // sessionStorage (this tab only) keeps the conversation across reloads of the page without
    // leaving a long-lived customer credential behind in the browser after the tab is closed.
    sessionStorage.setItem(storeKey, JSON.stringify({ token: v.visitor_token }));
    return v.visitor_token;
  }

  function remember(): void {
    if (token && conversation) sessionStorage.setItem(storeKey, JSON.stringify({ token, conversation }));
  }

  // --- rendering ----------------------------------------------------------------------------
  function render(): void {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    clear(log);
    const all = [...[...bySeq.values()].sort((a, b) => a.seq! - b.seq!), ...pending.values()];
    for (const m of all) log.append(item(m));
    if (atBottom || all.length < 3) log.scrollTop = log.scrollHeight;
    unread = open && document.visibilityState === "visible" ? 0 : unread;
    badge.textContent = String(unread);
    badge.hidden = unread === 0;
    launcherSr.textContent = unread ? `, ${t.unread(unread)}` : "";
  }

  function item(m: Msg): HTMLDivElement {
    if (m.kind === "system" && !m.blocked) return h("div", { class: "msg sys" }, m.text);
    if (m.blocked || m.status === "withheld") {
      return h("div", { class: m.kind === "customer" ? "msg me withheld" : "msg withheld" }, m.status === "withheld" ? t.cardServer : t.withheld);
    }
    const me = m.kind === "customer";
    const att = m.att;
    const body = att
      ? h("button", { class: "file", type: "button", title: t.openFile(att.name), onclick: () => fetchFile(att) }, `${att.name} · ${size(att.size)}`)
      : m.text;
    let status = "";
    if (me) status = m.status === "sending" ? t.sending : m.seq && m.seq <= agentRead ? t.read : t.sent;
    return h(
      "div",
      { class: me ? "msg me" : "msg", "data-seq": m.seq ?? "" },
      h("span", { class: "sr" }, `${me ? t.you : m.name}: `),
      !me && h("span", { class: "who", "aria-hidden": "true" }, m.name),
      body,
      h("span", { class: "meta" }, [clock(m.at), status].filter(Boolean).join(" · ")),
    );
  }

  function showState(s: ConnState): void {
    const text: Record<ConnState, string> = {
      connecting: t.connecting,
      online: t.online,
      reconnecting: t.reconnecting,
      offline: t.offline,
      closed: t.closed,
    };
    state.textContent = text[s];
    state.className = s === "online" ? "state" : "state warn";
    callBtn.hidden = s !== "online" || !!leg;
    root.dataset.state = s;
  }

  // Whether an agent is online, asked when the widget opens and every 30 s while nobody has
  // taken the conversation; unknown (null) until the first answer.
  let agentsOnline: boolean | null = null;
  // An email address is on file (the pre-chat form's, or a signed identity's): an agent's
  // reply while no tab is open is emailed, so the notice may promise it.
  let emailOnFile = false;
  // The site's settings (its pre-chat form), asked once, from boot.
  let settings: Promise<{ prechat: boolean } | null> | null = null;
  const siteSettings = () =>
    (settings ??= fetch(`${base}/api/sites/${encodeURIComponent(site)}/widget`)
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null));
  async function presence(): Promise<void> {
    try {
      const r = await fetch(`${base}/api/sites/${encodeURIComponent(site)}/presence`);
      if (r.ok) agentsOnline = (await r.json()).agents_online;
    } catch {
      /* unknown: say nothing */
    }
    showNotice();
  }
  setInterval(() => {
    if (open && (ticketStatus === "" || ticketStatus === "queued")) presence();
  }, 30_000);

  function showNotice(): void {
    const unstaffed = agentsOnline === false && (ticketStatus === "" || ticketStatus === "queued");
    const text = unstaffed ? (emailOnFile ? t.noAgentEmail : t.noAgentHere) : ticketStatus === "queued" ? t.waiting : ticketStatus === "resolved" ? t.resolved : agentName ? t.joined(agentName) : "";
    notice.textContent = text;
    notice.hidden = !text;
  }

  function markRead(): void {
    if (!open || document.visibilityState !== "visible" || !socket) return;
    let last = 0;
    for (const m of bySeq.values()) if (m.kind !== "customer" && m.seq! > last) last = m.seq!;
    if (last > customerRead) {
      customerRead = last;
      socket.sendLossy({ type: "read", seq: last });
    }
    unread = 0;
    render();
  }

  // --- protocol -----------------------------------------------------------------------------
  function onFrame(f: Frame): void {
    switch (f.type) {
      case "welcome":
        emailOnFile = !!f.customer?.email_on_file;
        if (f.verifications?.length) verify.show(f.verifications[0]);
        if (f.conversation) {
          conversation = f.conversation.conversation;
          ticketStatus = f.conversation.status;
          agentRead = Math.max(agentRead, f.conversation.agent_read_seq || 0);
          customerRead = Math.max(customerRead, f.conversation.customer_read_seq || 0);
          remember();
          if (!socket!.lastSeq.has(conversation!)) {
            // History only comes through hello.resume: say hello again, resuming from 0.
            socket!.lastSeq.set(conversation!, 0);
            socket!.resync();
            return;
          }
        }
        showNotice();
        break;
      case "message": {
        if (!socket!.accept(f.conversation, f.seq)) return;
        if (conversation !== f.conversation) {
          conversation = f.conversation;
          remember();
        }
        const m: Msg = { seq: f.seq, kind: f.from.kind, name: f.from.name, text: f.text, at: f.at, blocked: f.blocked, att: f.attachment };
        if (f.client_id && pending.has(f.client_id)) pending.delete(f.client_id);
        bySeq.set(f.seq, m);
        if (m.kind === "agent") {
          agentName = f.from.name;
          typing.textContent = "";
          if (!open || document.visibilityState !== "visible") unread++;
        }
        render();
        markRead();
        break;
      }
      case "ack": {
        const m = pending.get(f.client_id);
        if (m) {
          m.status = "sent";
          m.seq = f.seq;
          m.at = f.at;
          conversation = f.conversation;
        }
        render();
        break;
      }
      case "blocked": {
        outgoing.forget();
        const m = pending.get(f.client_id);
        if (m) {
          m.status = "withheld";
          if (f.seq) {
            pending.delete(f.client_id);
            if (!bySeq.has(f.seq)) bySeq.set(f.seq, { seq: f.seq, kind: "customer", name: t.you, text: "", status: "withheld" });
          }
        }
        showAlert(f.message || t.cardServer);
        render();
        break;
      }
      case "ticket":
        ticketStatus = f.ticket.status;
        agentName = f.ticket.agent?.name ?? "";
        conversation = f.ticket.conversation ?? conversation;
        showNotice();
        break;
      case "typing":
        if (f.from?.kind === "agent") {
          typing.textContent = f.active ? t.typing(f.from.name) : "";
          clearTimeout(typingClear);
          if (f.active) typingClear = setTimeout(() => (typing.textContent = ""), 6000) as unknown as number;
        }
        break;
      case "read":
        if (f.by === "agent") {
          agentRead = Math.max(agentRead, f.seq);
          render();
        }
        break;
      case "verification_requested":
        verify.show(f as any);
        break;
      case "verification_unavailable":
        verify.unavailable(f);
        break;
      case "error": {
        // Replies to the panel's `verify` requests are its own to show.
        if (/^r[0-9]+$/.test(f.ref ?? "")) break;
        const m = f.ref ? pending.get(f.ref) : undefined;
        if (m && f.code !== "unavailable") {
          // Refused for good (e.g. too long): give the text back rather than lose it.
          pending.delete(f.ref);
          outgoing.forget();
          if (!input.value) input.value = m.text;
          render();
        }
        showAlert(f.code === "unavailable" ? t.failed : f.message || t.failed);
        break;
      }
    }
  }

  async function fetchFile(a: Att): Promise<void> {
    try {
      await openFile(`${base}/api/attachments/${a.id}`, token!, a.name);
    } catch (e) {
      showAlert((e as Error).message || t.failed);
    }
  }

  async function sendFile(file: File): Promise<void> {
    alert.hidden = true;
    if (file.size > 10 * 1024 * 1024) return showAlert(t.tooLarge);
    if (!ACCEPT.split(",").includes(file.type)) return showAlert(t.badType);
    token ??= await visitor();
    if (!socket) connect();
    progress.hidden = false;
    progress.textContent = t.uploading(0);
    attach.disabled = true;
    const r = await upload(`${base}/api/visitor/attachments`, token, file, (pct) => (progress.textContent = t.uploading(pct)));
    attach.disabled = false;
    progress.hidden = true;
    if (r.status === 200 || r.status === 201) return;
    const code = r.body?.error?.code;
    showAlert(code === "too_large" ? t.tooLarge : code === "unsupported_type" ? t.badType : code === "blocked" ? t.cardServer : r.body?.error?.message || t.uploadFailed);
  }

  function showAlert(text: string): void {
    alert.textContent = text;
    alert.hidden = false;
  }

  function connect(): void {
    if (socket) return;
    state.hidden = false;
    socket = new DeskSocket({
      url: wsUrl(base, "/ws/customer"),
      token: async () => token ?? (token = await visitor()),
      onFrame,
      onState: showState,
      onFatal: (code) => {
        if (code === 4001) {
          // The visitor token expired or is unknown: start over as a new visitor.
          sessionStorage.removeItem(storeKey);
          token = null;
          socket = null;
          connect();
        }
      },
    });
    if (saved?.conversation && saved.token === token) socket.lastSeq.set(saved.conversation, 0);
    socket.start();
  }

  function send(text: string): boolean {
    const verdict = outgoing.check(text);
    if (verdict.blocked) {
      showAlert(t.cardLocal);
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return false;
    }
    alert.hidden = true;
    input.removeAttribute("aria-invalid");
    const id = clientId();
    const m: Msg = { clientId: id, kind: "customer", name: t.you, text, status: "sending" };
    pending.set(id, m);
    socket!.sendReliable({ type: "send", client_id: id, text });
    if (conversation !== null) socket!.sendLossy({ type: "typing", active: false });
    clearTimeout(typingTimer);
    typingSentAt = 0;
    render();
    return true;
  }

  // --- calls ------------------------------------------------------------------------------
  let leg: Leg | null = null;
  let callTimer: number | undefined;
  async function placeCall(): Promise<void> {
    if (leg) return;
    callBtn.hidden = true;
    callBar.hidden = false;
    hangupBtn.hidden = false;
    callState.textContent = t.calling;
    try {
      token ??= await visitor();
      leg = await Leg.open(base, { leg: "customer", token }, {
        started: () => {
          const since = Date.now();
          const tick = () => {
            const s = Math.floor((Date.now() - since) / 1000);
            callState.textContent = t.onCall(`${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`);
          };
          tick();
          callTimer = setInterval(tick, 1000) as unknown as number;
          root.dataset.call = "live";
        },
        event: () => {},
        ended: (reason) => endCall(reason ? t.callFailed : t.callEnded),
      });
    } catch (e) {
      const kind = e instanceof LegError ? e.kind : "network";
      endCall(kind === "microphone" ? t.noMic : kind === "unsupported" ? t.noCalls : t.callFailed);
    }
  }
  function endCall(say: string): void {
    clearInterval(callTimer);
    leg = null;
    root.dataset.call = "ended";
    callState.textContent = say;
    hangupBtn.hidden = true;
    callBtn.hidden = false;
  }
  callBtn.addEventListener("click", () => void placeCall());
  hangupBtn.addEventListener("click", () => leg?.hangup());

  // --- interaction --------------------------------------------------------------------------
  async function setOpen(v: boolean): Promise<void> {
    open = v;
    panel.hidden = !v;
    launcher.setAttribute("aria-expanded", String(v));
    if (v) {
      // The page's data-prechat wins; else the site's setting (fetched since boot).
      const attr = data.prechat;
      const needForm = !token && (attr === "on" || (attr !== "off" && !!(await siteSettings())?.prechat));
      if (!open) return; // closed while the settings were on their way
      prechat.hidden = !needForm;
      compose.hidden = needForm;
      log.hidden = needForm;
      if (!needForm) connect();
      presence();
      (needForm ? nameIn : input).focus();
      markRead();
    } else {
      launcher.focus();
    }
  }

  launcher.addEventListener("click", () => setOpen(!open));
  attach.addEventListener("click", () => picker.click());
  picker.addEventListener("change", () => {
    const file = picker.files?.[0];
    picker.value = "";
    if (file) sendFile(file).finally(() => attach.focus());
  });
  closeBtn.addEventListener("click", () => setOpen(false));
  root.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && open) {
      e.preventDefault();
      setOpen(false);
    }
  });
  prechat.addEventListener("submit", async (e) => {
    e.preventDefault();
    token = await visitor(nameIn.value, emailIn.value);
    emailOnFile = emailIn.value.trim() !== "";
    showNotice();
    prechat.hidden = true;
    compose.hidden = false;
    log.hidden = false;
    connect();
    input.focus();
  });
  compose.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (send(text)) input.value = "";
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      compose.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    // Editing answers the last warning: take it away so it is not read out again.
    if (!alert.hidden && input.getAttribute("aria-invalid") === "true") {
      alert.hidden = true;
      input.removeAttribute("aria-invalid");
    }
    // Typing is about a conversation: before the first message there is none to tell.
    if (!socket || conversation === null) return;
    const now = Date.now();
    if (now - typingSentAt > 3000) {
      typingSentAt = now;
      socket.sendLossy({ type: "typing", active: true });
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingSentAt = 0;
      socket?.sendLossy({ type: "typing", active: false });
    }, 4000) as unknown as number;
  });
  document.addEventListener("visibilitychange", markRead);

  document.body.append(host);
  showState("connecting");
  if (!token && data.prechat !== "on" && data.prechat !== "off") siteSettings();
  // A returning visitor (reload in the same tab) reconnects at once so the badge counts replies.
  if (token) connect();

  (window as any).DeskgateWidget = Object.freeze({
    open: () => setOpen(true),
    close: () => setOpen(false),
    // The live call's audio counters (frames sent and played, jitter buffer), or null.
    callStats: () => leg?.stats ?? null,
    version: "1",
  });
}

if (document.body) boot();
else document.addEventListener("DOMContentLoaded", boot);
