// The audit log for approvers and admins: whether the hash chain and its signed checkpoints
// verify (GET /api/audit/status, the same check as `deskgate audit verify`), and a search by
// actor, customer, object, action, outcome and time range, newest first, a page at a time.
// Every search and every check is itself recorded by the gateway.
import { h, clear } from "../lib/dom";
import { type User } from "../lib/staff";
import { api, explain } from "./http";
import { when } from "./clock";

interface Entry {
  seq: number;
  at: string;
  actor: number | null;
  role: string | null;
  action: string;
  outcome: string;
  customer: number | null;
  object_kind: string | null;
  object_id: number | null;
  detail: string | null;
  ip: string | null;
  request_id: string | null;
}
interface ChainStatus {
  status: "ok" | "broken";
  entries: number;
  checkpoints: number;
  last_checkpoint: number | null;
  unsigned: number;
  key_id: string;
  first_bad_entry: number | null;
  problem: string | null;
  checked_at: string;
}

/** The actions the gateway records (recorder::audit::Action), offered as suggestions. */
const ACTIONS = [
  "login", "login_failed", "ticket_read", "transcript_read", "customer_read", "pii_revealed",
  "card_number_blocked", "grant_requested", "grant_approved", "grant_denied", "grant_used",
  "grant_expired", "grant_revoked", "user_created", "role_changed", "user_deactivated",
  "user_reactivated", "audit_read", "audit_exported", "verification_sent", "verification_passed",
  "verification_failed", "verification_locked", "sensitive_action", "ticket_flagged", "mfa_enrolled",
  "mfa_passed", "mfa_failed", "mfa_recovery_used", "mfa_disabled", "mfa_reset",
  "transcript_shredded", "keys_rotated", "legal_hold_set", "legal_hold_released",
];
const KINDS = ["ticket", "transcript", "grant", "user", "verification"];

export interface AuditView {
  panel: HTMLElement;
  /** The tab was shown: check the chain (once, and again on request). */
  shown(): void;
}

export function auditLog(): AuditView {
  const users = new Map<number, User>();
  const badge = h("div", { class: "chain", role: "status", id: "chain-status", "data-chain": "unknown" }, "Chain not checked yet.");
  const recheck = h("button", { class: "secondary small", type: "button", id: "chain-check" }, "Check the chain now");

  const field = (id: string, label: string, input: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), input);
  const actor = h("select", { id: "f-actor", name: "actor" }, h("option", { value: "" }, "anyone"));
  const customer = h("input", { id: "f-customer", name: "customer", type: "number", min: "1", inputmode: "numeric" });
  const kind = h("select", { id: "f-kind", name: "object_kind" }, h("option", { value: "" }, "any"), KINDS.map((k) => h("option", { value: k }, k)));
  const objectId = h("input", { id: "f-object", name: "object_id", type: "number", min: "1", inputmode: "numeric" });
  const action = h("input", { id: "f-action", name: "action", list: "f-actions", autocomplete: "off", spellcheck: "false" });
  const actions = h("datalist", { id: "f-actions" }, ACTIONS.map((a) => h("option", { value: a })));
  const outcome = h("select", { id: "f-outcome", name: "outcome" }, ["", "allowed", "denied", "failed"].map((o) => h("option", { value: o }, o || "any")));
  const from = h("input", { id: "f-from", name: "from", type: "datetime-local", step: "1" });
  const to = h("input", { id: "f-to", name: "to", type: "datetime-local", step: "1" });
  const limit = h("select", { id: "f-limit", name: "limit" }, ["25", "50", "100"].map((n) => h("option", { value: n, selected: n === "50" }, n)));
  const error = h("p", { class: "error", role: "alert", id: "audit-error" });
  const form = h(
    "form",
    { class: "filters", id: "audit-form", novalidate: true },
    field("f-actor", "Actor", actor),
    field("f-customer", "Customer id", customer),
    field("f-kind", "Object kind", kind),
    field("f-object", "Object id", objectId),
    field("f-action", "Action", action),
    actions,
    field("f-outcome", "Outcome", outcome),
    field("f-from", "From (your local time)", from),
    field("f-to", "Before", to),
    field("f-limit", "Per page", limit),
    h("div", { class: "field buttons" }, h("button", { class: "primary", type: "submit" }, "Search"), h("button", { class: "secondary", type: "reset" }, "Clear")),
  );
  const summary = h("p", { class: "muted", role: "status", id: "audit-summary" });
  const results = h("div", { class: "table-wrap", id: "audit-results" });
  const newer = h("button", { class: "secondary small", type: "button", disabled: true }, "← Newer");
  const older = h("button", { class: "secondary small", type: "button", disabled: true }, "Older →");

  const panel = h(
    "div",
    { class: "audit" },
    h("section", { class: "card", "aria-labelledby": "chain-h" }, h("h2", { id: "chain-h" }, "Integrity of the audit log"), h("div", { class: "chain-row" }, badge, recheck)),
    h("section", { class: "card", "aria-labelledby": "search-h" }, h("h2", { id: "search-h" }, "Search the audit log"), form, error, summary, results, h("div", { class: "pager" }, newer, older)),
  );

  // Pages are walked backwards by sequence number: `pages` holds the `before` of each page shown.
  let pages: (number | null)[] = [null];
  let query = "";

  async function checkChain(): Promise<void> {
    badge.dataset.chain = "checking";
    badge.textContent = "Checking the chain…";
    try {
      const s = await api<ChainStatus>("GET", "/api/audit/status");
      badge.dataset.chain = s.status;
      clear(badge);
      if (s.status === "ok") {
        badge.append(
          h("strong", {}, "✓ Chain verified"),
          ` — ${s.entries} entries, ${s.checkpoints} signed ${s.checkpoints === 1 ? "checkpoint" : "checkpoints"}; `,
          h("span", { "data-unsigned": String(s.unsigned) }, s.unsigned ? `${s.unsigned} ${s.unsigned === 1 ? "entry is" : "entries are"} chained but not yet covered by a signed checkpoint` : "every entry is covered by a signed checkpoint"),
          `. Key ${s.key_id}, checked ${when(s.checked_at)}.`,
        );
      } else {
        badge.append(h("strong", {}, `✗ Chain broken at entry ${s.first_bad_entry}`), ` — ${s.problem}. The log has ${s.entries} entries. Checked ${when(s.checked_at)}.`);
      }
    } catch (e) {
      badge.dataset.chain = "unknown";
      badge.textContent = `The chain could not be checked: ${explain(e)}`;
    }
  }
  recheck.addEventListener("click", checkChain);

  function build(): string | null {
    const q = new URLSearchParams();
    const num = (el: HTMLInputElement, name: string, label: string): boolean => {
      if (!el.value) return true;
      const n = Number(el.value);
      if (!Number.isInteger(n) || n < 1) {
        error.textContent = `${label} must be a whole number.`;
        el.focus();
        return false;
      }
      q.set(name, String(n));
      return true;
    };
    if (actor.value) q.set("actor", actor.value);
    if (!num(customer, "customer", "Customer id")) return null;
    if (kind.value) q.set("object_kind", kind.value);
    if (!num(objectId, "object_id", "Object id")) return null;
    if (action.value.trim()) q.set("action", action.value.trim());
    if (outcome.value) q.set("outcome", outcome.value);
    for (const [el, name] of [[from, "from"], [to, "to"]] as const) {
      if (!el.value) continue;
      const t = new Date(el.value);
      if (Number.isNaN(t.getTime())) {
        error.textContent = "Enter a complete date and time.";
        el.focus();
        return null;
      }
      q.set(name, t.toISOString());
    }
    q.set("limit", limit.value);
    return q.toString();
  }

  async function load(page: number): Promise<void> {
    const before = pages[page];
    const path = `/api/audit?${query}${before ? `&before=${before}` : ""}`;
    try {
      const list = await api<Entry[]>("GET", path);
      if (list.some((e) => e.actor !== null && !users.has(e.actor))) await loadUsers();
      pages = pages.slice(0, page + 1);
      const size = Number(new URLSearchParams(query).get("limit") ?? 50);
      if (list.length === size) pages.push(list[list.length - 1].seq);
      newer.disabled = page === 0;
      older.disabled = pages.length === page + 1;
      current = page;
      show(list);
    } catch (e) {
      error.textContent = explain(e);
    }
  }
  let current = 0;
  newer.addEventListener("click", () => load(current - 1));
  older.addEventListener("click", () => load(current + 1));

  function show(list: Entry[]): void {
    clear(results);
    summary.textContent = list.length ? `Entries ${list[list.length - 1].seq}–${list[0].seq}, newest first (page ${current + 1}).` : "No entry matches.";
    if (!list.length) return;
    const who = (e: Entry) => (e.actor === null ? e.role ?? "" : `${users.get(e.actor)?.name ?? `user ${e.actor}`} (${e.role ?? "?"})`);
    results.append(
      h(
        "table",
        { class: "grid-table audit-table" },
        h("caption", { class: "sr-only" }, "Audit entries, newest first"),
        h("thead", {}, h("tr", {}, ["#", "When", "Who", "Action", "Outcome", "Customer", "Object", "Detail", "From"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          list.map((e) =>
            h(
              "tr",
              { "data-seq": String(e.seq) },
              h("td", {}, String(e.seq)),
              h("td", {}, when(e.at)),
              h("td", {}, who(e)),
              h("td", { "data-action": e.action }, e.action),
              h("td", {}, h("span", { class: `outcome outcome-${e.outcome}` }, e.outcome)),
              h("td", {}, e.customer === null ? "" : String(e.customer)),
              h("td", {}, e.object_kind ? `${e.object_kind} ${e.object_id ?? ""}` : ""),
              h("td", { class: "detail" }, e.detail ?? ""),
              h("td", {}, e.ip ?? ""),
            ),
          ),
        ),
      ),
    );
  }

  async function loadUsers(): Promise<void> {
    const list = await api<User[]>("GET", "/api/users");
    const chosen = actor.value;
    for (const u of list) users.set(u.id, u);
    clear(actor);
    actor.append(h("option", { value: "" }, "anyone"), ...list.map((u) => h("option", { value: String(u.id) }, `${u.name} (${u.role})`)));
    actor.value = chosen;
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    error.textContent = "";
    const q = build();
    if (q === null) return;
    query = q;
    pages = [null];
    load(0);
  });
  form.addEventListener("reset", () => {
    error.textContent = "";
    setTimeout(() => form.requestSubmit());
  });

  let started = false;
  return {
    panel,
    shown() {
      if (started) return;
      started = true;
      loadUsers()
        .catch(() => undefined)
        .then(() => {
          checkChain();
          form.requestSubmit();
        });
    },
  };
}
