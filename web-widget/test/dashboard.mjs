// The supervisor's dashboard while things happen: the test runs step-up verifications through
// the real SMTP capture and a card number through a raw socket (hooks answered by
// tests/e2e/browser.rs); the verification-outcome and blocked-card charts must change, and
// the daily-cap lock-out must arrive as a live security alert. axe-core on the result.
import { run, page, axe, shot, staffLogin, check, hook, WAIT } from "./lib.mjs";

const OUTCOMES = ["approved", "failed_code", "expired", "max_attempts", "mail_failed", "locked"];

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
  const sup = await page(ctx);
  await staffLogin(sup, "/supervisor", "sam");
  const totals = () =>
    sup.evaluate((names) => Object.fromEntries(names.map((n) => [n, Number(document.querySelector(`[data-outcome=${n}]`)?.textContent ?? NaN)])), OUTCOMES);
  await sup.locator("[data-chart=verifications] [data-outcome=approved]").waitFor();
  // Grace's console is open (tests/e2e/browser.rs): the dashboard lists her as online.
  const online = sup.locator("[data-list=online] li[data-agent]", { hasText: "grace" });
  await online.waitFor({ timeout: WAIT });
  const line = await online.innerText();
  check(/grace 1 console open/.test(line), `the agents online are listed with their consoles (${line})`);
  const before = await totals();
  check(OUTCOMES.every((n) => before[n] === 0), `the verification chart starts at zero for every outcome (${JSON.stringify(before)})`);
  const desc = (chart) => sup.locator(`[data-chart=${chart}] svg desc`).textContent();
  // Two samples, so that the charts have a first interval to draw.
  await sup.waitForFunction(() => !document.querySelector("[data-chart=verifications] svg")?.textContent.includes("collecting"), null, { timeout: WAIT });
  check(/highest per interval: Approved 0/.test(await desc("verifications")), "before any verification the chart is flat");
  check((await sup.locator("#alerts-h").count()) === 1, "a supervisor sees the security alerts panel");
  check((await sup.locator(".alert-item").count()) === 0, "no alert yet");

  const { ticket } = await hook("step_up");
  const want = { approved: 1, failed_code: 5, expired: 1, max_attempts: 1, mail_failed: 1, locked: 1 };
  await sup.waitForFunction(
    ([names, want]) => names.every((n) => Number(document.querySelector(`[data-outcome=${n}]`)?.textContent) === want[n]),
    [OUTCOMES, want],
    { timeout: WAIT },
  );
  check(true, `the legend counts each outcome (${JSON.stringify(await totals())})`);
  await sup.waitForFunction(() => /highest per interval: Approved 1, Wrong code [1-5]/.test(document.querySelector("[data-chart=verifications] svg desc")?.textContent ?? ""), null, { timeout: WAIT });
  for (const n of OUTCOMES) await sup.locator(`[data-chart=verifications] rect.seg.s-${n}`).first().waitFor();
  check(true, "the verification chart draws a column segment for each outcome");
  check(true, "the verification chart shows every outcome: approved, wrong code, after expiry, out of attempts, email not sent, locked");

  const alert = sup.locator(".alert-item[data-kind=verification_locked]");
  await alert.waitFor();
  const text = await alert.innerText();
  check(text.includes(`ticket ${ticket}`) && /wrong codes/.test(text), `the lock-out arrives as a live security alert (${text.replace(/\n/g, " / ")})`);
  check((await sup.locator("#alert-count").innerText()) === "1", "the alerts panel counts it");

  check(/Blocked card numbers: latest \d+, highest 0/.test(await desc("blocked")), "no card number blocked yet");
  await hook("card");
  await sup.waitForFunction(() => /highest [1-9]/.test(document.querySelector("[data-chart=blocked] svg desc")?.textContent ?? ""), null, { timeout: WAIT });
  await sup.locator("[data-chart=blocked] figcaption", { hasText: "total since the gateway started: 1" }).waitFor();
  check(true, "the blocked-card chart rises after the server withholds a card number");
  await shot(sup, "supervisor");
  await axe(sup, "supervisor dashboard with an alert");
});
