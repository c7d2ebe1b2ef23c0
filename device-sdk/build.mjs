// Builds the package into dist/: ESM + types with tsc (index = Node entry, portable = every other runtime,
// protocol), and one ES2019 bundle of the portable entry (ESM and CommonJS) for embedded engines.
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
rmSync(join(here, "dist"), { recursive: true, force: true });
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(here, "tsconfig.json")], { stdio: "inherit" });
const esbuild = await import("esbuild");
for (const [format, ext] of [["esm", "mjs"], ["cjs", "cjs"]]) {
  await esbuild.build({
    entryPoints: [join(here, "portable.ts")],
    bundle: true,
    platform: "neutral",
    format,
    target: "es2019",
    outfile: join(here, "dist", "es2019", `device.${ext}`),
    logLevel: "warning",
  });
}
