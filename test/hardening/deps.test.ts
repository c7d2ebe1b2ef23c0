/**
 * Dependencies: installed versions at or above the releases that fixed the advisories SECURITY-CHECKS.md
 * lists, ws's fragment limits really wired (option names read from the installed ws source, values read
 * from the gateway's WebSocketServer), permessage-deflate off, and `npm audit` (opt-in, see below).
 */
import { expect } from "chai";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { connect } from "node:net";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_LIMITS } from "../../server/config.js";
import { tried } from "./figures.js";
import { ADMIN, account, frame, loginAs, rawUpgrade, startHard, type HardServer } from "./harness.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Directory of `pkg` as node resolves it from `from` (walks up node_modules; ignores "exports"). */
function packageDir(pkg: string, from = ROOT): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", pkg);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) throw new Error(`${pkg} not installed`);
  }
}

async function versionOf(pkg: string, from = ROOT): Promise<string> {
  return (JSON.parse(await readFile(join(packageDir(pkg, from), "package.json"), "utf8")) as { version: string }).version;
}

function atLeast(v: string, floor: string): boolean {
  const a = v.split(/[.-]/).map(Number);
  const b = floor.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

/** Advisory floors, offline: the fixed release of each advisory named in SECURITY-CHECKS.md §1. */
const FLOORS: Array<{ pkg: string; floor: string; why: string; from?: string }> = [
  { pkg: "ws", floor: "8.21.0", why: "GHSA-96hv-2xvq-fx4p fragment DoS (8.21.0); CVE-2024-37890 headers (8.17.1); close() disclosure (8.20.1)" },
  { pkg: "koa", floor: "3.1.2", why: "CVE-2026-27959 Host '@' (3.1.2); CVE-2025-8129 back redirect; CVE-2025-25200 X-Forwarded ReDoS" },
  { pkg: "qs", floor: "6.10.3", why: "CVE-2022-24999 __proto__ DoS (qs as resolved by co-body/koa-bodyparser)", from: "co-body" },
  { pkg: "@koa/cors", floor: "5.0.0", why: "CVE-2023-49803 origin reflection (5.0.0)" },
  { pkg: "path-to-regexp", floor: "8.0.0", why: "CVE-2024-45296 backtracking ReDoS (@koa/router's matcher)", from: "@koa/router" },
  { pkg: "jose", floor: "5.2.3", why: "CVE-2024-28176 JWE decompression DoS (4.15.5/5.2.3)" },
];

describe("hardening: dependencies", function () {
  this.timeout(60_000);

  it("installed versions are at or above every advisory floor", async () => {
    const rows: string[] = [];
    for (const f of FLOORS) {
      const from = f.from ? packageDir(f.from) : ROOT;
      const v = await versionOf(f.pkg, from);
      rows.push(`${f.pkg} ${v} ≥ ${f.floor}`);
      expect(atLeast(v, f.floor), `${f.pkg} ${v} < ${f.floor}: ${f.why}`).to.equal(true);
    }
    process.stdout.write(`      figures: ${rows.join("; ")}\n`);
  });

  it("the installed ws honours the option names maxPayload, maxFragments and maxBufferedChunks", async () => {
    const wsDir = packageDir("ws");
    const server = await readFile(join(wsDir, "lib", "websocket-server.js"), "utf8");
    const receiver = await readFile(join(wsDir, "lib", "receiver.js"), "utf8");
    // WebSocketServer hands the options to each socket's Receiver…
    expect(server).to.match(/maxBufferedChunks:\s*this\.options\.maxBufferedChunks/);
    expect(server).to.match(/maxFragments:\s*this\.options\.maxFragments/);
    expect(server).to.match(/maxPayload:\s*this\.options\.maxPayload/);
    // …which reads and enforces them (close 1008 / 1009).
    expect(receiver).to.match(/this\._maxFragments\s*=\s*options\.maxFragments/);
    expect(receiver).to.match(/this\._maxBufferedChunks\s*=\s*options\.maxBufferedChunks/);
    expect(receiver).to.include("Too many message fragments");
    expect(receiver).to.include("Too many buffered chunks");
    expect(receiver).to.include("Max payload size exceeded");
  });

  describe("the gateway's WebSocketServer", () => {
    let srv: HardServer;
    before(async () => {
      srv = await startHard();
      const admin = (await loginAs(srv.port, ADMIN.user, ADMIN.password)).access_token;
      await account(srv.port, admin, "alice", ["d"]);
    });
    after(() => srv?.close());

    it("is created with maxPayload, maxFragments and maxBufferedChunks set explicitly, deflate off, UTF-8 checked", () => {
      const o = (srv.relay.gateway.wss as unknown as { options: Record<string, unknown> }).options;
      expect(o.maxPayload).to.equal(DEFAULT_LIMITS.wsMaxPayload);
      expect(o.maxPayload).to.equal(1024 * 1024);
      // ws's own defaults are 16384 and 262144: these values are ours.
      expect(o.maxFragments).to.equal(1024);
      expect(o.maxBufferedChunks).to.equal(4096);
      expect(o.perMessageDeflate).to.equal(false);
      expect(o.skipUTF8Validation).to.equal(false);
      process.stdout.write(`      figures: ws options maxPayload=${String(o.maxPayload)} maxFragments=${String(o.maxFragments)} maxBufferedChunks=${String(o.maxBufferedChunks)} perMessageDeflate=${String(o.perMessageDeflate)}\n`);
    });

    it("a client offering permessage-deflate gets no extension (deflate bombs cannot apply)", async () => {
      const head = await new Promise<string>((resolve) => {
        const s = connect({ host: "127.0.0.1", port: srv.port });
        let got = "";
        s.on("data", (d: Buffer) => {
          got += d.toString("latin1");
          if (got.includes("\r\n\r\n")) s.destroy();
        });
        s.on("close", () => resolve(got));
        s.write("GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n");
      });
      expect(head).to.match(/^HTTP\/1\.1 101 /);
      expect(head.toLowerCase()).to.not.include("sec-websocket-extensions");
    });

    it("a legitimate message in 1,000 fragments (under the 1,024 limit) is still accepted", async () => {
      tried("ws_raw");
      const ws = await rawUpgrade(srv.port);
      const text = JSON.stringify({ type: "connect", user: "alice", device: "d", credentials: "d-secret", keepalive: 60 }).padEnd(1000, " ");
      const parts = Array.from({ length: 1000 }, (_, i) => frame({ opcode: i === 0 ? 1 : 0, fin: i === 999, payload: text[i]! }));
      ws.send(Buffer.concat(parts));
      const reply = await ws.text((s) => s.includes('"connected"') || s.includes('"error"'));
      expect(reply).to.include('"connected"');
      ws.socket.destroy();
    });
  });

  it("npm audit --omit=dev: no high or critical advisory (opt-in: THINGRELAY_AUDIT=1; needs the registry)", async function () {
    // Tests stay inside 127.0.0.0/8 by default; this one talks to the npm registry, so it runs only when asked,
    // and skips when the registry or its audit endpoint cannot answer (offline, or a mirror without /-/npm/v1/security).
    if (process.env.THINGRELAY_AUDIT !== "1") this.skip();
    const out = await new Promise<string>((resolve) => {
      execFile("npm", ["audit", "--omit=dev", "--json"], { cwd: ROOT, timeout: 45_000 }, (_err, stdout) => resolve(String(stdout)));
    });
    let report: { error?: unknown; statusCode?: number; metadata?: { vulnerabilities?: Record<string, number> } };
    try {
      report = JSON.parse(out) as typeof report;
    } catch {
      this.skip();
    }
    if (report!.error !== undefined || report!.statusCode !== undefined || !report!.metadata?.vulnerabilities) this.skip();
    const v = report!.metadata!.vulnerabilities!;
    process.stdout.write(`      figures: npm audit --omit=dev: ${JSON.stringify(v)}\n`);
    expect((v.high ?? 0) + (v.critical ?? 0)).to.equal(0);
  });
});
