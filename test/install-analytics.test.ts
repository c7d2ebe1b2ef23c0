import { expect } from "chai";
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createServer, type IncomingMessage } from "node:http";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { AddressInfo } from "node:net";

const ROOT = resolve(import.meta.dirname, "..");

/**
 * Issue 17.6: swagger-ui-dist depends on @scarf/scarf, whose postinstall reports the install to scarf.sh.
 * Its documented opt-out, `"scarfSettings": {"enabled": false}` in the root package.json, is set (with
 * `skipTraversal`, so it does not even run `npm ls`); npm ≥ 11 also skips it through `allowScripts`.
 * The postinstall is run here against a local collector (its own SCARF_LOCAL_PORT switch).
 */
describe("install: no analytics postinstall (@scarf/scarf, via swagger-ui-dist)", function () {
  this.timeout(30_000);
  const report = join(dirname(createRequire(import.meta.url).resolve("@scarf/scarf/package.json")), "report.js");

  /** Runs scarf's postinstall as npm would for the project in `projectDir`; the requests it sends. */
  const postinstall = async (projectDir: string) => {
    const seen: string[] = [];
    const collector = createServer((req: IncomingMessage, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end("ok");
    });
    await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
    const env: Record<string, string> = { PATH: process.env.PATH ?? "", INIT_CWD: projectDir, SCARF_VERBOSE: "true", SCARF_LOCAL_PORT: String((collector.address() as AddressInfo).port) };
    const child = spawn(process.execPath, [report], { env, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((r) => child.on("exit", r));
    await new Promise<void>((r) => collector.close(() => r()));
    return { code, seen, err };
  };

  it("this project's package.json opts out, and npm's allowScripts denies the script", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8"));
    expect(pkg.scarfSettings).to.deep.equal({ enabled: false, skipTraversal: true });
    expect(pkg.allowScripts?.["@scarf/scarf"]).to.equal(false);
  });

  it("run for this project, the postinstall sends nothing and says the user opted out", async () => {
    const r = await postinstall(ROOT);
    expect(r.code).to.equal(0);
    expect(r.seen).to.deep.equal([]);
    expect(r.err).to.include("User has opted out");
  });

  it("control: for a project without the setting it reports the install", async () => {
    const dir = await mkdtemp(join(tmpdir(), "thingrelay-scarf-"));
    try {
      await writeFile(join(dir, "package.json"), JSON.stringify({ name: "control", version: "1.0.0", scarfSettings: { skipTraversal: true } }));
      const r = await postinstall(dir);
      expect(r.code).to.equal(0);
      expect(r.seen).to.deep.equal(["POST /package-event/install"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
