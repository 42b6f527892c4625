// Shared by the browser flows: launches Debian's Chromium through playwright-core, injects
// axe-core, collects Content-Security-Policy violations, saves screenshots.
// The flows read the gateway's URL and the staff credentials from the environment; the Rust
// suite (tests/e2e/browser.rs) starts the gateway and sets them.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { createHmac } from "node:crypto";

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

/** Chromium; `args` adds flags (e.g. fake media devices). */
export async function launch(args = []) {
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
      // Host pages the flows make up (route.fulfill, e.g. a shop on its own domain) count as
      // public pages to Chromium, which then blocks their sockets to the gateway on 127.0.0.1
      // (local network access); a real gateway is not on the visitor's local network.
      "--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests",
      ...args,
    ],
  });
}

/** A page that fails the flow on any CSP violation or uncaught error. */
export async function page(context) {
  const p = await context.newPage();
  p.setDefaultTimeout(WAIT);
  p.on("console", (m) => {
    if (/Content.Security.Policy|Refused to/i.test(m.text())) problems.push(`CSP: ${m.text()}`);
    else if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) console.error(`console error on ${p.url()}: ${m.text()}`);
  });
  p.on("pageerror", (e) => {
    problems.push(`page error: ${e.message}`);
    console.error(`page error on ${p.url()}: ${e.stack || e.message}`);
  });
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

/** Runs a flow, prints what failed, exits non-zero on failure; `args` as for `launch`. */
export async function run(flow, args = []) {
  const browser = await launch(args);
  try {
    await flow(browser);
    if (problems.length) throw new Error(problems.join("\n"));
  } catch (e) {
    console.error(e && e.stack ? e.stack : e);
    process.exitCode = 1;
    // What each page showed when the flow failed, to look at.
    let i = 0;
    for (const ctx of browser.contexts()) {
      for (const p of ctx.pages()) {
        try {
          await shot(p, `failed-${++i}`);
          console.error(`failed-${i}.png: ${p.url()}`);
        } catch {
          /* a page that is gone */
        }
      }
    }
  } finally {
    await browser.close();
    if (hooks) {
      hooks.close();
      process.stdin.destroy();
    }
  }
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30-second steps) of a base32 secret, `steps` steps from now. */
export function totp(base32, steps = 0, now = Date.now()) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/[\s=]/g, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(now / 30_000) + steps));
  const mac = createHmac("sha1", key).update(counter).digest();
  const at = mac[19] & 0xf;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}

/** [`totp`], after waiting out the second either side of a step boundary, so that the code is
 * still current when the gateway, whose clock may trail this one by a moment, checks it. */
export async function freshTotp(base32, steps = 0) {
  for (;;) {
    const into = Date.now() % 30_000;
    if (into > 1_500 && into < 28_500) return totp(base32, steps);
    await new Promise((r) => setTimeout(r, 300));
  }
}
