// The widget on a site's own domain (an origin the site lists in allowed_origins, not the
// gateway's), with the operator's pre-chat setting on (`prechat = true` in [[sites]]): the form
// appears with no attribute on the page (data-prechat="off" still turns it off); with nobody
// online the widget reads the presence answer across origins and says so, promising an email
// because the customer gave an address; the agent sees the name and the masked email; a reply
// written after the customer left arrives by email.
import { readdirSync, readFileSync } from "node:fs";
import { run, page, axe, shot, staffLogin, check, BASE, WAIT } from "./lib.mjs";

const SHOP = process.env.DESKGATE_SHOP_ORIGIN;
const MAILDIR = process.env.DESKGATE_MAILDIR;

async function mails() {
  return readdirSync(MAILDIR)
    .filter((f) => f.endsWith(".txt"))
    .map((f) => readFileSync(`${MAILDIR}/${f}`, "utf8"));
}

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 }, locale: "en-US" });
  const cust = await page(ctx);
  await cust.route(SHOP + "/", (r) =>
    r.fulfill({
      contentType: "text/html",
      body: `<!doctype html><html lang="en"><title>ACME shop</title><main><h1>ACME shop</h1></main><script src="${BASE}/widget.js" data-site="demo"></script></html>`,
    }),
  );
  // The page may still turn the form off (in a tab of its own: the widget keeps its visitor in
  // the tab's sessionStorage, and this one must start with none).
  const nf = await page(ctx);
  await nf.route(SHOP + "/no-form", (r) =>
    r.fulfill({
      contentType: "text/html",
      body: `<!doctype html><html lang="en"><title>ACME shop</title><main><h1>ACME shop</h1></main><script src="${BASE}/widget.js" data-site="demo" data-prechat="off"></script></html>`,
    }),
  );
  await nf.goto(SHOP + "/no-form");
  await nf.locator(".launcher").click();
  await nf.locator("textarea").waitFor();
  check(await nf.locator("form.prechat").isHidden(), "data-prechat=off overrides the site's setting");
  await nf.close();

  const presence = cust.waitForResponse((r) => r.url().includes("/presence"));
  await cust.goto(SHOP + "/");
  await cust.locator(".launcher").click();
  const answer = await presence;
  check(answer.status() === 200 && answer.headers()["access-control-allow-origin"] === SHOP, `the presence answer allows the site's origin (${answer.headers()["access-control-allow-origin"]})`);
  await cust.locator("form.prechat").waitFor();
  check(true, "the site's pre-chat setting shows the form, with no attribute on the page");
  await axe(cust, "pre-chat form on the site's own domain");
  await cust.locator("input[name=name]").fill("Ada Lovelace");
  await cust.locator("input[name=email]").fill("ada@example.com");
  await cust.locator("form.prechat button[type=submit]").click();
  await cust.locator(".notice", { hasText: "No agent is online right now" }).waitFor();
  check(true, "with nobody online the widget says so");
  await cust.locator(".notice", { hasText: "we will email our reply to you" }).waitFor();
  check(true, "with nobody online and an email given, the widget says the reply will come by email");
  await cust.locator("textarea").fill("Do you ship to Iceland?");
  await cust.locator("textarea").press("Enter");
  await cust.locator(".msg.me .meta", { hasText: "Sent" }).waitFor();
  check(true, "the customer on the site's domain chats through the gateway");
  await shot(cust, "widget-offline-agent");
  await ctx.close();
  check(true, "the customer leaves");

  const agentCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const agent = await page(agentCtx);
  await staffLogin(agent, "/console", "grace");
  await agent.locator(".qitem", { hasText: "Do you ship to Iceland?" }).getByRole("button", { name: /Claim/ }).click();
  const chat = agent.locator(".chat:not([hidden])");
  await chat.locator(".facts dd", { hasText: "Ada Lovelace" }).waitFor();
  await chat.locator("[data-masked=email]", { hasText: "a***@example.com" }).waitFor();
  check(true, "the agent sees the pre-chat name and the email, masked");
  check(!(await agent.content()).includes("ada@example.com"), "the clear address is nowhere in the console");
  const reply = chat.locator("textarea.reply");
  await reply.fill("Yes, we ship to Iceland within five days.");
  await reply.press("Enter");
  await chat.locator(".msg.me .meta", { hasText: "sent" }).waitFor();
  const deadline = Date.now() + WAIT;
  let mail;
  while (!(mail = (await mails()).find((m) => m.includes("we ship to Iceland")))) {
    if (Date.now() > deadline) throw new Error("no reply email arrived");
    await new Promise((r) => setTimeout(r, 100));
  }
  check(/^To: ada@example\.com/m.test(mail), "the reply was emailed to the address the customer gave");
  check(mail.includes("replies to this email are not read"), "the email says where to answer");
});
