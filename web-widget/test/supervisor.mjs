// Access to a closed transcript, end to end in the supervisor console: a supervisor requests it
// (bad input refused with plain messages), an approver enrolled in TOTP through the API
// approves it with a code computed here (a wrong code is refused without logging out), the
// supervisor reads the transcript with the time left ticking until the grant expires on the
// test's clock; a second grant is revoked under the supervisor's eyes, a third request denied.
// Nobody is offered their own request. The audit tab verifies the chain, searches and pages.
// Each role sees its own sections; axe-core on each. Closed tickets come from tests/e2e/browser.rs, which also moves
// the gateway's clock when asked (hooks).
import { createHmac } from "node:crypto";
import { run, page, axe, shot, staffLogin, check, hook, BASE, PASSWORD, WAIT } from "./lib.mjs";

const [CLOSED1, CLOSED2] = process.env.DESKGATE_CLOSED.split(",").map(Number);
const OPEN = Number(process.env.DESKGATE_OPEN);
const REASON = "Chargeback dispute 4411: the bank asks for the chat record";

/** RFC 4648 base32, as authenticator apps read the seed. */
function base32(s) {
  const A = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, "").toUpperCase()) {
    value = ((value << 5) | A.indexOf(c)) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP with HMAC-SHA1, six digits, 30-second steps. */
function totp(secret, unixSecs) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(Math.floor(unixSecs / 30)));
  const mac = createHmac("sha1", base32(secret)).update(msg).digest();
  const o = mac[19] & 15;
  const n = (((mac[o] & 0x7f) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3]) % 1_000_000;
  return String(n).padStart(6, "0");
}

async function rest(method, path, token, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try {
    data = await r.json();
  } catch {
    /* empty */
  }
  return { status: r.status, body: data };
}

async function apiLogin(username) {
  const r = await rest("POST", "/api/session", null, { username, password: PASSWORD });
  if (r.status !== 201) throw new Error(`login ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const tabNames = (p) => p.locator("[role=tab]").allInnerTexts();
/** "59m 58s" or "1h 00m" in seconds. */
const seconds = (t) => {
  const m = t.match(/(?:(\d+)h )?(?:(\d+)m)?\s?(?:(\d+)s)?$/);
  return m ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : NaN;
};

await run(async (browser) => {
  check(totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59) === "287082", "the test's TOTP agrees with RFC 6238's SHA-1 vector");

  // --- The supervisor asks -----------------------------------------------------------------
  const samCtx = await browser.newContext({ viewport: { width: 1280, height: 1240 } });
  const sam = await page(samCtx);
  await staffLogin(sam, "/supervisor", "sam");
  check(JSON.stringify(await tabNames(sam)) === '["Dashboard","Access requests"]', `a supervisor sees the dashboard and access requests, not review or the audit log (${await tabNames(sam)})`);
  await sam.locator("[role=tab][aria-selected=true]").focus();
  await sam.keyboard.press("ArrowRight");
  check((await sam.locator("#tab-access").getAttribute("aria-selected")) === "true", "the arrow keys move between the console's sections");
  await sam.locator("#req-duration").waitFor();
  await sam.waitForFunction(() => document.querySelector("#req-duration").value === "60");
  const help = await sam.locator("#req-duration-help").innerText();
  check(/Default 1 h; at most 8 h/.test(help), `the form offers 1 h and shows the gateway's cap (${help})`);
  check((await sam.locator("#review-list").count()) === 0, "a supervisor is not offered the review list");
  await axe(sam, "supervisor access requests");

  const submit = async (ticket, reason, minutes) => {
    await sam.fill("#req-ticket", String(ticket));
    await sam.fill("#req-reason", reason);
    await sam.fill("#req-duration", String(minutes));
    await sam.click("#req-form button[type=submit]");
  };
  const reqError = (text) => sam.locator("#req-error", { hasText: text }).waitFor();
  await submit(CLOSED1, "too short", 60);
  await reqError("10–500 characters; it is 9");
  check(true, "a reason under 10 characters is refused before sending");
  await submit(CLOSED1, REASON, 481);
  await reqError("1 to 480 minutes");
  check(true, "a duration over the cap is refused with the cap named");
  await submit(OPEN, REASON, 60);
  await reqError(`Ticket ${OPEN} is not closed`);
  check(true, "the gateway refuses a ticket that is not closed, and the form says so");
  await submit(999999, REASON, 60);
  await reqError("There is no ticket 999999");
  check((await sam.locator("#my-requests tr[data-grant]").count()) === 0, "refused requests leave nothing behind");
  await submit(CLOSED1, REASON, 60);
  await sam.locator("#req-done", { hasText: "Request #" }).waitFor();
  const row1 = sam.locator("#my-requests tr[data-grant]").first();
  await row1.locator("[data-state=pending]").waitFor();
  const grant1 = Number(await row1.getAttribute("data-grant"));
  check(true, `the request (#${grant1}) is listed as pending review`);

  // --- Another supervisor's request, then she becomes an approver ---------------------------
  const sue = await apiLogin("sue");
  const sueReq = await rest("POST", "/api/grants", sue.token, { kind: "transcript", object: CLOSED2, reason: "Quality review of the damaged parcel case", duration_minutes: 30 });
  check(sueReq.status === 201, "sue asks for the other transcript");
  const admin = await apiLogin("admin");
  const promoted = await rest("PATCH", `/api/users/${sue.user.id}`, admin.token, { role: "approver" });
  check(promoted.status === 200, "the admin makes sue an approver");
  const withdrawn = await rest("GET", `/api/grants/${sueReq.body.id}`, admin.token);
  check(withdrawn.body.status === "revoked", `her change of role withdraws her own pending request (${withdrawn.body.status})`);

  // --- The approver reviews -------------------------------------------------------------------
  const aprCtx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const april = await page(aprCtx);
  await staffLogin(april, "/supervisor", "april");
  check(JSON.stringify(await tabNames(april)) === '["Dashboard","Review","Audit log"]', `an approver sees review and the audit log (${await tabNames(april)})`);
  check((await april.locator("[data-tile=depth]").count()) === 0, "an approver is not shown the live queue (not in the role's permissions)");
  check((await april.locator("#req-form").count()) === 0, "an approver is not offered the request form");
  await april.click("#tab-access");
  const pendingRow = (id) => april.locator(`#review-list tr[data-grant="${id}"]`);
  await pendingRow(grant1).waitFor();
  check((await pendingRow(grant1).innerText()).includes("sam"), "the review list names the requester");
  check((await pendingRow(grant1).innerText()).includes(REASON), "and shows the reason");
  await april.waitForFunction((id) => /^\d+s$/.test(document.querySelector(`#review-list tr[data-grant="${id}"] [data-age]`)?.textContent ?? ""), grant1);
  check(true, "and how long the request has waited");

  // Enrol april's authenticator through the API, as her phone would.
  const aprApi = await apiLogin("april");
  const begun = await rest("POST", "/api/me/mfa/totp", aprApi.token, {});
  check(begun.status === 201, "april starts a TOTP enrolment");
  const secret = begun.body.secret;
  let { now_ms } = await hook("now");
  const confirmed = await rest("POST", "/api/me/mfa/totp/confirm", aprApi.token, { code: totp(secret, now_ms / 1000) });
  check(confirmed.status === 200, "april confirms it with her first code");
  await axe(april, "approver review list");
  await shot(april, "supervisor-review");

  await april.click(`[data-key="approve-${grant1}"]`);
  const dialog = april.locator("dialog.review-dialog");
  await dialog.waitFor();
  await april.locator("#rd-otp").waitFor();
  check(await april.evaluate(() => document.activeElement?.id === "rd-otp"), "approving asks for the authenticator code, with focus in the field");
  await axe(april, "approve dialog");
  await april.click("#rd-submit");
  await april.locator("#rd-error", { hasText: "six-digit code" }).waitFor();
  const right = totp(secret, now_ms / 1000 + 30);
  const wrongCode = String((Number(right) + 1) % 1_000_000).padStart(6, "0");
  await april.fill("#rd-otp", wrongCode);
  await april.click("#rd-submit");
  await april.locator("#rd-error", { hasText: "did not accept that code" }).waitFor();
  check(await dialog.isVisible(), "a wrong code is refused plainly (second_factor_required) and the dialog stays open");
  check((await april.locator("#tab-access").count()) === 1, "and the approver is still logged in");
  await april.fill("#rd-otp", right);
  await april.fill("#rd-note", "ok for the dispute");
  await april.click("#rd-submit");
  await dialog.waitFor({ state: "hidden" });
  await april.locator(`#active-grants tr[data-grant="${grant1}"]`).waitFor();
  check(true, "with the current code the request is approved and listed as an active grant");

  // --- Sue cannot review her own request ------------------------------------------------------
  const sueCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const suePage = await page(sueCtx);
  await staffLogin(suePage, "/supervisor", "sue");
  await suePage.click("#tab-access");
  await suePage.locator("#review-list").waitFor();
  check((await suePage.locator(`#review-list tr[data-grant="${sueReq.body.id}"]`).count()) === 0, "an approver's own (withdrawn) request is not offered to her for review");
  // A change of role ends the sessions it was granted under: she logs in again.
  const sueNow = await apiLogin("sue");
  const selfApprove = await rest("POST", `/api/grants/${sueReq.body.id}/approve`, sueNow.token, { otp: "000000" });
  check(selfApprove.status === 403, `and the gateway refuses it (${selfApprove.status})`);
  await sueCtx.close();

  // --- The supervisor reads, until the grant expires -------------------------------------------
  const openBtn = sam.locator(`#my-requests tr[data-grant="${grant1}"] button`, { hasText: "Open transcript" });
  await sam.locator(`#my-requests tr[data-grant="${grant1}"] [data-state=approved]`).waitFor();
  check((await sam.locator(`#my-requests tr[data-grant="${grant1}"]`).innerText()).includes("ok for the dispute"), "the supervisor sees the approval and its note without reloading");
  await openBtn.click();
  await sam.locator("#viewer .msg", { hasText: "My order 4411 never arrived" }).waitFor();
  await sam.locator("#viewer .msg", { hasText: "Thanks, I am looking into it" }).waitFor();
  check(true, "the transcript opens in the viewer");
  const timer = sam.locator("#viewer-timer");
  const first = seconds(await timer.innerText());
  check(first > 3500 && first <= 3600, `the time left is shown (${await timer.innerText()})`);
  await sam.waitForFunction(
    (t0) => {
      const m = document.querySelector("#viewer-timer").textContent.match(/(\d+)m (\d+)s$/);
      return m && Number(m[1]) * 60 + Number(m[2]) < t0;
    },
    first,
    { timeout: WAIT },
  );
  check(true, `the time left ticks down (${await timer.innerText()})`);
  await shot(sam, "supervisor-grants");
  await axe(sam, "transcript viewer");

  await hook("advance", { seconds: 3601 });
  await sam.locator("#viewer-status", { hasText: "the grant expired" }).waitFor();
  check((await sam.locator("#viewer .msg").count()) === 0, "when the grant expires the viewer takes the transcript off the screen");
  const samApi = await apiLogin("sam");
  const late = await rest("GET", `/api/grants/${grant1}/transcript`, samApi.token);
  check(late.status === 409, `and the gateway refuses to read it again (${late.status})`);
  await april.locator(`#grant-history tr[data-grant="${grant1}"] [data-state=expired]`).waitFor();
  check(true, "the approver sees the grant among the ended ones, expired");

  // --- A second grant, revoked while open ------------------------------------------------------
  await submit(CLOSED2, REASON, 60);
  await sam.locator("#req-done", { hasText: "Request #" }).waitFor();
  const grant2 = Number((await sam.locator("#req-done").innerText()).match(/#(\d+)/)[1]);
  await pendingRow(grant2).waitFor();
  ({ now_ms } = await hook("now"));
  await april.click(`[data-key="approve-${grant2}"]`);
  await april.fill("#rd-otp", totp(secret, now_ms / 1000));
  await april.click("#rd-submit");
  await dialog.waitFor({ state: "hidden" });
  await sam.locator(`#my-requests tr[data-grant="${grant2}"] button`, { hasText: "Open transcript" }).click();
  await sam.locator("#viewer .msg", { hasText: "The parcel came damaged" }).waitFor();
  await april.click(`[data-key="revoke-${grant2}"]`);
  await dialog.waitFor();
  check((await april.locator("#rd-title").innerText()).startsWith("Revoke grant"), "the approver revokes the open grant");
  await april.click("#rd-submit");
  await dialog.waitFor({ state: "hidden" });
  await sam.locator("#viewer-status", { hasText: "the grant was revoked" }).waitFor();
  check((await sam.locator("#viewer .msg").count()) === 0, "the supervisor's viewer closes the transcript");
  const revoked = await rest("GET", `/api/grants/${grant2}/transcript`, samApi.token);
  check(revoked.status === 409, `the revoked grant's transcript is closed on the gateway too (${revoked.status})`);

  // --- A request denied, with a note -----------------------------------------------------------
  await submit(CLOSED1, "The customer disputes the refund amount", 30);
  await sam.locator("#req-done", { hasText: "Request #" }).waitFor();
  const grant3 = Number((await sam.locator("#req-done").innerText()).match(/#(\d+)/)[1]);
  await pendingRow(grant3).waitFor();
  await april.click(`[data-key="deny-${grant3}"]`);
  await dialog.waitFor();
  check(await april.locator("#rd-otp").isHidden(), "denying asks for no code");
  await april.fill("#rd-note", "Use the dispute export instead");
  await april.click("#rd-submit");
  await dialog.waitFor({ state: "hidden" });
  const denied = sam.locator(`#my-requests tr[data-grant="${grant3}"]`);
  await denied.locator("[data-state=denied]").waitFor();
  check((await denied.innerText()).includes("Use the dispute export instead"), "the supervisor sees the denial and its note without reloading");
  check((await denied.locator("button").count()) === 0, "a denied request opens nothing");

  // --- The audit log -----------------------------------------------------------------------------
  await april.click("#tab-audit");
  await april.locator("#chain-status[data-chain=ok]").waitFor();
  const chain = await april.locator("#chain-status").innerText();
  check(/Chain verified — \d+ entries, \d+ signed checkpoints?; /.test(chain), `the chain's status is shown (${chain})`);
  await april.locator("#audit-results tr[data-seq]").first().waitFor();
  await april.fill("#f-action", "grant_approved");
  await april.selectOption("#f-outcome", "allowed");
  await april.click("#audit-form button[type=submit]");
  await april.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#audit-results tr[data-seq] [data-action]")];
    return rows.length === 2 && rows.every((r) => r.textContent === "grant_approved");
  });
  check(true, "searching by action finds the two approvals");
  await april.selectOption("#f-outcome", "");
  await april.fill("#f-action", "no_such_action");
  await april.click("#audit-form button[type=submit]");
  await april.locator("#audit-error", { hasText: "unknown action" }).waitFor();
  check(true, "an unknown action is refused by the gateway with a plain message");
  await april.fill("#f-action", "audit_read");
  await april.click("#audit-form button[type=submit]");
  await april.locator("#audit-results td.detail", { hasText: "chain status: ok" }).first().waitFor();
  check(true, "checking the chain is itself in the audit log");
  await april.fill("#f-action", "");
  await april.selectOption("#f-limit", "25");
  await april.click("#audit-form button[type=submit]");
  // The previous search's page 1 is still shown until this one's arrives: wait for a full page.
  await april.waitForFunction(() => {
    const actions = [...document.querySelectorAll("#audit-results tr[data-seq] [data-action]")].map((a) => a.textContent);
    return actions.length === 25 && actions.some((a) => a !== "audit_read");
  });
  await april.locator("#audit-summary", { hasText: "page 1" }).waitFor();
  const newest = await april.locator("#audit-results tr[data-seq]").first().getAttribute("data-seq");
  await april.getByRole("button", { name: "Older →" }).click();
  await april.locator("#audit-summary", { hasText: "page 2" }).waitFor();
  const older = Number(await april.locator("#audit-results tr[data-seq]").first().getAttribute("data-seq"));
  check(older < Number(newest) - 24, `paging goes back through the log (${newest} then ${older})`);
  await april.getByRole("button", { name: "← Newer" }).click();
  await april.locator("#audit-summary", { hasText: "page 1" }).waitFor();
  await april.fill("#f-customer", "-3");
  await april.click("#audit-form button[type=submit]");
  await april.locator("#audit-error", { hasText: "Customer id must be a whole number" }).waitFor();
  await april.fill("#f-customer", "");
  await april.fill("#f-from", "2999-01-01T00:00:00");
  await april.click("#audit-form button[type=submit]");
  await april.locator("#audit-summary", { hasText: "No entry matches" }).waitFor();
  check(true, "a time range with nothing in it says so");
  await april.fill("#f-from", "");
  await april.click("#audit-form button[type=submit]");
  await april.locator("#audit-summary", { hasText: "page 1" }).waitFor();
  await axe(april, "audit log");
  await shot(april, "supervisor-audit");

  // --- An admin sees every request and may end them, but reviews none ---------------------------
  const pending = await rest("POST", "/api/grants", samApi.token, { kind: "transcript", object: CLOSED2, reason: "Quality review of the damaged parcel case", duration_minutes: 30 });
  check(pending.status === 201, "the supervisor asks for the other transcript");
  const admCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const adm = await page(admCtx);
  await staffLogin(adm, "/supervisor", "admin");
  check(JSON.stringify(await tabNames(adm)) === '["Dashboard","Access","Audit log"]', `an admin sees access and the audit log (${await tabNames(adm)})`);
  await adm.click("#tab-access");
  await adm.locator(`#review-list tr[data-grant="${pending.body.id}"]`).waitFor();
  check((await adm.locator("[data-key^=approve-]").count()) === 0, "an admin is offered no approval");
  check((await adm.locator(`[data-key="revoke-${pending.body.id}"]`).count()) === 1, "but may withdraw a pending request");
  await axe(adm, "admin access view");
  await admCtx.close();
});
