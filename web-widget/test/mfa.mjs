// Staff log in with a second factor, on a gateway that requires one of admins and supervisors
// (the default roles): the first login enrols an authenticator (QR code, key, first code,
// recovery codes shown once), the next asks for the code; a wrong code is refused, a recovery
// code works once. The codes are computed here from the key the enrolment shows (RFC 6238),
// as an authenticator app would.
import { run, page, axe, shot, check, totp, freshTotp, BASE, PASSWORD } from "./lib.mjs";

/** Password step, as a person types it. */
async function password(p, path, username) {
  await p.goto(BASE + path);
  await p.fill("#login-user", username);
  await p.fill("#login-pass", PASSWORD);
  await p.click("form.login button[type=submit]");
}

/** Checks the screen the first login shows and tries a wrong first code; returns the key. */
async function enrol(p, who) {
  await p.locator("h1", { hasText: "Set up a second factor" }).waitFor();
  if (who === "admin") {
    await shot(p, "login-enrol");
    await axe(p, "enrolment screen");
  }
  const qr = await p.locator("img.qr").evaluate((img) => ({ src: img.getAttribute("src"), alt: img.alt, ok: img.complete && img.naturalWidth > 0 }));
  check(qr.src.startsWith("data:image/svg+xml") && qr.ok && qr.alt.length > 0, `${who}: the enrolment shows the QR code as an image with a text alternative`);
  const secret = await p.locator("[data-secret]").getAttribute("data-secret");
  check(/^[A-Z2-7]{16,}$/.test(secret), `${who}: the enrolment shows the key to type in by hand`);
  await p.locator("details summary").click();
  const uri = await p.locator("code.uri").innerText();
  check(uri.startsWith("otpauth://totp/") && uri.includes(`secret=${secret}`), `${who}: the enrolment shows the otpauth URI`);
  // A wrong first code is refused and nothing is enrolled.
  await p.fill("#enrol-code", String((Number(totp(secret)) + 1) % 1_000_000).padStart(6, "0"));
  await p.click("form.login button[type=submit]");
  await p.locator(".error", { hasText: "not valid" }).waitFor();
  check(true, `${who}: a wrong first code is refused`);
  return secret;
}

await run(async (browser) => {
  // The admin, in the agent console.
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 860 } });
  const p = await page(ctx);
  await password(p, "/console", "admin");
  const secret = await enrol(p, "admin");
  await p.fill("#enrol-code", await freshTotp(secret));
  await p.click("form.login button[type=submit]");
  await p.locator("h1", { hasText: "Save your recovery codes" }).waitFor();
  const codes = await p.locator("ul.recovery code").allInnerTexts();
  check(codes.length === 10 && codes.every((c) => /^[a-z0-9]{5}-[a-z0-9]{5}$/.test(c)), "confirming shows ten recovery codes");
  await axe(p, "recovery codes screen");
  await p.click("form.login button[type=submit]");
  await p.locator("#login-otp").waitFor();
  check(await p.locator(".note", { hasText: "second factor is set up" }).isVisible(), "after the recovery codes the console asks for the next code");
  await shot(p, "login-code");
  await axe(p, "login code step");
  // The step just used to confirm is spent: the next one logs in.
  await p.fill("#login-otp", await freshTotp(secret, 1));
  await p.click("form.login button[type=submit]");
  await p.locator(".conn.online").waitFor();
  check(true, "the admin logs in with the next code and the console is online");
  check(await p.evaluate(() => localStorage.length === 0 && !JSON.stringify(sessionStorage).includes("correct horse")), "neither the password nor the token is in localStorage");

  // Log out and in again: the password alone is not enough; a wrong code is refused; a
  // recovery code works once.
  await p.getByRole("button", { name: "Log out" }).click();
  await p.locator("#login-user").waitFor();
  await password(p, "/console", "admin");
  await p.locator("#login-otp").waitFor();
  check(true, "with a second factor enrolled, the password leads to the code step");
  const now = totp(secret);
  await p.fill("#login-otp", String((Number(now) + 500_000) % 1_000_000).padStart(6, "0"));
  await p.click("form.login button[type=submit]");
  await p.locator(".error", { hasText: "That code is not valid" }).waitFor();
  check(await p.locator("#login-otp").isVisible(), "a wrong code is refused and the code step stays");
  await p.fill("#login-otp", codes[0]);
  await p.click("form.login button[type=submit]");
  await p.locator(".conn.online").waitFor();
  check(true, "a recovery code logs the admin in");
  await p.getByRole("button", { name: "Log out" }).click();
  await p.locator("#login-user").waitFor();
  await password(p, "/console", "admin");
  await p.fill("#login-otp", codes[0]);
  await p.click("form.login button[type=submit]");
  await p.locator(".error", { hasText: "That code is not valid" }).waitFor();
  check(true, "the same recovery code does not work twice");
  await ctx.close();

  // A supervisor, in the supervisor console (the same login).
  const sctx = await browser.newContext({ viewport: { width: 1000, height: 860 } });
  const s = await page(sctx);
  await password(s, "/supervisor", "sam");
  const sam = await enrol(s, "sam");
  await s.fill("#enrol-code", await freshTotp(sam));
  await s.click("form.login button[type=submit]");
  await s.locator("ul.recovery").waitFor();
  await s.click("form.login button[type=submit]");
  await s.fill("#login-otp", await freshTotp(sam, 1));
  await s.click("form.login button[type=submit]");
  await s.locator(".conn.online").waitFor();
  check(true, "the supervisor enrols and logs in to the supervisor console with a code");
  await sctx.close();
});
