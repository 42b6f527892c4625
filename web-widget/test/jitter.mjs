// The call legs' jitter buffer (src/voice/jitter.ts), through the code the audio worklet runs:
// playback waits for the target, plays frames in order, survives jitter up to the target
// without a gap, caps what waits by dropping the oldest, and starts again after running dry.
// Run: node test/jitter.mjs
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
const out = await build({ entryPoints: [here + "../src/voice/jitter.ts"], bundle: true, format: "esm", write: false, platform: "neutral" });
const { JitterBuffer } = await import("data:text/javascript;base64," + Buffer.from(out.outputFiles[0].text).toString("base64"));

const FRAME = 320; // 20 ms at 16 kHz
const QUANTUM = 128; // what an audio worklet renders at a time
let failed = 0;
function check(cond, what) {
  console.log(`${cond ? "ok" : "FAILED"}: ${what}`);
  if (!cond) failed++;
}
/** A frame whose every sample is `n` (so the order played can be read back). */
const frame = (n) => new Int16Array(FRAME).fill(n);
/** Renders `samples` samples; returns them as the int16 values played. */
function render(j, samples) {
  const played = [];
  const q = new Float32Array(QUANTUM);
  for (let done = 0; done < samples; done += QUANTUM) {
    j.pull(q);
    for (const x of q) played.push(Math.round(x * 32768));
  }
  return played;
}

{
  const j = new JitterBuffer(3 * FRAME, 10 * FRAME);
  j.push(frame(1));
  j.push(frame(2));
  check(render(j, 256).every((x) => x === 0), "below the target (60 ms) it plays silence");
  j.push(frame(3));
  const p = render(j, 3 * FRAME).filter((x) => x !== 0);
  check(p.length > 0 && p.every((x, i) => i === 0 || x >= p[i - 1]) && p[0] === 1, "at the target it plays the frames in order");
}
{
  // Frames arrive every 20 ms with up to 40 ms of jitter, in order: once started, no gap.
  const j = new JitterBuffer(3 * FRAME, 10 * FRAME);
  let clock = 0;
  const arrivals = Array.from({ length: 200 }, (_, i) => ({ at: i * 20 + ((i * 7919) % 41), n: i + 1 }));
  let next = 0;
  const played = [];
  while (clock < 200 * 20 + 200) {
    while (next < arrivals.length && arrivals[next].at <= clock) j.push(frame(arrivals[next++].n));
    played.push(...render(j, QUANTUM));
    clock += (QUANTUM / 16000) * 1000;
  }
  const first = played.findIndex((x) => x !== 0);
  const body = played.slice(first, first + 190 * FRAME);
  check(j.underruns <= 1 && !body.includes(0), `jitter of 40 ms under a 60 ms target plays without a gap (underruns ${j.underruns})`);
  check(j.dropped === 0, "and drops nothing");
}
{
  // A burst after a stall: 30 frames at once. What waits is capped at 200 ms, oldest dropped.
  const j = new JitterBuffer(3 * FRAME, 10 * FRAME);
  for (let n = 1; n <= 30; n++) j.push(frame(n));
  check(j.buffered <= 10 * FRAME, `a burst is capped at 200 ms (${(j.buffered / 16).toFixed(0)} ms wait)`);
  check(j.dropped === 20, `the oldest frames are the ones dropped (${j.dropped})`);
  const p = render(j, 10 * FRAME).filter((x) => x !== 0);
  check(p[0] === 21 && p[p.length - 1] === 30, "what plays is the newest 200 ms, in order");
}
{
  // Running dry: silence, then playback starts again only at the target.
  const j = new JitterBuffer(3 * FRAME, 10 * FRAME);
  for (let n = 1; n <= 3; n++) j.push(frame(n));
  render(j, 4 * FRAME);
  check(j.underruns === 1, "an empty buffer counts an underrun");
  j.push(frame(9));
  check(render(j, 2 * FRAME).every((x) => x === 0), "after an underrun it waits for the target again");
  j.push(frame(10));
  j.push(frame(11));
  check(render(j, 3 * FRAME).some((x) => x === 9), "and then plays on");
  j.push(frame(12));
  j.clear();
  check(j.buffered === 0 && render(j, 512).every((x) => x === 0), "clear drops what waits");
}
if (failed) {
  console.error(`${failed} check(s) failed`);
  process.exit(1);
}
