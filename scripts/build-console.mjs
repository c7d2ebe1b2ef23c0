// Bundles the console (console/src) into public/dashboard/app.js and app.css with esbuild: npm's uPlot
// included, minified, no source map, no external URL. Prints the bundle sizes (BENCHMARKS.md).
import { build } from "esbuild";
import { statSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "public", "dashboard");

export async function buildConsole({ quiet = false } = {}) {
  await build({
    entryPoints: { app: join(root, "console", "src", "app.js") },
    bundle: true, format: "esm", minify: true, target: "es2022", legalComments: "none", logLevel: "warning",
    outdir: out,
  });
  await build({
    entryPoints: { app: join(root, "console", "src", "console.css") },
    bundle: true, minify: true, legalComments: "none", logLevel: "warning", outdir: out,
  });
  const sizes = {};
  for (const f of ["app.js", "app.css", "style.css", "index.html"]) {
    const p = join(out, f);
    sizes[f] = { bytes: statSync(p).size, gzip: gzipSync(readFileSync(p)).length };
  }
  if (!quiet) {
    const total = Object.values(sizes).reduce((a, s) => ({ bytes: a.bytes + s.bytes, gzip: a.gzip + s.gzip }), { bytes: 0, gzip: 0 });
    process.stdout.write(`console bundle: ${Object.entries(sizes).map(([f, s]) => `${f} ${s.bytes} B (${s.gzip} gz)`).join(", ")}; total ${total.bytes} B, ${total.gzip} B gzipped\n`);
  }
  return sizes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildConsole();
