// Shared by the browser flows: launches Debian's Chromium through playwright-core, injects
// axe-core, collects Content-Security-Policy violations, saves screenshots.
// The flows read the gateway's URL and the staff credentials from the environment; the Rust
// suite (tests/e2e/browser.rs) starts the gateway and sets them.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

export const BASE = need("DESKGATE_URL");
export const PASSWORD = need("DESKGATE_PASSWORD");
export const SHOTS = process.env.DESKGATE_SCREENSHOTS || "target/screenshots";
/** How long a step waits for what it expects; generous, since the machine may be busy. */
export const WAIT = 15_000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return v;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** A page that fails the flow on any CSP violation or uncaught error. */
export async function page(context) {
  const p = await context.newPage();
  p.setDefaultTimeout(WAIT);
  p.on("console", (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
  });
  p.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return p;
}

export const problems = [];

/** Fails if axe-core finds a serious or critical violation on the page as it stands. */
export async function axe(p, what) {
  await p.evaluate(AXE);
  const result = await p.evaluate(async () => {
    // @ts-ignore
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) throw new Error(`axe on ${what}: ${JSON.stringify(bad, null, 1)}`);
  console.log(`axe ${what}: no serious or critical violation (${result.length} minor)`);
}

export async function shot(p, name) {
  mkdirSync(SHOTS, { recursive: true });
  await p.screenshot({ path: `${SHOTS}/${name}.png` });
}

export async function staffLogin(p, path, username) {
  await p.goto(BASE + path);
  await p.fill("#login-user", username);
  await p.fill("#login-pass", PASSWORD);
  await p.click("form.login button[type=submit]");
  await p.locator(".conn.online").waitFor();
}

export function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  console.log(`ok: ${what}`);
}

let replies = null;
let hooks = null;

/**
 * Asks the Rust test for something only it can do (move the gateway's clock, run a step-up
 * through the SMTP capture): prints `@@hook {json}` and reads one JSON line back. Only for
 * flows started by `HookedFlow` in tests/e2e/browser.rs.
 */
export async function hook(op, args = {}) {
  if (!replies) {
    hooks = createInterface({ input: process.stdin });
    replies = hooks[Symbol.asyncIterator]();
  }
  process.stdout.write(`@@hook ${JSON.stringify({ op, ...args })}\n`);
  const { value, done } = await replies.next();
  if (done) throw new Error(`no answer to hook ${op}`);
  const r = JSON.parse(value);
  if (r.error) throw new Error(`hook ${op}: ${r.error}`);
  return r;
}

/** Runs a flow, prints what failed, exits non-zero on failure. */
export async function run(flow) {
  const browser = await launch();
  try {
    await flow(browser);
    if (problems.length) throw new Error(problems.join("\n"));
  } catch (e) {
    console.error(e && e.stack ? e.stack : e);
    process.exitCode = 1;
  } finally {
    await browser.close();
    if (hooks) {
      hooks.close();
      process.stdin.destroy();
    }
  }
}
