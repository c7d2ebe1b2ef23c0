import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { chromium, type Browser } from "playwright-core";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { sse } from "./helpers/sse.js";
import { packSdk, ROOT, run } from "./helpers/sdk-package.js";

/**
 * Issue 17.5: one device script (test/conformance/device.mjs), unchanged, on every runtime — Node 20 with
 * `ws`, Node 20 --experimental-websocket, Bun, Deno (both from npm: test/conformance/install-runtimes.sh,
 * run by .ci/run) and headless Chromium. Each imports @thingrelay/device installed from the packed tarball
 * (so each runtime's own export condition is used) and must pass: every resource kind, /api, sampled and
 * pushed streams, reconnect after a server restart on the same port (through refused attempts), and
 * close() leaving no timer behind. In CI a runtime that is not installed fails the run; elsewhere its test
 * is marked pending.
 */
const SCRIPT = join(ROOT, "test/conformance/device.mjs");
const CHROMIUM = "/usr/bin/chromium";

function findBinary(name: string): string | undefined {
  const fromEnv = process.env[`THINGRELAY_${name.toUpperCase()}`];
  if (fromEnv) return fromEnv;
  for (const dir of [join(ROOT, "node_modules/.cache/js-runtimes/node_modules/.bin"), ...(process.env.PATH ?? "").split(":")]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The JSON lines a running device reported, with waiting for one that matches. */
class Lines {
  readonly all: any[] = [];
  readonly raw: string[] = [];
  private waiters = new Set<() => void>();
  push(text: string): void {
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      this.raw.push(line);
      try {
        this.all.push(JSON.parse(line));
      } catch {
        continue; // not one of the device's reports (a runtime's own message)
      }
      for (const w of [...this.waiters]) w();
    }
  }
  /** The first line from index `from` on that matches. */
  wait(pred: (l: any) => boolean, what: string, from = 0, timeoutMs = 20_000): Promise<{ line: any; index: number }> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const index = this.all.findIndex((l, i) => i >= from && pred(l));
        if (index === -1) return false;
        this.waiters.delete(check);
        clearTimeout(t);
        resolve({ line: this.all[index], index });
        return true;
      };
      const t = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; device said:\n${this.raw.join("\n")}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }
}

interface Running {
  lines: Lines;
  /** Exit code, for runtimes that are processes (must exit by themselves once closed). */
  exit?: Promise<number | null>;
  stop(): Promise<void>;
}

interface Runtime {
  name: string;
  device: string;
  runtime: string;
  /** The package file its export conditions resolve to. */
  entry: string;
  globalWebSocket: boolean;
  /** Why it cannot run here, if it cannot. */
  missing(): string | undefined;
  start(args: string[]): Promise<Running>;
}

function processRunning(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Running {
  const lines = new Lines();
  const child: ChildProcess = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"], env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? tmpdir(), ...env } });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => {
    out += b.toString();
    const cut = out.lastIndexOf("\n");
    if (cut >= 0) {
      lines.push(out.slice(0, cut));
      out = out.slice(cut + 1);
    }
  });
  child.stderr!.on("data", (b: Buffer) => lines.raw.push(`stderr: ${b.toString()}`));
  const exit = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  return {
    lines,
    exit,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exit;
      }
    },
  };
}

describe("conformance: one device script on every runtime", function () {
  this.timeout(240_000);
  let srv: TestServer;
  let dataDir: string;
  let port: number;
  let token: string;
  let alone: string; // a device project with only @thingrelay/device
  let withWs: string; // … and ws
  let denoDir: string;
  let page: Server | undefined;
  let browser: Browser | undefined;
  const bun = findBinary("bun");
  const deno = findBinary("deno");

  const project = async (deps: string[]) => {
    const dir = await mkdtemp(join(tmpdir(), "thingrelay-conformance-"));
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "conformance-device", version: "1.0.0", type: "module", private: true }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...deps], { cwd: dir, maxBuffer: 1 << 24 });
    await copyFile(SCRIPT, join(dir, "device.mjs"));
    return dir;
  };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "thingrelay-conformance-data-"));
    srv = await startServer({ dataDir });
    port = srv.port;
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const r of RUNTIMES) await newDevice(srv.url, token, "alice", r.device);
    const tarball = await packSdk();
    alone = await project([tarball]);
    withWs = await project([tarball, "ws@^8"]);
    denoDir = await mkdtemp(join(tmpdir(), "thingrelay-deno-"));
  });
  after(async () => {
    await browser?.close();
    await new Promise<void>((r) => (page ? page.close(() => r()) : r()));
    await srv?.close();
    for (const d of [dataDir, alone, withWs, denoDir]) if (d) await rm(d, { recursive: true, force: true });
  });

  const RUNTIMES: Runtime[] = [
    {
      name: "Node 20 with ws", device: "conf_node_ws", runtime: "node", entry: "dist/index.js", globalWebSocket: false,
      missing: () => (typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function" ? "this Node has a global WebSocket: the ws path is Node 20's" : undefined),
      start: async (args) => processRunning(process.execPath, ["device.mjs", ...args], withWs),
    },
    {
      name: "Node 20 --experimental-websocket (no ws installed)", device: "conf_node_flag", runtime: "node", entry: "dist/index.js", globalWebSocket: true,
      missing: () => undefined,
      start: async (args) => processRunning(process.execPath, ["--experimental-websocket", "device.mjs", ...args], alone),
    },
    {
      name: "Bun (npm package bun)", device: "conf_bun", runtime: "bun", entry: "dist/portable.js", globalWebSocket: true,
      missing: () => (bun ? undefined : "bun is not installed (test/conformance/install-runtimes.sh)"),
      start: async (args) => processRunning(bun!, ["device.mjs", ...args], alone),
    },
    {
      name: "Deno (npm package deno)", device: "conf_deno", runtime: "deno", entry: "dist/portable.js", globalWebSocket: true,
      missing: () => (deno ? undefined : "deno is not installed (test/conformance/install-runtimes.sh)"),
      start: async (args) => processRunning(deno!, ["run", "--allow-net=127.0.0.1", "device.mjs", ...args], alone, { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" }),
    },
    {
      name: "Chromium (headless, playwright-core)", device: "conf_chromium", runtime: "browser", entry: "bundle", globalWebSocket: true,
      missing: () => (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed`),
      start: async (args) => {
        // The page bundles the SDK as a web project would (esbuild, platform browser) and loads the same script.
        const esbuild = await import("esbuild");
        const bundle = await esbuild.build({
          stdin: { contents: 'export * from "@thingrelay/device";', resolveDir: alone, loader: "js" },
          bundle: true, platform: "browser", format: "iife", globalName: "THINGRELAY_SDK", write: false, logLevel: "silent", metafile: true,
        });
        const sdkFiles = Object.keys(bundle.metafile.inputs).filter((f) => f.includes("@thingrelay/device/dist/"));
        expect(sdkFiles.some((f) => f.endsWith("/dist/portable.js")), sdkFiles.join()).to.equal(true);
        expect(sdkFiles.filter((f) => f.endsWith("/dist/index.js"))).to.deep.equal([]);
        const script = await readFile(SCRIPT, "utf8");
        const html = `<!doctype html><script>globalThis.CONFORMANCE = ${JSON.stringify(args)};</script><script src="/sdk.js"></script><script type="module" src="/device.mjs"></script>`;
        page = createServer((req, res) => {
          const body = req.url === "/sdk.js" ? bundle.outputFiles[0]!.text : req.url === "/device.mjs" ? script : req.url === "/" ? html : undefined;
          if (body === undefined) return void res.writeHead(404).end();
          res.writeHead(200, { "content-type": req.url === "/" ? "text/html" : "text/javascript" }).end(body);
        });
        await new Promise<void>((r) => page!.listen(0, "127.0.0.1", r));
        browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
        const tab = await browser.newPage();
        const lines = new Lines();
        tab.on("console", (m) => lines.push(m.text()));
        tab.on("pageerror", (e) => lines.raw.push(`pageerror: ${e.message}`));
        await tab.goto(`http://127.0.0.1:${(page.address() as AddressInfo).port}/`);
        return {
          lines,
          async stop() {
            await browser?.close();
            browser = undefined;
          },
        };
      },
    },
  ];

  const path = (device: string, resource: string) => `/v2/users/alice/devices/${device}/${resource}`;

  /**
   * Resolves once the server holds the device's describe. The device sends it right after the server accepted
   * the session, but nothing acknowledges it: `connected` can be reported (and /api asked) before the server
   * read it, and /api then answers `{}`. Waits on the hub's "describe" event (checking the session first).
   */
  const described = (s: TestServer, device: string, timeoutMs = 20_000) => new Promise<void>((resolve, reject) => {
    const hub = s.relay.services.hub;
    const check = () => {
      if (!hub.get("alice", device)?.resources) return;
      hub.off("describe", check);
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      hub.off("describe", check);
      reject(new Error(`timed out waiting for ${device}'s describe`));
    }, timeoutMs);
    hub.on("describe", check);
    check();
  });

  for (const rt of RUNTIMES) {
    it(rt.name, async function () {
      const missing = rt.missing();
      if (missing) {
        if (process.env.CI && rt.device !== "conf_node_ws") throw new Error(`${rt.name} cannot run in CI: ${missing}`);
        this.skip();
      }
      const d = rt.device;
      const running = await rt.start(["@thingrelay/device", `ws://127.0.0.1:${port}`, "alice", d, `${d}-secret`]);
      const { lines } = running;
      try {
        // Starting a runtime (Chromium, Deno) on a busy machine can take a while: a generous bound.
        await lines.wait((l) => l.connected === 1, "the first connection", 0, 60_000);
        await described(srv, d);
        const get = (r: string) => api(srv.url, "GET", path(d, r), { token });
        const post = (r: string, json: unknown) => api(srv.url, "POST", path(d, r), { token, json });

        // /api and every resource kind.
        expect((await get("api")).body).to.deep.equal({
          temperature: { kind: "output" }, runtime: { kind: "output" }, relay: { kind: "input" }, sum: { kind: "io" },
          reset: { kind: "run" }, state: { kind: "output" }, counter: { kind: "output" }, pushed: { kind: "output" },
          push: { kind: "run" }, slow: { kind: "output" }, finish: { kind: "run" },
        });
        expect((await get("runtime")).body).to.deep.equal({ out: { runtime: rt.runtime, entry: rt.entry, globalWebSocket: rt.globalWebSocket } });
        expect((await get("temperature")).body).to.deep.equal({ out: 21.5 });
        expect((await post("relay", { in: true })).status).to.equal(200);
        const bad = await post("relay", { in: "on" });
        expect(bad.status).to.equal(400);
        expect(bad.body).to.deep.equal({ error: { code: "device_error", message: "relay expects true or false" } });
        expect((await post("sum", { in: { a: 2, b: 3 } })).body).to.deep.equal({ out: { sum: 5 } });
        expect((await get("reset")).status).to.equal(200);
        expect((await get("state")).body).to.deep.equal({ out: { relay: true, resets: 1 } });
        expect((await get("slow")).body).to.deep.equal({ out: "late" });
        const none = await get("nothing_here");
        expect(none.status).to.equal(404);
        expect(none.body.error.code).to.equal("resource_not_found");

        // Streams: sampled on the server's request, and pushed by the device.
        const sampled = await sse(`${srv.url}${path(d, "counter")}?interval=0.1`, { Authorization: `Bearer ${token}` });
        expect(sampled.status).to.equal(200);
        const a = JSON.parse((await sampled.next()).data).out as number;
        const b = JSON.parse((await sampled.next()).data).out as number;
        expect(b).to.be.greaterThan(a);
        sampled.close();
        const pushedStream = await sse(`${srv.url}${path(d, "pushed")}`, { Authorization: `Bearer ${token}` });
        expect((await get("push")).status).to.equal(200);
        const pushedValue = await pushedStream.next((e) => JSON.parse(e.data).out === 1);
        expect(JSON.parse(pushedValue.data).out).to.equal(1);
        pushedStream.close();

        // Server restart on the same port: the device sees the close, refused attempts, then reconnects.
        const before = lines.all.length;
        await srv.close();
        const gone = await lines.wait((l) => typeof l.disconnected === "number", "the disconnection", before);
        expect(gone.line).to.deep.equal({ disconnected: 1001 });
        await lines.wait((l) => typeof l.error === "string" && l.error.startsWith("cannot connect to"), "a refused attempt", gone.index);
        srv = await startServer({ dataDir, port });
        await lines.wait((l) => l.connected === 2, "the reconnection");
        await described(srv, d); // a new server: a new session, described anew
        expect((await get("temperature")).body).to.deep.equal({ out: 21.5 });
        expect((await get("api")).body).to.have.property("finish");

        // close() leaves none of the SDK's timers behind (and a process then exits by itself); `created`: the
        // device script did see the SDK ask for timers, so the count is of something.
        expect((await get("finish")).status).to.equal(200);
        const closed = await lines.wait((l) => "closed" in l, "close()");
        expect(closed.line).to.deep.equal({ closed: "closed", timers: 0, created: true });
        if (running.exit) expect(await running.exit, lines.raw.join("\n")).to.equal(0);
        expect(lines.all.filter((l) => "failed" in l)).to.deep.equal([]);
      } finally {
        await running.stop();
      }
    });
  }
});
