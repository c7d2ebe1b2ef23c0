/**
 * README.md is tested: every ```sh block of the walkthrough runs, in order, as one shell session against a
 * live server (the real entry point, server/main.ts, on a temporary DATA_DIR), and every curl command in it
 * must get a 2xx answer. The error-code and configuration tables must list the registry and the variables.
 *
 * What the harness substitutes (so the README stays copy-pasteable as written):
 *   http://localhost:8080 and ws://localhost:8080  → the test server's address
 *   data/admin-password.txt                        → the test DATA_DIR's admin-password.txt
 *   /tmp/                                          → a private temporary directory
 *   npm run example:device                         → node --import=tsx examples/device.ts (same program, no build)
 * Commands the README must keep using: curl, node, grep, sleep and plain sh syntax; values travel through
 * shell variables ($SERVER, $TOKEN, …) set by earlier blocks.
 */
import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ERROR_CODES } from "../server/errors.js";
import { CONFIG_VARIABLES } from "../server/config.js";
import { ACTIONS, DASHBOARD_ACTIONS } from "../server/auth/principal.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The ```sh blocks of a markdown text, in order. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** Markdown table rows of the section under `heading` as arrays of cells (header and rule rows dropped). */
function tableRows(markdown: string, heading: string): string[][] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) return [];
  const end = markdown.indexOf("\n## ", start + 4);
  const section = markdown.slice(start, end < 0 ? undefined : end);
  return section.split("\n").filter((l) => l.startsWith("|")).slice(2).map((l) => l.split("|").slice(1, -1).map((c) => c.trim()));
}

describe("README.md", function () {
  this.timeout(90_000);
  let readme: string;

  before(async () => {
    readme = await readFile(join(ROOT, "README.md"), "utf8");
  });

  it("lists every error code of the registry with its status", () => {
    const rows = tableRows(readme, "Error codes");
    const documented = new Map(rows.map((r) => [r[0]!.replace(/`/g, ""), r[1]!]));
    const missing = Object.keys(ERROR_CODES).filter((c) => !documented.has(c));
    expect(missing, "codes missing from the README's error table").to.deep.equal([]);
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      expect(documented.get(code), code).to.include(String(status));
    }
    const unknown = [...documented.keys()].filter((c) => !(c in ERROR_CODES));
    expect(unknown, "codes in the README that the registry does not have").to.deep.equal([]);
  });

  it("documents every configuration variable", () => {
    const cells = tableRows(readme, "Configuration").map((r) => r[0]!).join(" ");
    const missing = CONFIG_VARIABLES.filter((v) => !cells.includes(`\`${v}\``));
    expect(missing).to.deep.equal([]);
  });

  it("names every action a user access token may hold in its Actions list", () => {
    const start = readme.indexOf("- **Actions**");
    expect(start, "the Actions bullet of User access tokens").to.be.greaterThan(0);
    const bullet = readme.slice(start, readme.indexOf("\n- **", start + 1));
    const missing = [...ACTIONS, ...DASHBOARD_ACTIONS].filter((a) => !bullet.includes(`\`${a}\``));
    expect(missing, "actions missing from the README's Actions list").to.deep.equal([]);
  });

  describe("walkthrough: every curl command runs against a live server", () => {
    let server: ChildProcess;
    let dataDir: string;
    let scratch: string;
    let url: string;
    let script: ChildProcess | undefined;

    before(async function () {
      if (!existsSync("/usr/bin/curl")) this.skip();
      dataDir = await mkdtemp(join(tmpdir(), "thingrelay-readme-"));
      scratch = await mkdtemp(join(tmpdir(), "thingrelay-readme-tmp-"));
      // The real entry point, with no admin configured: it generates data/admin-password.txt as the README says.
      server = spawn(process.execPath, ["--import=tsx", "server/main.ts"], {
        cwd: ROOT,
        env: {
          PATH: process.env.PATH ?? "", HOME: scratch, PORT: "0", HOST: "127.0.0.1", DATA_DIR: dataDir, THINGRELAY_PRINT_PORT: "1", THINGRELAY_THINGER_PORT: "0", THINGRELAY_IOTMP_PORT: "0",
          NODE_ENV: "test", THINGRELAY_PASSWORD_COST: "10", LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      const port = await new Promise<number>((resolve, reject) => {
        let out = "";
        server.stdout!.on("data", (d: Buffer) => {
          out += d.toString();
          const m = /THINGRELAY_PORT=(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        server.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
      });
      url = `http://127.0.0.1:${port}`;
    });
    after(async () => {
      // The walkthrough starts the example device in the background: end the script's whole process group.
      if (script?.pid) {
        try {
          process.kill(-script.pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      if (server && server.exitCode === null) {
        const exited = new Promise((r) => server.once("exit", r));
        server.kill("SIGTERM");
        await exited;
      }
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    it("runs the ```sh blocks in order; every curl gets a 2xx and the documented answers", async () => {
      const blocks = shellBlocks(readme);
      expect(blocks.length, "sh blocks in README.md").to.be.greaterThan(3);
      // "/tmp/" first: the paths substituted after it live under the system temporary directory themselves.
      const body = blocks.join("\n")
        .replaceAll("/tmp/", `${scratch}/`)
        .replaceAll("http://localhost:8080", url)
        .replaceAll("ws://localhost:8080", url.replace("http:", "ws:"))
        .replaceAll("data/admin-password.txt", join(dataDir, "admin-password.txt"))
        .replaceAll("npm run example:device", "node --import=tsx examples/device.ts");
      const curls = (body.match(/(^|[\s;(|&$])curl\s/gm) ?? []).length;
      // Every curl reports its status on stderr (%{stderr}), leaving stdout and pipes exactly as written.
      const prelude = [
        "set -eu",
        "set -o pipefail 2>/dev/null || true",
        `curl() { command curl --write-out '%{stderr}CURL_RESULT %{http_code} %{method} %{url_effective}\\n' "$@"; }`,
      ].join("\n");
      script = spawn("/bin/bash", ["-c", `${prelude}\n${body}`], {
        cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH ?? "", HOME: scratch },
      });
      let stdout = "";
      let stderr = "";
      script.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
      script.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => script!.once("close", (c) => resolve(c)));
      const results = stderr.split("\n").filter((l) => l.startsWith("CURL_RESULT ")).map((l) => {
        const [, status, method, target] = l.split(" ");
        return { status: Number(status), method, target: (target ?? "").replace(/authorization=[^&]+/, "authorization=…") };
      });
      expect(code, `script failed:\n${stderr.replace(/eyJ[\w.-]+/g, "…")}`).to.equal(0);
      expect(results.filter((r) => r.status < 200 || r.status > 299), "curl commands without a 2xx answer").to.deep.equal([]);
      expect(results.length, "curl commands that ran").to.be.at.least(curls);
      // The answers the walkthrough promises in its comments.
      expect(stdout).to.include('{"out":{"sum":30,"mult":200}}');
      expect(stdout).to.match(/\{"out":\d+(\.\d+)?\}/);
      expect(stdout).to.include('"temperature":{"kind":"output"}');
      // The stats stream: an unnamed event (what EventSource.onmessage receives), no event: line (issue 12).
      expect(stdout).to.match(/^id: \S+\ndata: \{"connected":true/m);
      expect(stdout).to.not.include("event: stats");
    });
  });
});
