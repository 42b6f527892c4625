// Step-up verification in the browser, end to end: a customer signed in on the site (an
// identity token the site signed with its secret) asks for an address change; the agent sees
// the ticket flagged, requests verification from the customer panel; the widget's code panel
// shows where the code went, the attempts left and a ticking countdown; the code is read from
// the real SMTP server's capture; a wrong code shows the attempts left; a reload asks again;
// the right code gives the agent the verified badge, counting down. The code never reaches
// the console or the chat. A second gateway whose mail server is down shows both sides a
// clear failure.
import { readdirSync, readFileSync } from "node:fs";
import { run, page, axe, shot, staffLogin, check, BASE, WAIT } from "./lib.mjs";

const TOKEN = process.env.DESKGATE_IDENTITY_TOKEN;
const MAILDIR = process.env.DESKGATE_MAILDIR;
const BROKEN = process.env.DESKGATE_BROKEN_URL;
const BROKEN_TOKEN = process.env.DESKGATE_BROKEN_IDENTITY_TOKEN;

/** The host page of a site whose customer is logged in: the widget gets the signed token. */
async function signedInPage(browser, base, token, name) {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 820 }, locale: "en-US" });
  const p = await page(ctx);
  await p.route(base + "/account", (r) =>
    r.fulfill({
      contentType: "text/html",
      body: `<!doctype html><html lang="en"><title>${name}'s account</title><main><h1>Your account</h1></main><script src="/widget.js" data-site="demo" data-identity-token="${token}"></script></html>`,
    }),
  );
  await p.goto(base + "/account");
  return { ctx, p };
}

/** The code in the newest email of the capture, waiting for the `n`th email to arrive. */
async function codeFromMail(n) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const mails = readdirSync(MAILDIR).filter((f) => f.endsWith(".txt")).sort((a, b) => parseInt(a) - parseInt(b));
    if (mails.length >= n) {
      const text = readFileSync(`${MAILDIR}/${mails[n - 1]}`, "utf8");
      const m = text.match(/Your code: ([0-9]{6})/);
      if (!m) throw new Error(`no code in the email:\n${text}`);
      return { code: m[1], text };
    }
    if (Date.now() > deadline) throw new Error(`expected ${n} emails, have ${mails.length}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const panelText = (p) => p.locator(".verify").innerText();

await run(async (browser) => {
  const agentCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const agent = await page(agentCtx);
  await staffLogin(agent, "/console", "grace");

  const { p: cust } = await signedInPage(browser, BASE, TOKEN, "Ada");
  await cust.locator(".launcher").click();
  await cust.locator("textarea").fill("Hello, I need to change my address for my next order");
  await cust.locator("textarea").press("Enter");
  await cust.locator(".msg.me .meta", { hasText: "Sent" }).waitFor();

  const item = agent.locator(".qitem", { hasText: "change my address" });
  await item.waitFor();
  await item.locator(".qflag").waitFor();
  check(true, "the queue marks the ticket whose first message asks for something risky");
  check((await item.innerText()).includes("Ada Lovelace ✓"), "the queue shows the signed-in customer as verified");
  await item.getByRole("button", { name: /Claim/ }).click();
  const chat = agent.locator(".chat:not([hidden])");
  await chat.locator(".vflag", { hasText: "change my address" }).waitFor();
  check(true, "the customer panel shows the step-up flag with the phrase");
  check(await chat.locator(".facts .verified", { hasText: "Signed in on the site" }).isVisible(), "the identity token marks the customer signed in");
  const history = chat.locator(".history li", { hasText: "closed" });
  await history.waitFor();
  check((await history.innerText()).includes("opens only through an access grant"), "the customer's earlier ticket is listed with its state");
  check(!(await history.innerText()).includes("My invoice from March"), "and a closed ticket's subject stays withheld outside a grant");
  check((await chat.locator(".history li", { hasText: "change my address" }).count()) === 0, "the open ticket is not listed among the earlier ones");

  // Request verification for an action from the configured list.
  const options = await chat.locator("[data-action=verify-action] option").evaluateAll((os) => os.map((o) => o.value));
  check(JSON.stringify(options) === JSON.stringify(["change_address", "change_email", "change_phone", "reveal_order_history", "reset_password", "take_payment"]), `the actions are the configured list (${options})`);
  await chat.locator("[data-action=verify-action]").selectOption("change_address");
  await chat.locator("[data-action=request-verification]").click();
  await chat.locator(".vitem[data-state=pending]", { hasText: "a***@example.com" }).waitFor();
  check(true, "the agent sees the pending challenge and where the code went");

  // The widget's code panel, apart from the chat.
  await cust.locator(".verify:not([hidden])").waitFor();
  let text = await panelText(cust);
  check(text.includes("a***@example.com") && text.includes("changing your address"), "the widget says where the code went and what it is for");
  check(text.includes("5 attempts left") && /expires in [0-9]+:[0-9]{2}/.test(text), `the widget shows the attempts left and the expiry (${text.replace(/\s+/g, " ")})`);
  check(await cust.evaluate(() => document.querySelector("[data-deskgate]").shadowRoot.activeElement?.id === "dg-vcode"), "focus moves to the code field");
  const inLog = await cust.evaluate(() => !!document.querySelector("[data-deskgate]").shadowRoot.querySelector(".log .verify, form.compose .verify"));
  check(!inLog, "the code panel is neither in the chat log nor in the message form");
  const before = (await cust.locator(".vmeta").innerText()).match(/[0-9]+:[0-9]{2}/)[0];
  await cust.waitForFunction((b) => document.querySelector("[data-deskgate]").shadowRoot.querySelector(".vmeta").textContent.match(/[0-9]+:[0-9]{2}/)?.[0] !== b, before);
  check(true, "the expiry counts down");

  const { code, text: mail } = await codeFromMail(1);
  check(mail.includes("To: ada@example.com"), "the code went to the address in the signed identity");
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
  await cust.locator("#dg-vcode").fill(wrong);
  await cust.locator("#dg-vcode").press("Enter");
  await cust.locator(".vsay", { hasText: "That code is not right. 4 attempts left." }).waitFor();
  check((await cust.locator(".vmeta").innerText()).includes("4 attempts left"), "a wrong code shows 4 attempts left");
  await chat.locator(".vitem[data-state=pending]", { hasText: "4 attempts left" }).waitFor();
  check(true, "the agent sees the attempts left too");
  await shot(cust, "widget-verify");
  await cust.locator("#dg-vcode").fill("12ab");
  await cust.locator("#dg-vcode").press("Enter");
  await cust.locator(".vsay", { hasText: "6 digits" }).waitFor();
  check((await cust.locator(".vmeta").innerText()).includes("4 attempts left"), "a malformed code is refused in the browser and costs no attempt");
  await axe(cust, "widget with the verification panel");

  // A reload asks for the code again (welcome lists the pending challenge).
  await cust.reload();
  await cust.locator(".launcher").click();
  await cust.locator(".verify:not([hidden])").waitFor();
  text = await panelText(cust);
  check(text.includes("4 attempts left") && text.includes("a***@example.com"), "after a reload the widget asks for the pending code again");

  // The code is entered while the widget is offline: it waits for the connection, and goes
  // once the widget is back.
  await cust.context().setOffline(true);
  await cust.waitForFunction(() => document.querySelector("[data-deskgate]").shadowRoot.querySelector(".root").dataset.state !== "online");
  await cust.locator("#dg-vcode").fill(code);
  await cust.locator("#dg-vcode").press("Enter");
  await cust.waitForTimeout(500);
  text = await panelText(cust);
  check(!/could not/i.test(text), `a code entered offline waits for the connection (${text})`);
  await cust.context().setOffline(false);
  await cust.locator(".vsay", { hasText: "you are verified" }).waitFor();
  check(true, "the right code verifies the customer once the widget is back");
  await axe(cust, "widget after the verification");
  const badge = chat.locator(".chat-head .vbadge", { hasText: "Verified: change address" });
  await badge.waitFor();
  const b1 = await badge.innerText();
  check(/1[0-5]:[0-9]{2}|[0-9]:[0-9]{2}/.test(b1), `the agent sees the verified badge with the time left (${b1})`);
  await agent.waitForFunction((b) => document.querySelector(".chat:not([hidden]) .chat-head .vbadge")?.textContent !== b, b1);
  check(true, "the badge counts down to verified_until");
  const agentDom = await agent.content();
  check(!agentDom.includes(code) && !agentDom.includes(wrong), "the code appears nowhere in the console");
  const logText = await cust.locator(".log").innerText();
  check(!logText.includes(code), "the code is not in the customer's chat log");
  await cust.locator(".verify .vclose").click();
  check(await cust.evaluate(() => document.querySelector("[data-deskgate]").shadowRoot.activeElement?.tagName === "TEXTAREA"), "closing the panel returns focus to the message field");

  // A second action: pending, and a resend inside the 30-second cooldown is refused plainly.
  await chat.locator("[data-action=verify-action]").selectOption("reset_password");
  await chat.locator("[data-action=request-verification]").click();
  await chat.locator(".vitem[data-action=reset_password][data-state=pending]").waitFor();
  await cust.locator(".verify:not([hidden])", { hasText: "resetting your password" }).waitFor();
  await chat.locator(".vitem[data-action=reset_password] [data-action=resend-verification]").click();
  await chat.locator(".vmsg.bad", { hasText: "resend in" }).waitFor();
  check(true, "a resend within the cooldown is refused with the wait");
  check(await chat.locator(".vitem[data-action=change_address] .vok").isVisible(), "the earlier action stays verified beside the new request");
  await shot(agent, "console-verification");
  await axe(agent, "console with the verification section and badge");

  // The mail server down: the agent and the customer are both told.
  const broken = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const bagent = await page(broken);
  await bagent.goto(BROKEN + "/console");
  await bagent.fill("#login-user", "grace");
  await bagent.fill("#login-pass", process.env.DESKGATE_PASSWORD);
  await bagent.click("form.login button[type=submit]");
  await bagent.locator(".conn.online").waitFor();
  const { p: bcust } = await signedInPage(browser, BROKEN, BROKEN_TOKEN, "Ada");
  await bcust.locator(".launcher").click();
  await bcust.locator("textarea").fill("Please update my delivery details");
  await bcust.locator("textarea").press("Enter");
  await bagent.locator(".qitem", { hasText: "delivery details" }).getByRole("button", { name: /Claim/ }).click();
  const bchat = bagent.locator(".chat:not([hidden])");
  await bchat.locator("[data-action=verify-action] option").first().waitFor({ state: "attached" });
  await bchat.locator("[data-action=request-verification]").click();
  await bchat.locator(".vmsg.bad", { hasText: "Mail failure" }).waitFor();
  check(true, "with the mail server down the agent sees a mail failure");
  await bcust.locator(".verify:not([hidden])", { hasText: "could not send you a verification code" }).waitFor();
  check(true, "and the customer is told no code is coming");
  check((await bchat.locator(".vitem").count()) === 0, "nothing half-made shows as pending");
  await axe(bcust, "widget told the code email failed");
});
