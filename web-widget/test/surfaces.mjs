// Every surface on its own: the widget in Persian (right to left), the pre-chat form, the
// widget used with the keyboard alone, the agent console's login, and the supervisor's live
// dashboard; axe-core on each, a screenshot of each.
import { run, page, axe, shot, staffLogin, check, BASE, PASSWORD } from "./lib.mjs";

const shadow = (p, fn) => p.evaluate(fn);

await run(async (browser) => {
  // Persian: right to left, launcher on the left, strings translated.
  const fa = await browser.newContext({ viewport: { width: 1000, height: 720 }, locale: "fa-IR" });
  const pfa = await page(fa);
  await pfa.goto(BASE + "/demo?lang=fa");
  await pfa.locator(".launcher").click();
  await pfa.locator("textarea").waitFor();
  const layout = await shadow(pfa, () => {
    const root = document.querySelector("[data-deskgate]").shadowRoot.querySelector(".root");
    const panel = root.querySelector(".panel").getBoundingClientRect();
    return { dir: root.getAttribute("dir"), lang: root.getAttribute("lang"), left: panel.left, right: innerWidth - panel.right, computed: getComputedStyle(root.querySelector("textarea")).direction };
  });
  check(layout.dir === "rtl" && layout.lang === "fa" && layout.computed === "rtl", "the Persian widget lays out right to left");
  check(layout.left < layout.right, "the Persian widget opens on the left of the page");
  check(await pfa.locator(".launcher").innerText() === "گفتگو با ما", "the launcher speaks Persian");
  await pfa.locator(".notice", { hasText: "هیچ پشتیبانی آنلاین نیست" }).waitFor();
  check((await pfa.locator(".notice").innerText()).includes("همین‌جا پاسخ"), "with no agent online the widget says so, and (no email given) that the reply comes here");
  await pfa.locator("textarea").fill("سلام، سفارش من دیر شده است");
  await pfa.locator("textarea").press("Enter");
  await pfa.locator(".msg.me .meta", { hasText: "ارسال شد" }).waitFor();
  check(true, "a Persian message is sent and marked sent in Persian");
  await shot(pfa, "widget-fa");
  await axe(pfa, "widget in Persian");
  await fa.close();

  // Without a language on the script tag or the page, the browser's language decides.
  for (const [locale, word] of [["ru-RU", "Написать нам"], ["zh-CN", "联系我们"]]) {
    const ctx = await browser.newContext({ locale });
    const p = await page(ctx);
    // A host page that declares no language, served on the gateway's origin by the browser.
    await p.route(BASE + "/host-without-lang", (r) =>
      r.fulfill({ contentType: "text/html", body: `<!doctype html><title>host</title><p>Host page</p><script src="/widget.js" data-site="demo"></script>` }),
    );
    await p.goto(BASE + "/host-without-lang");
    check((await p.locator(".launcher").innerText()) === word, `with the browser in ${locale} the widget says ${word}`);
    await ctx.close();
  }
  // A hostile host page: its CSS does not reach into the widget, and the widget adds one
  // global only.
  {
    const ctx = await browser.newContext();
    const p = await page(ctx);
    await p.route(BASE + "/hostile-host", (r) =>
      r.fulfill({
        contentType: "text/html",
        body: `<!doctype html><html lang="en"><title>host</title>
<style>*{color:red!important;font-size:40px!important;font-family:serif!important}button{background:red!important;border:5px solid lime!important}</style>
<script>window.__before = Object.getOwnPropertyNames(window);</script>
<p>Host page</p><script src="/widget.js" data-site="demo"></script></html>`,
      }),
    );
    await p.goto(BASE + "/hostile-host");
    await p.locator(".launcher").waitFor();
    const style = await p.evaluate(() => {
      const b = document.querySelector("[data-deskgate]").shadowRoot.querySelector(".launcher");
      const c = getComputedStyle(b);
      return { bg: c.backgroundColor, size: c.fontSize, color: c.color };
    });
    check(style.bg === "rgb(31, 79, 209)" && style.size === "15px" && style.color === "rgb(255, 255, 255)", `the host page's CSS does not reach the widget (${JSON.stringify(style)})`);
    const added = await p.evaluate(() => Object.getOwnPropertyNames(window).filter((k) => !window.__before.includes(k) && k !== "__before"));
    check(JSON.stringify(added) === '["DeskgateWidget"]', `the widget adds one global (${added.join(", ")})`);
    await ctx.close();
  }

  // ?lang=zh makes the demo page Chinese (its <html lang>, no data-lang on the script tag):
  // the page's language wins over the browser's Russian.
  const zh = await browser.newContext({ viewport: { width: 1000, height: 720 }, locale: "ru-RU" });
  const pzh = await page(zh);
  await pzh.goto(BASE + "/demo?lang=zh");
  const tag = await pzh.evaluate(() => ({ html: document.documentElement.lang, data: document.querySelector("script[src='/widget.js']")?.dataset.lang ?? null }));
  check(tag.html === "zh" && tag.data === null, `the demo page says zh in <html lang> only (${JSON.stringify(tag)})`);
  await pzh.locator(".launcher").click();
  await pzh.locator("textarea").waitFor();
  check((await pzh.locator("textarea").getAttribute("placeholder")) === "输入消息", "the page's language (zh) wins over the browser's (ru)");
  check((await pzh.locator(".launcher").innerText()).startsWith("联系我们"), "the launcher speaks Chinese");
  await shot(pzh, "widget-zh");
  await axe(pzh, "widget in Chinese");
  await zh.close();
  // data-lang on the script tag wins over the page's language.
  {
    const ctx = await browser.newContext({ locale: "zh-CN" });
    const p = await page(ctx);
    await p.route(BASE + "/host-in-chinese", (r) =>
      r.fulfill({ contentType: "text/html", body: `<!doctype html><html lang="zh"><title>host</title><p>主页</p><script src="/widget.js" data-site="demo" data-lang="ru"></script></html>` }),
    );
    await p.goto(BASE + "/host-in-chinese");
    check((await p.locator(".launcher").innerText()) === "Написать нам", "data-lang=ru wins over the page's zh");
    await ctx.close();
  }

  // A phone: the open widget fits the screen.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const pp = await page(phone);
  await pp.goto(BASE + "/demo");
  await pp.locator(".launcher").click();
  await pp.locator("textarea").waitFor();
  const box = await pp.evaluate(() => {
    const r = document.querySelector("[data-deskgate]").shadowRoot.querySelector(".panel").getBoundingClientRect();
    return { left: r.left, right: r.right, top: r.top, width: innerWidth };
  });
  check(box.left >= 0 && box.right <= box.width && box.top >= 0, `on a phone the open widget fits the screen (${JSON.stringify(box)})`);
  await shot(pp, "widget-phone");
  await phone.close();

  // Keyboard only, with the pre-chat form on.
  const kb = await browser.newContext({ viewport: { width: 1000, height: 720 } });
  const pk = await page(kb);
  await pk.goto(BASE + "/demo?prechat=on");
  let onLauncher = false;
  for (let i = 0; i < 20 && !onLauncher; i++) {
    await pk.keyboard.press("Tab");
    onLauncher = await pk.evaluate(() => document.querySelector("[data-deskgate]")?.shadowRoot.activeElement?.classList.contains("launcher") ?? false);
  }
  check(onLauncher, "Tab reaches the launcher");
  await pk.keyboard.press("Enter");
  const focused = () => pk.evaluate(() => {
    const a = document.querySelector("[data-deskgate]").shadowRoot.activeElement;
    return a ? `${a.tagName}.${a.getAttribute("name") || a.className}` : "";
  });
  check((await focused()) === "INPUT.name", "opening with Enter puts focus on the pre-chat name field");
  await shot(pk, "widget-prechat");
  await axe(pk, "widget pre-chat form");
  await pk.keyboard.type("Ada Lovelace");
  await pk.keyboard.press("Tab");
  await pk.keyboard.type("ada@example.com");
  await pk.keyboard.press("Enter");
  await pk.waitForFunction(() => document.querySelector("[data-deskgate]").shadowRoot.activeElement?.tagName === "TEXTAREA");
  check(true, "submitting the form moves focus to the message field");
  await pk.keyboard.type("Typed without a mouse");
  await pk.keyboard.press("Enter");
  await pk.locator(".msg.me .meta", { hasText: "Sent" }).waitFor();
  check(true, "a message is sent with the keyboard alone");
  await pk.keyboard.press("Escape");
  check((await focused()).startsWith("BUTTON.launcher"), "Escape closes the widget and returns focus to the launcher");
  const live = await pk.evaluate(() => {
    const log = document.querySelector("[data-deskgate]").shadowRoot.querySelector("[role=log]");
    return log?.getAttribute("aria-live");
  });
  check(live === "polite", "new messages are announced through a polite live region");

  // The console's login, then the queue with the waiting ticket.
  const agentCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const agent = await page(agentCtx);
  await agent.goto(BASE + "/console");
  await agent.locator("#login-user").waitFor();
  await axe(agent, "console login");
  await shot(agent, "console-login");
  await agent.fill("#login-user", "grace");
  await agent.fill("#login-pass", "wrong password");
  await agent.click("form.login button[type=submit]");
  await agent.locator(".error", { hasText: "Wrong username or password" }).waitFor();
  check(true, "a wrong password is refused with a plain message");
  await staffLogin(agent, "/console", "grace");
  await agent.locator(".qitem", { hasText: "Typed without a mouse" }).waitFor();
  check(await agent.evaluate(() => localStorage.length === 0), "the session token is not kept in localStorage");
  await shot(agent, "console-queue");
  await axe(agent, "console with a queued ticket");

  // The supervisor's dashboard.
  const supCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const sup = await page(supCtx);
  await staffLogin(sup, "/supervisor", "sam");
  const tile = (name) => sup.locator(`[data-tile=${name}]`).innerText();
  await sup.waitForFunction(() => /^[0-9]+$/.test(document.querySelector("[data-tile=depth]").textContent));
  const before = Number(await tile("depth"));
  check(before >= 2, `the dashboard shows the queue depth (${before})`);
  await sup.locator(".card svg.svgchart rect.cap").first().waitFor();
  check(true, "the dashboard draws the agents' load");
  // A claim shows up without reloading: the staff socket's queue events refresh the figures.
  await agent.locator(".qitem").first().getByRole("button", { name: /Claim/ }).click();
  await sup.waitForFunction((n) => document.querySelector("[data-tile=depth]").textContent === String(n), before - 1);
  await sup.waitForFunction(() => document.querySelector("[data-tile=assigned]").textContent === "1");
  check(true, "a claim moves the dashboard's figures live");

  // Several chats at once, keyboard shortcuts, notes, transfer back to the queue.
  // The new chat's earlier tickets are held back until a note is half typed, so that the
  // customer panel re-renders under the agent's fingers, as it does on a slow link.
  let releaseHistory;
  const historyHeld = new Promise((r) => (releaseHistory = r));
  await agent.route("**/api/customers/*/tickets", async (r) => {
    await historyHeld;
    await r.continue();
  });
  await agent.keyboard.press("Alt+c");
  await agent.waitForFunction(() => document.querySelectorAll("[role=tab]").length === 2);
  check(true, "Alt+C claims the next ticket into a second tab");
  await agent.keyboard.press("Alt+1");
  check((await agent.locator("[role=tab]").first().getAttribute("aria-selected")) === "true", "Alt+1 switches to the first chat");
  await agent.keyboard.press("Alt+2");
  check((await agent.locator("[role=tab]").nth(1).getAttribute("aria-selected")) === "true", "Alt+2 switches to the second chat");
  await agent.keyboard.press("Alt+n");
  check(await agent.evaluate(() => document.activeElement?.classList.contains("note-input")), "Alt+N focuses the note field");
  await agent.keyboard.type("Asked twice");
  releaseHistory();
  await agent.locator(".chat:not([hidden]) .customer", { hasText: "Loading…" }).waitFor({ state: "detached" });
  check(await agent.evaluate(() => document.activeElement?.classList.contains("note-input")), "the note field keeps focus while the customer panel updates");
  await agent.keyboard.type(" about the same parcel");
  await agent.locator(".chat:not([hidden]) .note-form button").click();
  await agent.locator(".chat:not([hidden]) .notes li", { hasText: "Asked twice about the same parcel" }).waitFor();
  check(true, "an internal note is saved and listed");
  await shot(agent, "console-tabs");

  // Transfer to another agent: Alt+T goes to the transfer choice; the colleague's console
  // opens the chat with its conversation.
  const hopperCtx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const hopper = await page(hopperCtx);
  await staffLogin(hopper, "/console", "hopper");
  const openLog = await agent.locator(".chat:not([hidden]) .log").innerText();
  const moving = ["سلام، سفارش من دیر شده است", "Typed without a mouse"].find((t) => openLog.includes(t));
  check(moving, "the open chat holds one of the customers' first messages");
  await agent.keyboard.press("Alt+t");
  check(await agent.evaluate(() => document.activeElement?.dataset.action === "transfer-target" && !document.activeElement.closest("[hidden]")), "Alt+T focuses the transfer choice of the open chat");
  await agent.locator(".chat:not([hidden]) [data-action=transfer-target]").selectOption({ label: "hopper" });
  await agent.locator(".chat:not([hidden]) [data-action=transfer]").click();
  await agent.waitForFunction(() => document.querySelectorAll("[role=tab]").length === 1);
  await hopper.locator("[role=tab]").waitFor();
  await hopper.locator(".chat:not([hidden]) .msg", { hasText: moving }).waitFor();
  check(true, "the transfer moves the chat to the other agent's console with its conversation");
  await hopper.locator(".chat:not([hidden]) .msg.sys", { hasText: "transferred to hopper" }).waitFor();
  check(true, "the conversation records the transfer");
  check(!(await agent.locator(".chat:not([hidden]) .log").innerText()).includes(moving), "the chat left the first agent's console");
  await hopperCtx.close();

  // Alt+Q goes to the queue.
  await agent.keyboard.press("Alt+q");
  check(await agent.evaluate(() => !!document.activeElement?.closest(".queue")), "Alt+Q moves focus to the queue");

  await agent.locator(".chat:not([hidden]) [data-action=transfer]").click();
  await agent.waitForFunction(() => document.querySelectorAll("[role=tab]").length === 0);
  await agent.locator(".qitem").first().waitFor();
  check(true, "transfer back to the queue closes the tab and requeues the ticket");
  await sup.waitForFunction((n) => document.querySelector("[data-tile=depth]").textContent === String(n), before - 1);
  check(true, "the dashboard sees the ticket back in the queue");
  await shot(sup, "supervisor-queue");
  await axe(sup, "supervisor console");

  // Disabling the agent closes their open console (4003) and it returns to the login form.
  const admin = await (await fetch(BASE + "/api/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: "admin", password: PASSWORD }),
  })).json();
  const users = await (await fetch(BASE + "/api/users", { headers: { authorization: `Bearer ${admin.token}` } })).json();
  const grace = users.find((u) => u.username === "grace");
  const r = await fetch(BASE + `/api/users/${grace.id}`, {
    method: "PATCH",
    headers: { "content-type": "application/json", authorization: `Bearer ${admin.token}` },
    body: JSON.stringify({ active: false }),
  });
  check(r.ok, "the admin disables the agent");
  await agent.locator("#login-user").waitFor();
  check(await agent.evaluate(() => sessionStorage.length === 0), "the disabled agent's console is back at the login form, its token forgotten");
});
