// The supervisor console: a live dashboard of the queue and the agents, drawn as SVG charts
// without a chart library, from /api/queue, /api/tickets, /api/users and /metrics, kept live by
// the staff socket's queue events. The access-request, review, transcript and audit sections
// are laid out here and filled in when the gateway offers the vault and grants API (issue 5).
import { h, clear, duration } from "../lib/dom";
import { DeskSocket, wsUrl, type Frame, type ConnState } from "../lib/socket";
import { login, logout, api, type Session, type User } from "../lib/staff";
import { lineChart, barChart, type Point } from "./charts";

interface QueueView {
  stats: { queued: number; assigned: number; resolved: number; longest_wait_ms: number };
  agents_online: number;
  tickets: { id: number; queued_at: string }[];
}
interface Ticket {
  id: number;
  status: string;
  agent: { id: number; name: string } | null;
}

const app = document.getElementById("app")!;
const SAMPLE_MS = 5000;
const KEEP = 120; // samples on the time charts: ten minutes

async function main(): Promise<void> {
  const s = await login(app, "Supervisor console");
  run(s);
}

function metric(text: string, name: string): number | null {
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, "m"));
  return m ? Number(m[1]) : null;
}

function run(s: Session): void {
  const state = h("span", { class: "conn", role: "status", "aria-live": "polite" }, "Connecting…");
  const tiles = {
    depth: h("strong", { "data-tile": "depth" }, "–"),
    longest: h("strong", { "data-tile": "longest" }, "–"),
    online: h("strong", { "data-tile": "online" }, "–"),
    assigned: h("strong", { "data-tile": "assigned" }, "–"),
  };
  const tile = (label: string, v: HTMLElement) => h("div", { class: "tile" }, h("span", {}, label), v);
  const depthChart = h("figure", { class: "chart" });
  const loadChart = h("figure", { class: "chart" });
  const blockedChart = h("figure", { class: "chart" });
  const logoutBtn = h("button", { class: "link", type: "button" }, "Log out");
  logoutBtn.addEventListener("click", () => logout());
  const later = (id: string, title: string, what: string) =>
    h(
      "section",
      { class: "card later", "aria-labelledby": id },
      h("h2", { id }, title),
      h("p", { class: "muted" }, what),
    );
  clear(app);
  app.append(
    h(
      "header",
      { class: "top" },
      h("h1", {}, "deskgate ", h("span", { class: "sub" }, "Supervisor console")),
      state,
      h("span", { class: "who" }, `${s.user.name} (${s.user.role})`),
      logoutBtn,
    ),
    h(
      "main",
      { class: "dash", tabindex: "0", "aria-label": "Dashboard" },
      h("section", { class: "tiles", "aria-label": "Now" }, tile("Queue depth", tiles.depth), tile("Longest wait", tiles.longest), tile("Agents online", tiles.online), tile("Chats in progress", tiles.assigned)),
      h("section", { class: "card", "aria-labelledby": "c1" }, h("h2", { id: "c1" }, "Queue depth, last 10 minutes"), depthChart),
      h("section", { class: "card", "aria-labelledby": "c2" }, h("h2", { id: "c2" }, "Agents and their load"), loadChart),
      h("section", { class: "card", "aria-labelledby": "c3" }, h("h2", { id: "c3" }, "Card numbers blocked, per 5 seconds"), blockedChart),
      later("c4", "Verification outcomes", "Shown once step-up verification is part of the gateway."),
      later("c5", "Access requests", "Request access to a closed ticket's transcript or recording, with a reason and a duration: arrives with the vault and grants API."),
      later("c6", "Review", "Approvers approve or deny requests here (never their own): arrives with the grants API."),
      later("c7", "Transcript viewer", "Granted transcripts open here with the time left on the grant: arrives with the vault."),
      later("c8", "Audit log", "Search the audit log and see whether its chain verifies: arrives with the audit log."),
    ),
  );

  const depth: Point[] = [];
  const blocked: Point[] = [];
  let lastBlocked: number | null = null;
  let longestSince: number | null = null;
  let view: QueueView | null = null;

  async function sample(): Promise<void> {
    try {
      const [q, users, assigned, metrics] = await Promise.all([
        api<QueueView>("GET", "/api/queue"),
        api<User[]>("GET", "/api/users"),
        api<Ticket[]>("GET", "/api/tickets?status=assigned&limit=500"),
        fetch("/metrics").then((r) => r.text()),
      ]);
      view = q;
      const now = Date.now();
      depth.push({ t: now, v: q.stats.queued });
      if (depth.length > KEEP) depth.shift();
      const b = metric(metrics, "deskgate_messages_blocked_total");
      if (b !== null) {
        if (lastBlocked !== null) blocked.push({ t: now, v: Math.max(0, b - lastBlocked) });
        if (blocked.length > KEEP) blocked.shift();
        lastBlocked = b;
      }
      const oldest = q.tickets.map((t) => Date.parse(t.queued_at)).sort((a, b) => a - b)[0];
      longestSince = oldest ?? null;
      tiles.depth.textContent = String(q.stats.queued);
      tiles.online.textContent = String(q.agents_online);
      tiles.assigned.textContent = String(q.stats.assigned);
      tick();
      const load = new Map<number, number>();
      for (const t of assigned) if (t.agent) load.set(t.agent.id, (load.get(t.agent.id) ?? 0) + 1);
      // Agents and leads, and anyone else (a supervisor, an admin) who holds chats right now.
      const agents = users.filter((u) => u.active !== false && (["agent", "lead"].includes(u.role) || load.has(u.id)));
      clear(loadChart);
      loadChart.append(
        barChart(agents.map((u) => ({ label: u.name, v: load.get(u.id) ?? 0, max: u.capacity })), "Open chats per agent against capacity"),
        h("figcaption", {}, `${agents.length} ${agents.length === 1 ? "agent" : "agents"}; each bar shows open chats out of capacity`),
      );
      clear(depthChart);
      depthChart.append(lineChart(depth, "Queued tickets"), h("figcaption", {}, `now ${q.stats.queued} waiting; sampled every 5 s`));
      clear(blockedChart);
      blockedChart.append(lineChart(blocked, "Blocked card numbers"), h("figcaption", {}, `total since start: ${lastBlocked ?? 0}`));
    } catch {
      state.textContent = "Cannot load figures";
    }
  }

  function tick(): void {
    tiles.longest.textContent = longestSince === null ? "none waiting" : duration(Date.now() - longestSince);
  }
  setInterval(tick, 1000);
  setInterval(sample, SAMPLE_MS);
  sample();

  // Queue events make the figures current at once instead of at the next sample.
  let pending: number | undefined;
  const sock = new DeskSocket({
    url: wsUrl(location.origin, "/ws/agent"),
    token: () => s.token,
    onFrame: (f: Frame) => {
      if (f.type === "queue" || f.type === "welcome") {
        clearTimeout(pending);
        pending = setTimeout(sample, 200) as unknown as number;
      }
    },
    onState: (st: ConnState) => {
      state.textContent = st === "online" ? "Live" : st === "reconnecting" ? "Reconnecting…" : st;
      state.className = `conn ${st}`;
    },
    onFatal: () => logout(),
  });
  sock.start();
  void view;
}

main();
