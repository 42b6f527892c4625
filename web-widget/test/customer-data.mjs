// Customer data in the agent console: contact details arrive masked; a lead reveals one with a
// reason (checked for length before it is sent), the clear value appears and the reveal is in
// the audit log with the reason; a plain agent gets no Reveal button.
import { run, page, axe, shot, staffLogin, check, BASE, PASSWORD } from "./lib.mjs";

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
