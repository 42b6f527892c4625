// The supervisor console: the live dashboard, access to closed transcripts (requests, review,
// the transcript viewer), the audit log with its chain's status, and live security alerts.
// What is shown follows the role's permissions (perms.ts); the gateway decides every request.
import { h, clear } from "../lib/dom";
import { DeskSocket, wsUrl, type Frame, type ConnState } from "../lib/socket";
import { login, logout, type Session } from "../lib/staff";
import { can } from "./perms";
import { dashboard } from "./dashboard";
import { access } from "./grants";
import { viewer } from "./viewer";
import { player } from "./player";
import { auditLog } from "./audit";
import { alerts, type AlertFrame } from "./alerts";

const app = document.getElementById("app")!;

async function main(): Promise<void> {
  const s = await login(app, "Supervisor console");
  run(s);
}

interface Tab {
  id: string;
  label: string;
  panel: HTMLElement;
  shown?: () => void;
}

function tabs(list: Tab[]): HTMLElement {
  const buttons = list.map((t) =>
    h("button", { type: "button", role: "tab", id: `tab-${t.id}`, "aria-controls": `panel-${t.id}`, "aria-selected": "false", tabindex: "-1" }, t.label),
  );
  const panels = list.map((t) => h("div", { role: "tabpanel", id: `panel-${t.id}`, "aria-labelledby": `tab-${t.id}`, tabindex: "0", class: "tabpanel", hidden: true }, t.panel));
  function select(i: number, focus: boolean): void {
    list.forEach((t, j) => {
      buttons[j].setAttribute("aria-selected", String(i === j));
      buttons[j].tabIndex = i === j ? 0 : -1;
      panels[j].hidden = i !== j;
    });
    if (focus) buttons[i].focus();
    history.replaceState(null, "", `#${list[i].id}`);
    list[i].shown?.();
  }
  buttons.forEach((b, i) => {
    b.addEventListener("click", () => select(i, false));
    b.addEventListener("keydown", (e) => {
      const k = (e as KeyboardEvent).key;
      const n = list.length;
      const to = k === "ArrowRight" ? (i + 1) % n : k === "ArrowLeft" ? (i + n - 1) % n : k === "Home" ? 0 : k === "End" ? n - 1 : -1;
      if (to >= 0) {
        e.preventDefault();
        select(to, true);
      }
    });
  });
  const wanted = list.findIndex((t) => `#${t.id}` === location.hash);
  select(wanted >= 0 ? wanted : 0, false);
  return h("div", { class: "tabbed" }, h("div", { class: "tabs sections", role: "tablist", "aria-label": "Sections" }, buttons), panels);
}

function run(s: Session): void {
  const role = s.user.role;
  const state = h("span", { class: "conn", role: "status", "aria-live": "polite" }, "Connecting…");
  const logoutBtn = h("button", { class: "link", type: "button" }, "Log out");
  logoutBtn.addEventListener("click", () => logout());

  const dash = dashboard(role, (what) => (state.textContent = what));
  const list: Tab[] = [{ id: "dashboard", label: "Dashboard", panel: dash.panel }];
  if (can(role, "request_grant") || can(role, "review_grant") || can(role, "view_all_grants")) {
    const label = can(role, "review_grant") ? "Review" : can(role, "request_grant") ? "Access requests" : "Access";
    list.push({ id: "access", label, panel: access(s.user, viewer(), player()).panel });
  }
  if (can(role, "read_audit")) {
    const audit = auditLog();
    list.push({ id: "audit", label: "Audit log", panel: audit.panel, shown: audit.shown });
  }
  const alertBox = can(role, "security_alerts") ? alerts() : null;

  clear(app);
  app.append(
    h(
      "header",
      { class: "top" },
      h("h1", {}, "deskgate ", h("span", { class: "sub" }, "Supervisor console")),
      state,
      h("span", { class: "who" }, `${s.user.name} (${role})`),
      logoutBtn,
    ),
    h("main", { class: "supervisor", "aria-label": "Supervisor console" }, alertBox?.panel ?? null, tabs(list)),
  );

  const sock = new DeskSocket({
    url: wsUrl(location.origin, "/ws/agent"),
    token: () => s.token,
    onFrame: (f: Frame) => {
      if (f.type === "queue" || f.type === "welcome") dash.poke();
      else if (f.type === "security_alert") alertBox?.add(f as unknown as AlertFrame);
    },
    onState: (st: ConnState) => {
      state.textContent = st === "online" ? "Live" : st === "reconnecting" ? "Reconnecting…" : st;
      state.className = `conn ${st}`;
    },
    onFatal: () => logout(),
  });
  sock.start();
}

main();
