import { expect } from "chai";
import { createServer as createTcpServer, connect as tcpConnect, type Server as TcpServer, type Socket } from "node:net";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { AddressInfo } from "node:net";
import { Device } from "../device-sdk/index.js";
import { tcpTransport } from "../device-sdk/examples/tcp-transport.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { once } from "./helpers/wait.js";
import { spawnChild } from "./helpers/child.js";
import { buildSdk, SDK_DIR } from "./helpers/sdk-package.js";

/** A Node child process running `code` as an ES module; its output as JSON lines. */
function child(nodeArgs: string[], code: string, args: string[]) {
  const c = spawnChild(process.execPath, [...nodeArgs, "--input-type=module", "-e", code, ...args], { env: { PATH: process.env.PATH ?? "" } });
  // Complete lines only: the last piece is "" or a line still being written.
  const lines = () => c.out().split("\n").slice(0, -1).map((l) => JSON.parse(l));
  /** Resolves once the lines printed so far satisfy `match` (checked on each output), or the child exited. */
  const printed = (match: (lines: any[]) => boolean, timeoutMs: number, what: string) => c.printed(() => match(lines()), timeoutMs, what);
  return { p: c.child, get lines() { return lines(); }, exit: c.exit, err: c.err, printed };
}

async function freePort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Listens on `port` and forwards every connection to `target`. */
async function forward(port: number, target: number): Promise<TcpServer & { sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const s = createTcpServer((c) => {
    const u = tcpConnect(target, "127.0.0.1");
    for (const x of [c, u]) {
      sockets.add(x);
      x.on("error", () => undefined);
      x.on("close", () => sockets.delete(x));
    }
    c.pipe(u).pipe(c);
  });
  await new Promise<void>((r) => s.listen(port, "127.0.0.1", r));
  return Object.assign(s, { sockets });
}

const RECONNECT_SCRIPT = `
const [sdk, server, user, device, credentials] = process.argv.slice(1);
const { Device } = await import(sdk);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
// The connect timeout is far longer than the test may take: only an error-driven retry can pass.
const d = new Device({ server, user, device, credentials, connectTimeoutMs: 600000, reconnectInitialMs: 100, reconnectMaxMs: 400 });
d.output("up", () => true);
d.on("error", (e) => say({ error: e.message }));
d.on("connected", () => say({ connected: true, globalWebSocket: typeof WebSocket === "function" }));
void d.connect();
process.stdin.on("end", () => void d.close());
process.stdin.resume();
`;

describe("device SDK on Node's runtimes: reconnect, transports, embedded constraints", function () {
  this.timeout(60_000);
  let srv: TestServer;
  let token: string;
  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const d of ["refused_ws", "refused_undici", "over_tcp"]) await newDevice(srv.url, token, "alice", d);
    await buildSdk();
  });
  after(async () => {
    await srv?.close();
  });

  // Issue 17.2: undici (Node 22, Node 20 --experimental-websocket) fires `error` and no `close` when the
  // connection is refused; the SDK must retry after its backoff, not after the connect timeout.
  for (const [name, flags, device] of [
    ["Node 20 --experimental-websocket (undici)", ["--experimental-websocket"], "refused_undici"],
    ["Node 20 with ws", [], "refused_ws"],
  ] as const) {
    it(`${name}: a refused connection is a failed attempt, retried with backoff until the server is there`, async () => {
      const port = await freePort();
      const c = child([...flags], RECONNECT_SCRIPT, [pathToFileURL(join(SDK_DIR, "dist/index.js")).href, `ws://127.0.0.1:${port}`, "alice", device, `${device}-secret`]);
      let fwd: Awaited<ReturnType<typeof forward>> | undefined;
      try {
        // Two refusals reported as errors: the SDK retried after the first without any close event.
        await c.printed((lines) => lines.filter((l) => typeof l.error === "string").length >= 2, 20_000, "two refused attempts");
        expect(c.lines.slice(0, 2), c.err()).to.deep.equal([{ error: `cannot connect to ws://127.0.0.1:${port}/v1/connect` }, { error: `cannot connect to ws://127.0.0.1:${port}/v1/connect` }]);
        fwd = await forward(port, srv.port);
        await c.printed((lines) => lines.some((l) => l.connected), 20_000, "the device to connect");
        expect(c.lines.find((l) => l.connected)).to.deep.equal({ connected: true, globalWebSocket: flags.length > 0 });
        const r = await api(srv.url, "GET", `/v2/users/alice/devices/${device}/up`, { token });
        expect(r.status).to.equal(200);
        expect(r.body).to.deep.equal({ out: true });
      } finally {
        c.p.stdin.end();
        expect(await c.exit, c.err()).to.equal(0); // close() left no timer behind
        for (const s of fwd?.sockets ?? []) s.destroy();
        await new Promise<void>((r) => (fwd ? fwd.close(() => r()) : r()));
      }
    });
  }

  // Issue 17.4: a transport adapter for a runtime whose sockets are not a WHATWG WebSocket.
  it("the worked adapter example (device-sdk/examples/tcp-transport.ts) runs a device over a raw TCP socket", async () => {
    const tcp: Socket[] = [];
    const d = new Device({ server: srv.wsUrl, user: "alice", device: "over_tcp", credentials: "over_tcp-secret", transport: tcpTransport("127.0.0.1", srv.port, (s) => tcp.push(s)) });
    d.output("temperature", () => 21.5);
    d.io("double", (x: number) => x * 2);
    try {
      await d.connect();
      expect(tcp).to.have.length(1);
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/over_tcp/temperature", { token })).body).to.deep.equal({ out: 21.5 });
      expect((await api(srv.url, "POST", "/v2/users/alice/devices/over_tcp/double", { token, json: { in: 4 } })).body).to.deep.equal({ out: 8 });
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/over_tcp/api", { token })).body).to.deep.equal({ temperature: { kind: "output" }, double: { kind: "io" } });
      // Dropped by the server (closed by the owner, 4003): the adapter reports the close and the SDK reconnects.
      const back = once(d, "connected", 10_000);
      expect((await api(srv.url, "DELETE", "/v1/users/alice/devices/over_tcp/session", { token })).status).to.equal(200);
      await back;
      expect(tcp).to.have.length(2);
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/over_tcp/temperature", { token })).body).to.deep.equal({ out: 21.5 });
    } finally {
      await d.close();
    }
    expect(d.state).to.equal("closed");
    expect(tcp.every((s) => s.destroyed)).to.equal(true);
  });

  it("with a transport, the ES2019 build runs without URL, queueMicrotask or a global WebSocket (Moddable XS lacks URL)", async () => {
    const c = child([], `
delete globalThis.URL; delete globalThis.URLSearchParams; delete globalThis.queueMicrotask; delete globalThis.WebSocket;
const { Device } = await import(process.argv[1]);
const say = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const sent = [];
// Async delivery as a socket does it, on a microtask (this engine has no queueMicrotask, as XS may not).
const later = (fn) => void Promise.resolve().then(fn);
let resultSeen;
const result = new Promise((r) => (resultSeen = r));
const urls = [];
let sock;
// An in-memory socket standing in for a runtime's own: it plays the server's side of the protocol.
const transport = (url) => {
  urls.push(url);
  sock = {
    readyState: 0, onopen: null, onmessage: null, onclose: null, onerror: null,
    send(text) {
      const f = JSON.parse(text);
      sent.push(f);
      if (f.type === "connect") later(() => sock.onmessage({ data: JSON.stringify({ type: "connected", user: f.user, device: f.device, keepalive: 60, server_time: 0 }) }));
      if (f.type === "result") resultSeen();
    },
    close(code, reason) { sock.readyState = 3; later(() => sock.onclose({ code, reason })); },
  };
  later(() => { sock.readyState = 1; sock.onopen({}); });
  return sock;
};
const d = new Device({ server: "http://relay.local:8080", user: "u", device: "d", credentials: "c", transport });
d.output("t", () => 21);
await d.connect();
d.io("late", (x) => x); // declared while open: a describe follows (the SDK's deferred describe)
sock.onmessage({ data: JSON.stringify({ type: "call", id: 7, resource: "t" }) });
await result;
await d.close();
say({ urls, sent, state: d.state, URL: typeof URL, queueMicrotask: typeof queueMicrotask });
`, [pathToFileURL(join(SDK_DIR, "dist/es2019/device.mjs")).href]);
    expect(await c.exit, c.err()).to.equal(0);
    const [r] = c.lines;
    expect(r.URL).to.equal("undefined");
    expect(r.queueMicrotask).to.equal("undefined");
    expect(r.urls).to.deep.equal(["ws://relay.local:8080/v1/connect"]);
    expect(r.sent).to.deep.equal([
      { type: "connect", user: "u", device: "d", credentials: "c", keepalive: 60 },
      { type: "describe", resources: { t: { kind: "output" } } },
      { type: "describe", resources: { t: { kind: "output" }, late: { kind: "io" } } },
      { type: "result", id: 7, out: 21 },
    ]);
    expect(r.state).to.equal("closed");
  });
});
