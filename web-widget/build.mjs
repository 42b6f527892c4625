// Builds src/ into dist/, which the gateway embeds (gateway/src/web.rs). `--check` builds into
// a temporary directory instead and fails if anything differs from the committed dist/, so the
// served files always match the sources. Prints the widget's gzipped size and fails above 30 KB.
import { build } from "esbuild";
import { mkdirSync, readdirSync, readFileSync, writeFileSync, copyFileSync, rmSync, mkdtempSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";

const check = process.argv.includes("--check");
const dist = new URL("./dist/", import.meta.url).pathname;
const out = check ? mkdtempSync(join(tmpdir(), "deskgate-dist-")) : dist;
const WIDGET_BUDGET = 30 * 1024;

if (!check) rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022"],
  legalComments: "none",
  charset: "utf8",
  logLevel: "warning",
};
const entries = {
  "widget.js": "src/widget/index.ts",
  "console.js": "src/console/main.ts",
  "supervisor.js": "src/supervisor/main.ts",
  "demo.js": "src/pages/demo.ts",
  "voice-worklet.js": "src/voice/worklet.ts",
};
for (const [name, entry] of Object.entries(entries)) {
  await build({ ...common, entryPoints: [entry], outfile: join(out, name) });
}
for (const page of ["demo.html", "console.html", "supervisor.html", "console.css", "supervisor.css"]) {
  copyFileSync(join("src/pages", page), join(out, page));
}

const widget = readFileSync(join(out, "widget.js"));
const gz = gzipSync(widget, { level: 9 }).length;
console.log(`widget.js: ${widget.length} bytes, ${gz} bytes gzipped (budget ${WIDGET_BUDGET})`);
if (gz > WIDGET_BUDGET) {
  console.error("widget.js is over its size budget");
  process.exit(1);
}

if (check) {
  const names = (d) => readdirSync(d).sort();
  const a = names(dist), b = names(out);
  const differ = [...new Set([...a, ...b])].filter((n) => {
    try {
      return !readFileSync(join(dist, n)).equals(readFileSync(join(out, n)));
    } catch {
      return true;
    }
  });
  rmSync(out, { recursive: true, force: true });
  if (differ.length) {
    console.error(`dist/ does not match the sources (${differ.join(", ")}): run npm run build and commit dist/`);
    process.exit(1);
  }
  console.log("dist/ matches the sources");
}
