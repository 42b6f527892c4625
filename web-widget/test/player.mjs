// A call recording played in the supervisor console: the supervisor asks for the recording of
// a ticket's call with the request form, an approver approves it (over the API), and the
// supervisor plays it. The player draws the customer's and the agent's waveforms with the PCI
// pause shaded, and plays it with a moving playhead. The recording comes from
// tests/e2e/browser.rs (a 2 s call from the browser with a pause in the middle): its ticket
// is DESKGATE_CALL_TICKET, its pause DESKGATE_PAUSE_MS ("start,end").
import { run, page, axe, shot, staffLogin, check, BASE, PASSWORD } from "./lib.mjs";

const TICKET = Number(process.env.DESKGATE_CALL_TICKET);
const [PAUSE_A, PAUSE_B] = process.env.DESKGATE_PAUSE_MS.split(",").map(Number);

async function rest(method, path, token, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
}

await run(async (browser) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1100 } });
  const sam = await page(ctx);
  await staffLogin(sam, "/supervisor", "sam");
  await sam.locator("#tab-access").click();
  await sam.locator("#req-kind").selectOption("recording");
  await sam.fill("#req-ticket", String(TICKET));
  await sam.fill("#req-reason", "Complaint 5512: the customer disputes what was said on the call");
  await sam.fill("#req-duration", "30");
  await sam.click("#req-form button[type=submit]");
  await sam.locator("#req-done", { hasText: `of ticket ${TICKET} sent` }).waitFor();
  const row = sam.locator("#my-requests tr[data-grant]").first();
  check((await row.innerText()).includes("Recording"), "the request form asks for the ticket's call recording, listed as a recording");
  const grant = Number(await row.getAttribute("data-grant"));

  const april = (await rest("POST", "/api/session", null, { username: "april", password: PASSWORD })).body;
  const approved = await rest("POST", `/api/grants/${grant}/approve`, april.token, { note: "ok for the complaint" });
  check(approved.status === 200, `an approver approves it (${approved.status})`);
  const play = row.getByRole("button", { name: /Play recording/ });
  await play.waitFor();
  await play.click();
  const status = sam.locator("#player-status");
  await status.filter({ hasText: "this play is in the audit log" }).waitFor();
  const said = await status.innerText();
  check(/16 kHz, paused once/.test(said), `the player opens the recording through the grant (${said})`);

  // The waveform: sound in the customer's lane outside the pause, none inside it, and the
  // pause shaded across both lanes.
  const probe = await sam.evaluate(([a, b]) => {
    const c = document.querySelector("#player canvas");
    const g = c.getContext("2d");
    const data = g.getImageData(0, 0, c.width, c.height).data;
    const at = (x, y) => data.slice((y * c.width + x) * 4, (y * c.width + x) * 4 + 3);
    const blue = ([r, gg, bb]) => bb > 150 && r < 80;
    const sand = ([r, gg, bb]) => r > 230 && gg > 210 && bb > 170 && bb < 210;
    const ms = Number(document.querySelector("#player").dataset.durationMs);
    const x = (t) => Math.round((t / ms) * c.width);
    const [pa, pb] = [x(a) + 3, x(b) - 3];
    let inkOut = 0, inkIn = 0, shaded = 0;
    for (let xx = 0; xx < c.width; xx++) {
      const col = [];
      for (let y = 2; y < 68; y++) col.push(at(xx, y));
      // More than the one-pixel centre line that silence draws.
      const ink = col.filter(blue).length > 3;
      if (xx > pa && xx < pb) {
        if (ink) inkIn++;
        if (sand(at(xx, 4))) shaded++;
      } else if (xx < x(a) - 3 || xx > x(b) + 3) {
        if (ink) inkOut++;
      }
    }
    return { inkOut, inkIn, shaded, span: pb - pa };
  }, [PAUSE_A, PAUSE_B]);
  check(probe.inkOut > 200, `the customer's lane shows the call's sound (${probe.inkOut} columns)`);
  check(probe.shaded >= probe.span - 2 && probe.inkIn <= 2, `the pause is shaded and silent (${JSON.stringify(probe)})`);

  await sam.locator("#player [data-action=play]").click();
  await sam.waitForFunction(() => Number(document.querySelector("#player").dataset.position) > 0.3);
  check(true, "playing moves the playhead");
  await sam.locator("#player [data-action=play]", { hasText: "Pause" }).click();
  await shot(sam, "recording-player");
  await axe(sam, "supervisor recording player");
  await sam.getByRole("button", { name: "Close recording" }).click();
  await status.filter({ hasText: "Recording closed" }).waitFor();
  check(true, "closing the player takes the recording off the page");
  console.log(`grant=${grant}`);
});
