// Access to closed transcripts and call recordings: a supervisor asks for a ticket's transcript,
// or the recording of its call, with a reason and a duration and follows the request's state; an approver reviews other people's requests
// (approving asks for a fresh authenticator code, which the gateway checks); approvers and
// admins end active grants. The list is polled every few seconds, so a decision made in
// another browser shows up here without a reload.
import { h, clear, duration } from "../lib/dom";
import { type User } from "../lib/staff";
import { api, call, explain, ApiError } from "./http";
import { can } from "./perms";
import { serverNow, syncServerClock, when, minutes } from "./clock";
import type { Viewer } from "./viewer";
import type { Player } from "./player";

export interface Grant {
  id: number;
  kind: string;
  object: number;
  requester: number;
  reason: string;
  status: "pending" | "approved" | "denied" | "expired" | "revoked";
  requested_at: string;
  review_by: string;
  duration_minutes: number;
  reviewer: number | null;
  reviewed_at: string | null;
  review_note: string | null;
  expires_at: string | null;
  ended_by: number | null;
  ended_at: string | null;
  now: string;
}

interface Policy {
  default_duration_minutes: number;
  max_duration_minutes: number;
  pending_ttl_minutes: number;
  reason_min: number;
  reason_max: number;
}

interface ClosedTicket {
  id: number;
  customer: { name: string };
  closed_at: string | null;
}

const POLL_MS = 3000;

const STATE_TEXT: Record<Grant["status"], string> = {
  pending: "Pending review",
  approved: "Approved",
  denied: "Denied",
  expired: "Expired",
  revoked: "Revoked",
};

export function stateBadge(status: Grant["status"]): HTMLElement {
  return h("span", { class: `state state-${status}`, "data-state": status }, STATE_TEXT[status] ?? status);
}

/** Characters as the gateway counts them (code points, not UTF-16 units). */
const chars = (s: string) => [...s].length;

export interface Access {
  panel: HTMLElement;
}

interface RecordingInfo {
  id: number;
  state: string;
  duration_ms: number;
}

/** What a grant opens, as the lists name it. */
export function objectName(g: Pick<Grant, "kind" | "object">): string {
  return g.kind === "recording" ? `Recording ${g.object}` : `Ticket ${g.object}`;
}

export function access(me: User, viewer: Viewer, player: Player): Access {
  const role = me.role;
  const requests = can(role, "request_grant");
  const reviews = can(role, "review_grant");
  const seesAll = can(role, "view_all_grants");
  const revokes = can(role, "revoke_grant");
  const users = new Map<number, User>();
  const name = (id: number | null) => (id === null ? "" : users.get(id)?.name ?? `user ${id}`);

  const panel = h("div", { class: requests ? "access requester" : "access" });
  let policy: Policy | null = null;
  let grants: Grant[] = [];
  let signature = "";
  let ownHidden = 0;

  // --- The request form (supervisors) -------------------------------------------------------
  const reqKind = h(
    "select",
    { id: "req-kind", name: "kind" },
    h("option", { value: "transcript" }, "The transcript"),
    h("option", { value: "recording" }, "The call recording"),
  );
  const reqTicket = h("input", { id: "req-ticket", name: "ticket", type: "number", min: "1", step: "1", inputmode: "numeric", list: "req-closed", required: true, "aria-describedby": "req-ticket-help" });
  const closedList = h("datalist", { id: "req-closed" });
  const reqReason = h("textarea", { id: "req-reason", name: "reason", rows: 3, required: true, "aria-describedby": "req-reason-help" });
  const reasonCount = h("span", { class: "count-chars" }, "0");
  const reqDuration = h("input", { id: "req-duration", name: "duration", type: "number", min: "1", step: "1", inputmode: "numeric", required: true, "aria-describedby": "req-duration-help" });
  const durationHelp = h("p", { id: "req-duration-help", class: "hint" }, "Loading the gateway's limits…");
  const reqError = h("p", { class: "error", role: "alert", id: "req-error" });
  const reqDone = h("p", { class: "ok", role: "status", id: "req-done" });
  const reqForm = h(
    "form",
    { class: "stack", id: "req-form", novalidate: true },
    h("label", { for: "req-kind" }, "Access to"),
    reqKind,
    h("label", { for: "req-ticket" }, "Closed ticket number"),
    reqTicket,
    closedList,
    h("p", { id: "req-ticket-help", class: "hint" }, "Only closed tickets need a grant for their transcript; recently closed ones are suggested. A call's recording needs one once the call has ended."),
    h("label", { for: "req-reason" }, "Reason"),
    reqReason,
    h("p", { id: "req-reason-help", class: "hint" }, "Why you need it, 10–500 characters. The approver reads it and the audit log keeps it. ", reasonCount, " characters."),
    h("label", { for: "req-duration" }, "Access for (minutes)"),
    reqDuration,
    durationHelp,
    reqError,
    reqDone,
    h("button", { class: "primary", type: "submit" }, "Send request"),
  );
  reqReason.addEventListener("input", () => (reasonCount.textContent = String(chars(reqReason.value.trim()))));
  reqForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    reqError.textContent = "";
    reqDone.textContent = "";
    const ticket = Number(reqTicket.value);
    const reason = reqReason.value.trim();
    const mins = Number(reqDuration.value);
    const p = policy;
    const min = p?.reason_min ?? 10, max = p?.reason_max ?? 500;
    let problem = "";
    let field: HTMLElement = reqTicket;
    if (!Number.isInteger(ticket) || ticket < 1) problem = "Enter the number of a closed ticket.";
    else if (chars(reason) < min || chars(reason) > max) {
      problem = `The reason must be ${min}–${max} characters; it is ${chars(reason)}.`;
      field = reqReason;
    } else if (!Number.isInteger(mins) || mins < 1 || (p && mins > p.max_duration_minutes)) {
      problem = p ? `Access can last 1 to ${p.max_duration_minutes} minutes (${minutes(p.max_duration_minutes)}).` : "Enter the access time in minutes.";
      field = reqDuration;
    }
    if (problem) {
      reqError.textContent = problem;
      field.setAttribute("aria-invalid", "true");
      field.focus();
      return;
    }
    for (const f of [reqTicket, reqReason, reqDuration]) f.removeAttribute("aria-invalid");
    try {
      let object = ticket;
      if (reqKind.value === "recording") {
        // A ticket's calls are recorded one recording each: the latest that has ended.
        const recs = await api<RecordingInfo[]>("GET", `/api/tickets/${ticket}/recordings`);
        const done = recs.filter((r) => r.state !== "recording");
        if (!done.length) {
          reqError.textContent = recs.length ? `The call of ticket ${ticket} is still going on; ask once it has ended.` : `Ticket ${ticket} has no call recording.`;
          reqTicket.setAttribute("aria-invalid", "true");
          reqTicket.focus();
          return;
        }
        object = done[done.length - 1].id;
      }
      const g = await api<Grant>("POST", "/api/grants", { kind: reqKind.value, object, reason, duration_minutes: mins });
      reqDone.textContent = g.kind === "recording" ? `Request #${g.id} for recording ${g.object} of ticket ${ticket} sent; it waits for an approver.` : `Request #${g.id} for ticket ${g.object} sent; it waits for an approver.`;
      reqReason.value = "";
      reasonCount.textContent = "0";
      reqTicket.value = "";
      await refresh();
    } catch (err) {
      reqError.textContent =
        err instanceof ApiError && err.status === 404 ? `There is no ticket ${ticket}.` : err instanceof ApiError && err.status === 409 ? `Ticket ${ticket} is not closed: ${err.message}.` : explain(err);
    }
  });

  // --- Lists ----------------------------------------------------------------------------------
  const mine = h("div", { class: "table-wrap", id: "my-requests" });
  const pending = h("div", { class: "table-wrap", id: "review-list" });
  const active = h("div", { class: "table-wrap", id: "active-grants" });
  const history = h("div", { class: "table-wrap", id: "grant-history" });
  const ownNote = h("p", { class: "hint", id: "own-hidden" });
  const card = (id: string, title: string, ...body: (Node | false)[]) =>
    h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...body);

  if (requests) {
    panel.append(
      card("req-h", "Request access", h("p", { class: "muted" }, "A closed ticket's transcript, or a call's recording, opens only through a request that someone with the approver role approves; every read and every play is audited."), reqForm),
      card("mine-h", "My requests", mine),
    );
  }
  // Only requesters read through a grant, so only they get the viewer.
  if (requests) panel.append(viewer.panel, player.panel);
  if (reviews || seesAll) {
    panel.append(
      h("section", { class: "card wide", "aria-labelledby": "review-h" }, h("h2", { id: "review-h" }, reviews ? "Review: requests waiting for you" : "Requests waiting for review"), pending, ownNote),
      card("active-h", "Active grants", active),
      card("history-h", "Recently ended", history),
    );
  }
  if (!requests && !reviews && !seesAll) {
    panel.append(card("none-h", "Access requests", h("p", { class: "muted" }, "Your role neither requests nor reviews access to transcripts and recordings.")));
  }

  const table = (caption: string, head: string[], rows: HTMLElement[], empty: string) =>
    rows.length
      ? h("table", { class: "grid-table" }, h("caption", { class: "sr-only" }, caption), h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows))
      : h("p", { class: "muted empty-list" }, empty);
  const ticking = (kind: "age" | "left", at: string | null) => h("span", { class: "wait", [`data-${kind}`]: at ? String(Date.parse(at)) : "" }, "");
  const button = (key: string, label: string, cls: string, onClick: () => void, aria?: string) =>
    h("button", { type: "button", class: cls, "data-key": key, "aria-label": aria, onclick: onClick }, label);

  function renderMine(): void {
    const own = grants.filter((g) => g.requester === me.id);
    const rows = own.map((g) =>
      h(
        "tr",
        { "data-grant": String(g.id) },
        h("td", {}, `#${g.id}`),
        h("td", {}, objectName(g)),
        h("td", { class: "reason" }, g.reason),
        h("td", {}, minutes(g.duration_minutes)),
        h("td", {}, stateBadge(g.status), g.review_note ? h("span", { class: "note" }, `“${g.review_note}”`) : null),
        h(
          "td",
          {},
          g.status === "pending" ? h("span", {}, "asked ", ticking("age", g.requested_at), " ago") : g.status === "approved" ? h("span", {}, "ends in ", ticking("left", g.expires_at)) : when(g.ended_at ?? g.reviewed_at ?? g.review_by),
        ),
        h(
          "td",
          {},
          g.status !== "approved"
            ? null
            : g.kind === "recording"
              ? button(`open-${g.id}`, "Play recording", "primary small", () => player.open(g), `Play recording ${g.object}`)
              : button(`open-${g.id}`, "Open transcript", "primary small", () => viewer.open(g), `Open transcript of ticket ${g.object}`),
        ),
      ),
    );
    clear(mine);
    mine.append(table("My access requests", ["Request", "Object", "Reason", "Duration", "State", "Time", ""], rows, "You have made no requests yet."));
  }

  function renderReview(): void {
    const waiting = grants.filter((g) => g.status === "pending");
    // Nobody reviews their own request: the gateway refuses it, and the list does not offer it.
    const others = waiting.filter((g) => g.requester !== me.id);
    ownHidden = waiting.length - others.length;
    ownNote.textContent = ownHidden ? `${ownHidden} pending ${ownHidden === 1 ? "request is" : "requests are"} your own and not listed: someone else must review ${ownHidden === 1 ? "it" : "them"}.` : "";
    const rows = others.map((g) =>
      h(
        "tr",
        { "data-grant": String(g.id) },
        h("td", {}, `#${g.id}`),
        h("td", {}, name(g.requester)),
        h("td", {}, objectName(g)),
        h("td", { class: "reason" }, g.reason),
        h("td", {}, minutes(g.duration_minutes)),
        h("td", {}, ticking("age", g.requested_at)),
        h(
          "td",
          { class: "row-actions" },
          reviews && button(`approve-${g.id}`, "Approve", "primary small", () => dialog.open("approve", g), `Approve request ${g.id} by ${name(g.requester)}`),
          reviews && button(`deny-${g.id}`, "Deny", "secondary small", () => dialog.open("deny", g), `Deny request ${g.id} by ${name(g.requester)}`),
          !reviews && revokes && button(`revoke-${g.id}`, "Withdraw", "secondary small", () => dialog.open("revoke", g), `Withdraw request ${g.id}`),
        ),
      ),
    );
    clear(pending);
    pending.append(table("Requests waiting for review", ["Request", "Requester", "Object", "Reason", "Duration", "Waiting", ""], rows, "No request is waiting for review."));

    const live = grants.filter((g) => g.status === "approved");
    const liveRows = live.map((g) =>
      h(
        "tr",
        { "data-grant": String(g.id) },
        h("td", {}, `#${g.id}`),
        h("td", {}, name(g.requester)),
        h("td", {}, objectName(g)),
        h("td", {}, name(g.reviewer)),
        h("td", {}, ticking("left", g.expires_at)),
        h("td", {}, revokes && button(`revoke-${g.id}`, "Revoke", "secondary small", () => dialog.open("revoke", g), `Revoke grant ${g.id} of ${name(g.requester)}`)),
      ),
    );
    clear(active);
    active.append(table("Active grants", ["Grant", "Requester", "Object", "Approved by", "Time left", ""], liveRows, "No grant is active."));

    const ended = grants.filter((g) => !["pending", "approved"].includes(g.status)).slice(0, 20);
    const endedRows = ended.map((g) =>
      h(
        "tr",
        { "data-grant": String(g.id) },
        h("td", {}, `#${g.id}`),
        h("td", {}, name(g.requester)),
        h("td", {}, objectName(g)),
        h("td", {}, stateBadge(g.status)),
        h("td", {}, g.ended_by !== null ? name(g.ended_by) : g.reviewer !== null ? name(g.reviewer) : "the gateway"),
        h("td", {}, when(g.ended_at ?? g.reviewed_at ?? g.review_by)),
      ),
    );
    clear(history);
    history.append(table("Recently ended requests and grants", ["Request", "Requester", "Object", "State", "By", "When"], endedRows, "Nothing has ended yet."));
  }

  function render(): void {
    // Keep the keyboard where it was when the lists are redrawn.
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.key;
    if (requests) renderMine();
    if (reviews || seesAll) renderReview();
    tick();
    if (focused) (panel.querySelector(`[data-key="${focused}"]`) as HTMLElement | null)?.focus();
  }

  function tick(): void {
    const now = serverNow();
    for (const e of panel.querySelectorAll<HTMLElement>("[data-age]")) e.textContent = e.dataset.age ? duration(now - Number(e.dataset.age)) : "";
    for (const e of panel.querySelectorAll<HTMLElement>("[data-left]")) e.textContent = e.dataset.left ? duration(Number(e.dataset.left) - now) : "";
  }

  // Polls and the refresh after an action may overlap; only the latest answer counts.
  let asked = 0, shown = 0;
  async function refresh(): Promise<void> {
    const n = ++asked;
    try {
      const list = await api<Grant[]>("GET", "/api/grants?limit=200");
      if (n < shown) return;
      shown = n;
      if (list.length) syncServerClock(list[0].now);
      const unknown = list.some((g) => [g.requester, g.reviewer, g.ended_by].some((id) => id !== null && !users.has(id)));
      if (unknown) for (const u of await api<User[]>("GET", "/api/users")) users.set(u.id, u);
      grants = list;
      viewer.update(list);
      player.update(list);
      const sig = JSON.stringify(list.map(({ now: _now, ...g }) => g));
      if (sig !== signature) {
        signature = sig;
        render();
      }
    } catch {
      /* the next poll tries again; the connection badge says whether the gateway is reachable */
    }
  }

  const dialog = reviewDialog(me, name, refresh);
  panel.append(dialog.el);

  async function start(): Promise<void> {
    if (requests) {
      try {
        policy = await api<Policy>("GET", "/api/grants/policy");
        reqDuration.value = String(policy.default_duration_minutes);
        reqDuration.max = String(policy.max_duration_minutes);
        clear(durationHelp);
        durationHelp.append(`Default ${minutes(policy.default_duration_minutes)}; at most ${minutes(policy.max_duration_minutes)} (the gateway's limit). Unreviewed requests expire after ${minutes(policy.pending_ttl_minutes)}.`);
        durationHelp.dataset.max = String(policy.max_duration_minutes);
      } catch (e) {
        durationHelp.textContent = explain(e);
      }
      try {
        const closed = await api<ClosedTicket[]>("GET", "/api/tickets?status=closed&limit=50");
        clear(closedList);
        closedList.append(...closed.map((t) => h("option", { value: String(t.id) }, `${t.customer.name}, closed ${when(t.closed_at)}`)));
      } catch {
        /* suggestions only */
      }
    }
    render();
    await refresh();
    setInterval(refresh, POLL_MS);
    setInterval(tick, 1000);
  }
  start();
  return { panel };
}

type Verb = "approve" | "deny" | "revoke";

/** One modal dialog for approving, denying and revoking, outside the lists that redraw. */
function reviewDialog(me: User, name: (id: number | null) => string, done: () => Promise<void>) {
  const title = h("h2", { id: "rd-title" }, "");
  const facts = h("dl", { class: "facts" });
  const otp = h("input", { id: "rd-otp", name: "otp", inputmode: "numeric", autocomplete: "one-time-code", maxlength: 6, pattern: "[0-9]{6}", "aria-describedby": "rd-otp-help" });
  const otpHelp = h("p", { id: "rd-otp-help", class: "hint" }, "");
  const otpBox = h("div", { class: "stack" }, h("label", { for: "rd-otp" }, "Code from your authenticator app"), otp, otpHelp);
  const note = h("textarea", { id: "rd-note", name: "note", rows: 2, "aria-describedby": "rd-note-help" });
  const noteHelp = h("p", { id: "rd-note-help", class: "hint" }, "Optional, at most 500 characters; the requester sees it and the audit log keeps it.");
  const error = h("p", { class: "error", role: "alert", id: "rd-error" });
  const submit = h("button", { class: "primary", type: "submit", id: "rd-submit" }, "");
  const cancel = h("button", { class: "secondary", type: "button" }, "Cancel");
  const form = h("form", { class: "stack", novalidate: true }, title, facts, otpBox, h("label", { for: "rd-note" }, "Note"), note, noteHelp, error, h("div", { class: "row-actions" }, submit, cancel));
  const el = h("dialog", { class: "review-dialog", "aria-labelledby": "rd-title" }, form) as HTMLDialogElement;
  let verb: Verb = "approve";
  let grant: Grant | null = null;
  let enrolled: boolean | null = null;
  let opener: HTMLElement | null = null;

  cancel.addEventListener("click", () => el.close());
  el.addEventListener("close", () => opener?.focus());

  async function open(v: Verb, g: Grant): Promise<void> {
    verb = v;
    grant = g;
    opener = document.activeElement as HTMLElement | null;
    if (v === "approve" && enrolled === null) {
      try {
        enrolled = (await api<{ totp: boolean }>("GET", "/api/me/mfa")).totp;
      } catch {
        enrolled = true;
      }
    }
    const words = { approve: ["Approve", "Approve request"], deny: ["Deny", "Deny request"], revoke: [g.status === "pending" ? "Withdraw" : "Revoke", g.status === "pending" ? "Withdraw request" : "Revoke grant"] }[v];
    title.textContent = `${words[1]} #${g.id}`;
    submit.textContent = words[0];
    clear(facts);
    const fact = (k: string, val: string) => [h("dt", {}, k), h("dd", {}, val)];
    facts.append(...fact("Requester", name(g.requester)), ...fact("Object", g.kind === "recording" ? `recording ${g.object}` : `transcript of ticket ${g.object}`), ...fact("Reason", g.reason), ...fact("Duration", minutes(g.duration_minutes)));
    otpBox.hidden = v !== "approve" || enrolled === false;
    otpHelp.textContent = "Each approval needs the current six-digit code; the gateway checks it and a code works only once.";
    otp.value = "";
    otp.removeAttribute("aria-invalid");
    note.value = "";
    error.textContent = v === "approve" && enrolled === false ? "Your account has no authenticator app enrolled; where the gateway requires one, approving is refused until you enrol." : "";
    el.showModal();
    (otpBox.hidden ? note : otp).focus();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!grant) return;
    const code = otp.value.trim();
    if (!otpBox.hidden && !/^[0-9]{6}$/.test(code)) {
      error.textContent = "Enter the six-digit code your authenticator app shows now.";
      otp.setAttribute("aria-invalid", "true");
      otp.focus();
      return;
    }
    if ([...note.value].length > 500) {
      error.textContent = "The note is longer than 500 characters.";
      note.focus();
      return;
    }
    const body: Record<string, string> = {};
    if (note.value.trim()) body.note = note.value.trim();
    if (!otpBox.hidden) body.otp = code;
    submit.disabled = true;
    try {
      await call("POST", `/api/grants/${grant.id}/${verb}`, body);
      el.close();
      await done();
    } catch (err) {
      if (err instanceof ApiError && err.code === "second_factor_required") {
        error.textContent = "The gateway did not accept that code. Enter the code your authenticator app shows now (each code works only once).";
        otp.setAttribute("aria-invalid", "true");
        otp.select();
        otp.focus();
      } else if (err instanceof ApiError && err.code === "retry_later") {
        error.textContent = `Too many wrong codes: ${err.message}.`;
      } else if (err instanceof ApiError && err.status === 403) {
        error.textContent = grant.requester === me.id ? "You cannot review your own request." : "Your role may not do this.";
      } else if (err instanceof ApiError && err.status === 409) {
        error.textContent = `This is no longer possible: ${err.message}.`;
        await done();
      } else {
        error.textContent = explain(err);
      }
    } finally {
      submit.disabled = false;
    }
  });

  return { el, open };
}
