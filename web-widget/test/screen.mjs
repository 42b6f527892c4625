// The widget's card-number check against the vectors the Rust tests use
// (gateway/src/screen/vectors.json), through the code the widget runs before sending
// (src/widget/outgoing.ts: one screen per customer, the tail of their sent messages carried
// from one message to the next). Run: node test/screen.mjs
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
async function load(entry) {
  const out = await build({ entryPoints: [here + entry], bundle: true, format: "esm", write: false, platform: "neutral" });
  return import("data:text/javascript;base64," + Buffer.from(out.outputFiles[0].text).toString("base64"));
}
const { OutgoingScreen } = await load("../src/widget/outgoing.ts");
const vectors = JSON.parse(readFileSync(here + "../../gateway/src/screen/vectors.json", "utf8"));

const wrong = [];
for (const c of vectors.cases) {
  // A message on its own: the first of a new customer.
  const v = new OutgoingScreen().check(c.text);
  if (v.blocked !== c.blocked) wrong.push(`${c.name}: expected blocked=${c.blocked}, got ${JSON.stringify(v.findings)}`);
  else if (c.brand && v.findings[0]?.brand !== c.brand) wrong.push(`${c.name}: expected ${c.brand}, got ${v.findings[0]?.brand}`);
  for (const f of v.findings) {
    if (!/^[0-9]{0,6}\*+[0-9]{1,4}$/.test(f.masked)) wrong.push(`${c.name}: bad masked form ${f.masked}`);
  }
}
let split = 0;
for (const conv of vectors.conversations) {
  // The messages one customer sends in turn, each checked as the widget checks it.
  const screen = new OutgoingScreen();
  const got = conv.messages.map((m) => screen.check(m).blocked);
  if (JSON.stringify(got) !== JSON.stringify(conv.blocked)) {
    wrong.push(`${conv.name}: expected ${JSON.stringify(conv.blocked)}, got ${JSON.stringify(got)}`);
  }
  // A number only the conversation reveals: no single message of it is blocked alone.
  const alone = conv.messages.map((m) => new OutgoingScreen().check(m).blocked);
  if (conv.blocked.some((b, i) => b && !alone[i])) split++;
}
if (vectors.cases.length < 100) wrong.push(`only ${vectors.cases.length} cases`);
if (split === 0) wrong.push("no conversation splits a number over messages: the tail is not exercised");
if (wrong.length) {
  console.error(`${wrong.length} vectors wrong:\n` + wrong.join("\n"));
  process.exit(1);
}
console.log(
  `screen: ${vectors.cases.length} cases and ${vectors.conversations.length} conversations (${split} with a number split over messages) agree with the Rust screen, through the widget's outgoing check`,
);
