import { execFile } from "node:child_process";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const SDK_DIR = join(ROOT, "device-sdk");
export const run = promisify(execFile);

let built: Promise<void> | undefined;
/** Builds device-sdk/dist once per process (`npm run build` in device-sdk/: tsc + the ES2019 bundles). */
export function buildSdk(): Promise<void> {
  built ??= run(process.execPath, [join(SDK_DIR, "build.mjs")], { cwd: SDK_DIR }).then(() => undefined);
  return built;
}

let packed: Promise<string> | undefined;
/** `npm pack` in device-sdk/ (its prepack builds dist/) into a temp dir; the tarball's path. */
export function packSdk(): Promise<string> {
  packed ??= (async () => {
    const dest = await mkdtemp(join(tmpdir(), "thingrelay-sdk-pack-"));
    const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dest], { cwd: SDK_DIR, maxBuffer: 1 << 24 });
    const [info] = JSON.parse(stdout) as Array<{ filename: string }>;
    built = Promise.resolve(); // prepack ran the build
    return join(dest, info!.filename);
  })();
  return packed;
}

/** Size of the SDK as a browser/Deno bundler ships it: the portable entry bundled, minified, gzipped. */
export async function sdkSize(): Promise<{ minified: number; gzip: number }> {
  await buildSdk();
  const esbuild = await import("esbuild");
  const r = await esbuild.build({
    stdin: { contents: 'export * from "./dist/portable.js";', resolveDir: SDK_DIR, loader: "js" },
    bundle: true, minify: true, platform: "neutral", format: "esm", write: false, logLevel: "silent",
  });
  const code = r.outputFiles[0]!.contents;
  return { minified: code.byteLength, gzip: gzipSync(code, { level: 9 }).byteLength };
}

export async function readJson<T = any>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, "utf8")) as T;
}
