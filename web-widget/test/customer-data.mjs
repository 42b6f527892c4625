// Customer data in the agent console: contact details arrive masked; a lead reveals one with a
// reason (checked for length before it is sent), the clear value appears and the reveal is in
// the audit log with the reason; a plain agent gets no Reveal button. Copying out of the
// transcript or the customer panel, and exporting the transcript, show a notice that the act is
// recorded, and the audit log has it (written before the notice shows, without the text).
import { readFileSync } from "node:fs";
import { run, page, axe, shot, staffLogin, check, BASE, PASSWORD } from "./lib.mjs";

/** Selects the text of the first element matching `selector` and copies it with Ctrl+C. */
async function copy(p, selector) {
  await p.evaluate((sel) => {
    const el = document.querySelector(sel);
    const r = document.createRange();
    r.selectNodeContents(el);
    const s = getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }, selector);
  await p.keyboard.press("Control+c");
}

const REASON = "The customer asked which address the parcel went to";

async function admin(path) {
  const s = await (await fetch(BASE + "/api/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: PASSWORD }),
  })).json();
  return (await fetch(BASE + path, { headers: { authorization: `Bearer ${s.token}` } })).json();
}

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const lead = await page(ctx);
  await staffLogin(lead, "/console", "lina");
  await lead.locator(".qitem", { hasText: "Where is my parcel?" }).getByRole("button", { name: /Claim/ }).click();
  const chat = lead.locator(".chat:not([hidden])");
  await chat.locator("[data-masked=email]", { hasText: "a***@example.com" }).waitFor();
  const phone = await chat.locator("[data-masked=phone]").innerText();
  check(phone.endsWith("0132") && !phone.includes("555"), `email and phone arrive masked (${phone})`);
  check(!(await lead.content()).includes("ada@example.com"), "the clear address is not in the page");

  await chat.locator("[data-reveal=email]").click();
  const reason = chat.locator("textarea.reason");
  await reason.waitFor();
  check(await lead.evaluate(() => document.activeElement?.classList.contains("reason")), "Reveal asks for a reason and focuses it");
  await reason.fill("because");
  await chat.locator("[data-action=confirm-reveal]").click();
  await chat.locator(".reveal-form .error", { hasText: "10 to 500 characters" }).waitFor();
  check(true, "a reason under 10 characters is refused before anything is sent");
  await axe(lead, "console with the reveal form");
  await shot(lead, "console-reveal");
  // A note arriving while the reason is typed does not lose it.
  await reason.fill(REASON.slice(0, 20));
  await chat.locator(".note-input").fill("Parcel query");
  await chat.locator(".note-form button").click();
  await chat.locator(".notes li", { hasText: "Parcel query" }).waitFor();
  check((await reason.inputValue()) === REASON.slice(0, 20), "the reason being typed survives the panel updating");
  await reason.fill(REASON);
  await chat.locator("[data-action=confirm-reveal]").click();
  await chat.locator("[data-value=email]", { hasText: "ada@example.com" }).waitFor();
  check(await chat.locator(".contact .recorded").isVisible(), "the clear email appears, marked as recorded");
  check(await chat.locator("[data-masked=phone]").isVisible(), "the phone stays masked");
  await shot(lead, "console-customer");

  const entries = await admin("/api/audit?action=pii_revealed");
  const mine = entries.filter((e) => e.outcome === "allowed");
  check(mine.length === 1 && mine[0].detail.includes("field=email") && mine[0].detail.includes(REASON), `the reveal is in the audit log with its field and reason (${JSON.stringify(mine.map((e) => e.detail))})`);
  check(mine[0].role === "lead", "the entry names the lead's role");

  // Copying from the transcript: the notice comes once the entry is written.
  check(await chat.locator(".recorded-notice").isHidden(), "no notice before anything is copied");
  await copy(lead, ".chat:not([hidden]) .log .msg:not(.sys)");
  const notice = chat.locator(".recorded-notice", { hasText: "Copying customer data is recorded" });
  await notice.waitFor();
  const seqOf = async () => Number((await notice.innerText()).match(/audit entry ([0-9]+)/)[1]);
  const copySeq = await seqOf();
  let copies = await admin("/api/audit?action=customer_data_copied");
  check(copies.length === 1 && copies[0].seq === copySeq && copies[0].detail.startsWith("source=transcript; chars="), `the copy from the conversation is audit entry ${copySeq} (${copies[0]?.detail})`);
  check(!JSON.stringify(copies).includes("Where is my parcel"), "the entry does not hold the copied text");
  await axe(lead, "console with the recorded-copy notice");
  // From the customer panel.
  await copy(lead, ".chat:not([hidden]) [data-value=email]");
  await lead.waitForFunction((n) => document.querySelector(".chat:not([hidden]) .recorded-notice").textContent.includes(`customer panel is audit entry`) , copySeq);
  copies = await admin("/api/audit?action=customer_data_copied");
  check(copies.length === 2 && copies[0].detail === "source=customer; chars=15", `the copy of the revealed email is recorded (${copies[0].detail})`);
  // Typing in the reply field and copying it is the agent's own text: not reported.
  await chat.locator("textarea.reply").fill("my own words");
  await chat.locator("textarea.reply").selectText();
  await lead.keyboard.press("Control+c");
  await lead.waitForTimeout(500);
  check((await admin("/api/audit?action=customer_data_copied")).length === 2, "copying from the agent's own reply field is not reported");
  await chat.locator("textarea.reply").fill("");

  // Export the transcript: recorded first, then the file.
  const download = lead.waitForEvent("download");
  await chat.locator("[data-action=export]").click();
  const file = await download;
  check(file.suggestedFilename() === `ticket-${await chat.getAttribute("id").then((id) => id.replace("panel-", ""))}-transcript.txt`, `the export is a text file named after the ticket (${file.suggestedFilename()})`);
  const text = readFileSync(await file.path(), "utf8");
  check(text.includes("Where is my parcel?") && text.includes("lina joined the conversation"), "the file holds the conversation");
  await chat.locator(".recorded-notice", { hasText: "Transcript exported" }).waitFor();
  const exports = await admin("/api/audit?action=transcript_exported");
  check(exports.length === 1 && exports[0].outcome === "allowed" && text.includes(`audit entry ${exports[0].seq}`), "the export is in the audit log, and the file names its entry");
  await shot(lead, "console-export");
  await ctx.close();

  // A plain agent sees the masked values and no Reveal button.
  const actx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const agent = await page(actx);
  await staffLogin(agent, "/console", "grace");
  await agent.locator(".qitem", { hasText: "Can I change my order?" }).getByRole("button", { name: /Claim/ }).click();
  const achat = agent.locator(".chat:not([hidden])");
  await achat.locator("[data-masked=email]", { hasText: "b***@example.com" }).waitFor();
  check((await achat.locator("[data-reveal]").count()) === 0, "an agent, who may not reveal, gets no Reveal button");
  await actx.close();
});
