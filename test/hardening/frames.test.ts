/**
 * Malformed WebSocket traffic over raw sockets on /v1/connect, before and after device authentication:
 * the frame cases of ws's receiver tests (Autobahn needs Python/Docker, not available here), fragment floods
 * (GHSA-96hv-2xvq-fx4p), header floods (CVE-2024-37890), subprotocol lists (CVE-2021-32640) and slowloris.
 * Every case ends with the close code ws uses and a process that still serves devices.
 */
import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { Device } from "../../device-sdk/index.js";
import { tried } from "./figures.js";
import { ADMIN, account, frame, loginAs, raw, rawDevice, rawUpgrade, startHard, type HardServer, type RawWs } from "./harness.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { CLOSE_GRACE_MS } from "../../server/gateway/session.js";

const MAX_PAYLOAD = 64 * 1024;

describe("hardening: malformed WebSocket frames on raw sockets", function () {
  this.timeout(30_000);
  let srv: HardServer;
  let alice: string;
  let canary: Device;

  before(async () => {
    srv = await startHard({ env: { THINGRELAY_WS_MAX_PAYLOAD: String(MAX_PAYLOAD), THINGRELAY_AUTH_DEADLINE_MS: "2000" } });
    const admin = (await loginAs(srv.port, ADMIN.user, ADMIN.password)).access_token;
    alice = await account(srv.port, admin, "alice", ["canary", "victim"]);
    canary = new Device({ server: srv.url.replace("http", "ws"), user: "alice", device: "canary", credentials: "canary-secret" });
    canary.on("error", () => {});
    canary.output("temp", () => 21.5);
    await canary.connect();
  });
  after(async () => {
    await canary?.close();
    await srv?.close();
  });

  /** The server still relays calls to an unrelated device and answers /health: nothing crashed or wedged. */
  async function stillServing(): Promise<void> {
    const h = await raw(srv.port, { path: "/health" });
    expect(h.status).to.equal(200);
    const r = await raw(srv.port, { path: "/v2/users/alice/devices/canary/temp", headers: { Authorization: `Bearer ${alice}` } });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: 21.5 });
  }

  /** Sends `bytes` on a fresh socket (authenticated as alice/victim when `authed`) and returns the close code. */
  async function closeCodeFor(bytes: Buffer, authed: boolean): Promise<number | null> {
    tried("ws_raw");
    const ws: RawWs = authed ? await rawDevice(srv.port, "alice", "victim", "victim-secret", { temp: "output" }) : await rawUpgrade(srv.port);
    ws.send(bytes);
    const code = await ws.closed.then((c) => c, () => null);
    ws.socket.destroy();
    return code;
  }

  const utf8Bad = Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0xa0, 0xa1, 0x22, 0x7d]);
  const cases: Array<{ name: string; bytes: () => Buffer; code: number }> = [
    { name: "an unmasked client frame", bytes: () => frame({ opcode: 1, payload: "{}", mask: false }), code: 1002 },
    { name: "RSV1 set without a negotiated extension", bytes: () => frame({ opcode: 1, rsv1: true, payload: "{}" }), code: 1002 },
    { name: "reserved opcode 3", bytes: () => frame({ opcode: 3, payload: "x" }), code: 1002 },
    { name: "reserved control opcode 0xB", bytes: () => frame({ opcode: 0xb, payload: "x" }), code: 1002 },
    { name: "a 126-byte ping (control frames carry at most 125)", bytes: () => frame({ opcode: 9, payload: Buffer.alloc(126, 1) }), code: 1002 },
    { name: "a fragmented ping", bytes: () => frame({ opcode: 9, fin: false, payload: "p" }), code: 1002 },
    { name: "invalid UTF-8 in a text frame", bytes: () => frame({ opcode: 1, payload: utf8Bad }), code: 1007 },
    { name: "invalid UTF-8 split across fragments", bytes: () => Buffer.concat([frame({ opcode: 1, fin: false, payload: Buffer.from([0x7b, 0xe2, 0x82]) }), frame({ opcode: 0, payload: Buffer.from([0x28, 0x7d]) })]), code: 1007 },
    { name: "a close frame with code 1005 (reserved, never sent)", bytes: () => frame({ opcode: 8, payload: Buffer.from([0x03, 0xed]) }), code: 1002 },
    { name: "a close frame with a 1-byte payload", bytes: () => frame({ opcode: 8, payload: Buffer.from([0x03]) }), code: 1002 },
    { name: "a continuation frame with no message started", bytes: () => frame({ opcode: 0, payload: "x" }), code: 1002 },
    { name: "a new text frame inside a fragmented message", bytes: () => Buffer.concat([frame({ opcode: 1, fin: false, payload: "a" }), frame({ opcode: 1, payload: "b" })]), code: 1002 },
    { name: "a message above maxPayload", bytes: () => frame({ opcode: 1, payload: Buffer.alloc(MAX_PAYLOAD + 1, 0x20) }), code: 1009 },
    { name: "a 64-bit length with the top bit set", bytes: () => Buffer.from([0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]), code: 1009 },
    {
      name: "20,000 tiny continuation frames (GHSA-96hv-2xvq-fx4p)",
      bytes: () => Buffer.concat([frame({ opcode: 1, fin: false, payload: "[" }), ...Array.from({ length: 20_000 }, () => frame({ opcode: 0, fin: false, payload: " " }))]),
      code: 1008,
    },
    {
      name: "20,000 empty continuation frames",
      bytes: () => Buffer.concat([frame({ opcode: 1, fin: false, payload: "[" }), ...Array.from({ length: 20_000 }, () => frame({ opcode: 0, fin: false }))]),
      code: 1008,
    },
  ];

  for (const c of cases) {
    for (const authed of [false, true]) {
      it(`${c.name} ${authed ? "after" : "before"} authentication → close ${c.code}, process up`, async () => {
        const rss0 = process.memoryUsage().rss;
        const code = await closeCodeFor(c.bytes(), authed);
        expect(code).to.equal(c.code);
        await stillServing();
        const dRss = (process.memoryUsage().rss - rss0) / 2 ** 20;
        // In-process figure (test client included): generous bound, printed for the report.
        expect(dRss).to.be.below(128);
        if (c.name.startsWith("20,000")) process.stdout.write(`      figures: ${c.name}: close ${code}, RSS Δ ${dRss.toFixed(1)} MiB\n`);
      });
    }
  }

  it("after a protocol error the device's session is gone and its pending call answered 502", async () => {
    const dev = await rawDevice(srv.port, "alice", "victim", "victim-secret", { slow: "output" });
    const pending = raw(srv.port, { path: "/v2/users/alice/devices/victim/slow?timeout=20", headers: { Authorization: `Bearer ${alice}` } });
    await dev.text((s) => s.includes('"call"'));
    dev.send(frame({ opcode: 3, payload: "x" }));
    expect(await dev.closed).to.equal(1002);
    const r = await pending;
    expect(r.status).to.equal(502);
    expect(r.body.error.code).to.equal("device_disconnected");
    dev.socket.destroy();
    await stillServing();
  });

  it("a ping of 125 bytes is answered by a pong with the same payload (the limit itself is legal)", async () => {
    const ws = await rawUpgrade(srv.port);
    const payload = Buffer.alloc(125, 7);
    ws.send(frame({ opcode: 9, payload }));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (ws.frames.some((f) => f.opcode === 10 && f.payload.equals(payload))) {
          clearInterval(t);
          resolve();
        }
      }, 5);
    });
    ws.socket.destroy();
  });

  it("an upgrade with 2000 extra headers hiding Sec-WebSocket-Key (CVE-2024-37890) → 400, process up", async () => {
    tried("ws_raw");
    const junk = Array.from({ length: 2001 }, () => "a: b").join("\r\n");
    const head = `GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n${junk}\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    const answer = await exchange(srv.port, head);
    expect(answer).to.match(/^HTTP\/1\.1 400 /);
    await stillServing();
  });

  it("an upgrade whose upgrade headers all come after 2000 others → 400, process up", async () => {
    tried("ws_raw");
    // llhttp still flags the request as an upgrade, but req.headers lost every upgrade header: ws refuses it.
    const junk = Array.from({ length: 2001 }, () => "a: b").join("\r\n");
    const answer = await exchange(srv.port, `GET /v1/connect HTTP/1.1\r\nHost: x\r\n${junk}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    expect(answer).to.match(/^HTTP\/1\.1 400 /);
    await stillServing();
  });

  it("a huge Sec-WebSocket-Protocol list (1,500 names) is parsed without blowing up; duplicates and whitespace runs → 400", async () => {
    tried("ws_raw", 3);
    const names = Array.from({ length: 1500 }, (_, i) => `p${i}`).join(", ");
    let started = performance.now();
    const ws = await rawUpgrade(srv.port, { headers: [`Sec-WebSocket-Protocol: ${names}`] });
    const tList = performance.now() - started;
    ws.socket.destroy();
    started = performance.now();
    const dup = await exchange(srv.port, upgradeHead(["Sec-WebSocket-Protocol: a, a"]));
    expect(dup).to.match(/^HTTP\/1\.1 400 /);
    const spaces = await exchange(srv.port, upgradeHead([`Sec-WebSocket-Protocol: a${" ".repeat(12_000)}b`]));
    const tBad = performance.now() - started;
    expect(spaces).to.match(/^HTTP\/1\.1 400 /);
    process.stdout.write(`      figures: 1,500-name subprotocol list ${tList.toFixed(1)} ms; duplicate + 12k-space lists ${tBad.toFixed(1)} ms\n`);
    await stillServing();
  });

  it("THINGRELAY_WS_ORIGINS: a browser Origin not on the list → 403 before the upgrade; listed or absent (non-browser) → 101", async () => {
    const s = await startHard({ env: { THINGRELAY_WS_ORIGINS: "https://app.example" } });
    try {
      tried("ws_raw", 3);
      const evil = await exchange(s.port, upgradeHead(["Origin: https://evil.example"]));
      expect(evil).to.match(/^HTTP\/1\.1 403 /);
      const good = await exchange(s.port, upgradeHead(["Origin: https://app.example"]));
      expect(good).to.match(/^HTTP\/1\.1 101 /);
      const none = await exchange(s.port, upgradeHead([]));
      expect(none).to.match(/^HTTP\/1\.1 101 /);
    } finally {
      await s.close();
    }
  });

  describe("unauthenticated sockets", () => {
    let s: HardServer;
    /** The server's timers: the auth deadline and the close grace pass when the test advances it. */
    const clock = new FakeClock();
    before(async () => {
      s = await startHard({ env: { THINGRELAY_AUTH_DEADLINE_MS: "200", THINGRELAY_MAX_PENDING_SOCKETS: "3" }, timers: clock });
    });
    after(() => s?.close());

    it("a connect frame sent after the auth deadline is refused with 1008", async () => {
      tried("ws_raw");
      const ws = await rawUpgrade(s.port);
      // Nothing sent: the deadline fires on the server's own timer; the late frame below finds a closing socket.
      await clock.advance(199);
      expect(s.relay.gateway.unauthenticated, "held 1 ms before the deadline").to.equal(1);
      await clock.advance(1);
      const code = await ws.closed;
      ws.send(frame({ opcode: 1, payload: JSON.stringify({ type: "connect", user: "admin", device: "x", credentials: "y" }) }));
      expect(code).to.equal(1008);
      await ws.tcpClosed;
    });

    it("a refused socket that ignores the closing handshake is cut after the grace, not held for ws's 30 s", async function () {
      this.timeout(15_000);
      tried("ws_raw");
      const ws = await rawUpgrade(s.port, { answerClose: false });
      await clock.advance(200);
      expect(await ws.closed).to.equal(1008);
      // Without a grace timer ws keeps the TCP connection until its 30 s closeTimeout, outside the pending cap.
      await clock.advance(CLOSE_GRACE_MS - 1);
      expect(ws.socket.destroyed, "held 1 ms before the grace ends").to.equal(false);
      await clock.advance(1);
      await ws.tcpClosed;
    });
  });

  it("slowloris: 200 sockets trickling upgrade headers are answered 408 and closed at headersTimeout; devices unaffected", async function () {
    // main.ts uses headersTimeout 10 s; this server uses 1 s (and a 100 ms check interval) to keep CI fast.
    const s = await startHard({ http: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, connectionsCheckingIntervalMs: 100 } });
    const sockets: Socket[] = [];
    const timers: NodeJS.Timeout[] = [];
    try {
      const admin = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
      await account(s.port, admin, "bob", ["d"]);
      const answers = await Promise.all(Array.from({ length: 200 }, () => new Promise<string>((resolve) => {
        tried("slowloris");
        const sock = connect({ host: "127.0.0.1", port: s.port });
        sockets.push(sock);
        let got = "";
        sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
        sock.on("error", () => {});
        sock.on("close", () => resolve(got));
        sock.write("GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n");
        let i = 0;
        const t = setInterval(() => {
          if (!sock.destroyed) sock.write(`X-Slow-${i++}: 1\r\n`);
        }, 100);
        timers.push(t);
      })));
      const timedOut = answers.filter((a) => /^HTTP\/1\.1 408 /.test(a)).length;
      expect(timedOut).to.equal(200);
      expect(answers[0]).to.include('"code":"request_timeout"');
      // A real device still connects on the same server.
      const d = new Device({ server: s.url.replace("http", "ws"), user: "bob", device: "d", credentials: "d-secret" });
      d.on("error", () => {});
      await d.connect();
      await d.close();
      process.stdout.write(`      figures: slowloris sockets 200, answered 408 and closed ${timedOut}\n`);
    } finally {
      for (const t of timers) clearInterval(t);
      for (const sock of sockets) sock.destroy();
      await s.close();
    }
  });
});

function upgradeHead(extra: string[]): string {
  return `GET /v1/connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra.join("\r\n")}\r\n\r\n`;
}

/** Writes a raw request and resolves with everything read until the server closes (or 5 s pass). */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    let got = "";
    const t = setTimeout(() => s.destroy(), 5000);
    s.on("data", (d: Buffer) => {
      got += d.toString("latin1");
      // A 101 keeps the socket open: the status line is all we need.
      if (/^HTTP\/1\.1 101 /.test(got) && got.includes("\r\n\r\n")) s.destroy();
    });
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(t);
      resolve(got);
    });
    s.write(text);
  });
}
