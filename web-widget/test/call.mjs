// A call from the widget to the agent console in two headless Chromiums whose microphones
// are fake devices playing a tone each (the customer 440 Hz, the agent 1000 Hz, WAV files made
// here): the customer presses the call button in the chat, the agent joins from the chat's
// call bar, each side plays the other's audio through its jitter buffer, the agent pauses the
// recording for card details and resumes it, the customer hangs up. The flow prints
// `recording=<id>`; the Rust test then plays the recording through a grant and checks each
// channel's tone and the silence of the pause.
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, launch, page, staffLogin, check, shot, axe, BASE, WAIT } from "./lib.mjs";

/** 10 s of a sine at `hz`, 48 kHz mono PCM16 (Chromium loops the file). */
function toneWav(path, hz) {
  const rate = 48000;
  const n = rate * 10;
  const b = Buffer.alloc(44 + n * 2);
  b.write("RIFF", 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write("WAVEfmt ", 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write("data", 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  writeFileSync(path, b);
  return path;
}

const dir = mkdtempSync(join(tmpdir(), "deskgate-call-"));
const media = (wav) => ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", `--use-file-for-fake-audio-capture=${wav}`, "--autoplay-policy=no-user-gesture-required"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await run(async (agentBrowser) => {
  const customerBrowser = await launch(media(toneWav(join(dir, "customer.wav"), 440)));
  try {
    const agentCtx = await agentBrowser.newContext({ viewport: { width: 1280, height: 800 } });
    await agentCtx.grantPermissions(["microphone"], { origin: BASE });
    const agent = await page(agentCtx);
    await staffLogin(agent, "/console", "grace");

    const custCtx = await customerBrowser.newContext({ viewport: { width: 1100, height: 760 } });
    await custCtx.grantPermissions(["microphone"], { origin: BASE });
    const cust = await page(custCtx);
    await cust.goto(BASE + "/demo");
    await cust.locator(".launcher").click();
    const input = cust.locator("textarea");
    await input.fill("Could we talk on the phone?");
    await input.press("Enter");
    await agent.locator(".qitem", { hasText: "Could we talk" }).getByRole("button", { name: /Claim/ }).click();
    await agent.locator(".chat:not([hidden]) .msg", { hasText: "Could we talk" }).waitFor();
    check(true, "the agent holds the customer's chat");

    // The customer calls from the chat.
    await cust.getByRole("button", { name: "Call us" }).click();
    await cust.locator(".cstate", { hasText: "On a call" }).waitFor();
    check(true, "the widget places the call and says it is on");
    const bar = agent.locator(".chat:not([hidden]) .callbar");
    await bar.getByRole("button", { name: "Join call" }).waitFor();
    check((await bar.innerText()).includes("16 kHz"), "the agent's chat shows the call, at 16 kHz");
    const recording = await bar.getAttribute("data-recording-id");
    await bar.getByRole("button", { name: "Join call" }).click();
    await bar.locator(".call-state", { hasText: "On the call" }).waitFor();
    check((await bar.locator(".call-rec").innerText()).includes("Recording"), "the bar says the call is recorded");

    // Both sides hear the other: the jitter buffers play out what arrives.
    await agent.waitForFunction(() => Number(document.querySelector(".chat:not([hidden]) .callbar")?.dataset.played || 0) > 16000, null, { timeout: WAIT });
    await cust.waitForFunction(() => (window.DeskgateWidget.callStats()?.played ?? 0) > 16000, null, { timeout: WAIT });
    const cs = await cust.evaluate(() => window.DeskgateWidget.callStats());
    check(cs.sent > 50 && cs.speakerPeak > 0.05, `the customer's microphone goes out and the agent is heard (${JSON.stringify(cs)})`);
    check(cs.bufferedMs <= 200, `the widget's jitter buffer stays within its cap (${cs.bufferedMs} ms)`);
    const level = Number(await bar.locator("meter").getAttribute("value"));
    check(level > 0.05, `the agent hears the caller (level ${level.toFixed(2)})`);
    await shot(cust, "call-widget");
    await shot(agent, "call-console");
    await axe(agent, "agent console on a call");

    // Card details: the agent pauses the recording, then resumes it.
    await sleep(1500);
    await bar.getByRole("button", { name: "Pause recording" }).click();
    await bar.locator(".call-rec[data-recording=paused]").waitFor();
    check((await bar.locator(".call-rec").innerText()).includes("card details"), "the bar says the recording is paused, and why");
    await sleep(1500);
    await bar.getByRole("button", { name: "Resume recording" }).click();
    await bar.locator(".call-rec[data-recording=on]").waitFor();
    check(true, "resumed, the bar says the call is recorded again");
    await sleep(1500);

    // The customer hangs up; the agent's bar says the call is over.
    await cust.getByRole("button", { name: "Hang up" }).click();
    await cust.locator(".cstate", { hasText: "The call has ended" }).waitFor();
    await bar.locator(".call-state", { hasText: "The call has ended" }).waitFor();
    check(true, "after the customer hangs up, both sides say the call has ended");
    await cust.locator(".msg", { hasText: "Voice call" }).waitFor();
    check(true, "the call is in the conversation's transcript");
    console.log(`recording=${recording}`);
  } finally {
    await customerBrowser.close();
  }
}, media(toneWav(join(dir, "agent.wav"), 1000)));
