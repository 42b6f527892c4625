// The JavaScript card-number screen against the vectors the Rust tests use
// (gateway/src/screen/vectors.json). Run: node test/screen.mjs
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL(".", import.meta.url));
const out = await build({
  entryPoints: [here + "../src/lib/screen.ts"],
  bundle: true,
  format: "esm",
  write: false,
  platform: "neutral",
});
const mod = await import("data:text/javascript;base64," + Buffer.from(out.outputFiles[0].text).toString("base64"));
const vectors = JSON.parse(readFileSync(here + "../../gateway/src/screen/vectors.json", "utf8"));

const wrong = [];
for (const c of vectors.cases) {
  const v = mod.scan(c.text);
  if (v.blocked !== c.blocked) wrong.push(`${c.name}: expected blocked=${c.blocked}, got ${JSON.stringify(v.findings)}`);
  else if (c.brand && v.findings[0]?.brand !== c.brand) wrong.push(`${c.name}: expected ${c.brand}, got ${v.findings[0]?.brand}`);
  for (const f of v.findings) {
    if (!/^[0-9]{0,6}\*+[0-9]{1,4}$/.test(f.masked)) wrong.push(`${c.name}: bad masked form ${f.masked}`);
  }
}
for (const conv of vectors.conversations) {
  const tail = new mod.ConversationTail();
  const got = conv.messages.map((m) => mod.scan(m, tail).blocked);
  if (JSON.stringify(got) !== JSON.stringify(conv.blocked)) {
    wrong.push(`${conv.name}: expected ${JSON.stringify(conv.blocked)}, got ${JSON.stringify(got)}`);
  }
}
if (vectors.cases.length < 100) wrong.push(`only ${vectors.cases.length} cases`);
if (wrong.length) {
  console.error(`${wrong.length} vectors wrong:\n` + wrong.join("\n"));
  process.exit(1);
}
console.log(`screen: ${vectors.cases.length} cases and ${vectors.conversations.length} conversations agree with the Rust screen`);
