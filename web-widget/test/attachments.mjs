// A customer attaches a screenshot in the widget (with the keyboard, through the attach button);
// it appears on both sides as a file; the agent opens it in the console, which fetches it with
// the session in a header and saves it from a blob: URL; the agent sends a file back and the
// customer opens it. An unsupported type is refused with a clear message. Screenshots of both.
import { run, page, axe, shot, staffLogin, check, BASE, WAIT } from "./lib.mjs";

const AGENT = process.env.DESKGATE_AGENT || "grace";
// A 1×1 PNG.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
);

await run(async (browser) => {
  const agentCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const agent = await page(agentCtx);
  await staffLogin(agent, "/console", AGENT);

  const custCtx = await browser.newContext({ viewport: { width: 1100, height: 760 }, locale: "en-US", acceptDownloads: true });
  const cust = await page(custCtx);
  await cust.goto(BASE + "/demo");
  await cust.locator(".launcher").click();
  const input = cust.locator("textarea");
  await input.fill("Here is what I see");
  await input.press("Enter");
  await cust.locator(".msg.me", { hasText: "Here is what I see" }).locator(".meta", { hasText: "Sent" }).waitFor();
  await agent.locator(".qitem", { hasText: "Here is what I see" }).getByRole("button", { name: /Claim/ }).click();
  await agent.locator(".chat:not([hidden]) .msg", { hasText: "Here is what I see" }).waitFor();

  // The attach button is reached with the keyboard and opens the file picker.
  const attach = cust.getByRole("button", { name: "Attach a file" });
  const chooser = cust.waitForEvent("filechooser", { timeout: WAIT });
  await attach.press("Enter");
  await (await chooser).setFiles({ name: "screenshot.png", mimeType: "image/png", buffer: PNG });
  await cust.locator(".msg.me .file", { hasText: "screenshot.png" }).waitFor();
  check(true, "the customer's screenshot appears in the widget as a file");
  const chip = agent.locator(".chat:not([hidden]) .msg .file", { hasText: "screenshot.png" });
  await chip.waitFor();
  check(true, "the agent sees the screenshot in the conversation");

  // The agent opens it: fetched with the session token in a header, saved from a blob: URL.
  const urls = [];
  agent.on("request", (r) => urls.push(r.url()));
  const download = agent.waitForEvent("download", { timeout: WAIT });
  await chip.click();
  const d = await download;
  const path = await d.path();
  const { readFileSync } = await import("node:fs");
  check(readFileSync(path).equals(PNG), "the agent opens the screenshot and gets the customer's bytes");
  check(d.url().startsWith("blob:"), "the file is saved from a blob: URL");
  check(urls.every((u) => !/token|dgs_|dgv_/.test(u)), "no token is ever in a URL");

  // The agent sends a text file back; the customer opens it.
  const picker = agent.locator(".chat:not([hidden]) input[type=file]");
  await picker.setInputFiles({ name: "steps.txt", mimeType: "text/plain", buffer: Buffer.from("1. restart the router\n") });
  const back = cust.locator(".msg .file", { hasText: "steps.txt" });
  await back.waitFor();
  check(true, "the agent's file reaches the customer");
  const custDownload = cust.waitForEvent("download", { timeout: WAIT });
  await back.click();
  const cd = await custDownload;
  check(readFileSync(await cd.path(), "utf8") === "1. restart the router\n", "the customer opens the agent's file");

  // A type the gateway does not take is refused with a plain message.
  const chooser2 = cust.waitForEvent("filechooser", { timeout: WAIT });
  await attach.click();
  await (await chooser2).setFiles({ name: "page.html", mimeType: "text/html", buffer: Buffer.from("<script>") });
  await cust.locator(".alert", { hasText: "Only images" }).waitFor();
  check(true, "an HTML file is refused in the widget with a clear message");

  await axe(cust, "widget with attachments");
  await axe(agent, "console with attachments");
  await shot(cust, "widget-attachment");
  await shot(agent, "console-attachment");
});
