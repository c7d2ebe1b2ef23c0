import { expect } from "chai";
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, rm, copyFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { once } from "./helpers/wait.js";
import { spawnChild } from "./helpers/child.js";
import { startTcpProxy } from "./helpers/tcpproxy.js";
import { fakeSocketClass } from "./helpers/fake-socket.js";
import { FakeClock } from "./helpers/fake-clock.js";

const ROOT = resolve(import.meta.dirname, "..");

describe("device SDK", function () {
  this.timeout(30_000);

  describe("state machine (scripted socket)", () => {
    const base = { server: "ws://127.0.0.1:9", user: "u", device: "d", credentials: "c", reconnectInitialMs: 5, reconnectMaxMs: 10 };

    it("a handler that outlives its socket never answers on the next session", async () => {
      const { FakeWS, instances, created, sentFrame } = fakeSocketClass();
      let release!: (v: unknown) => void;
      const gate = new Promise((r) => (release = r));
      const dev = new Device({ ...base, WebSocket: FakeWS });
      dev.output("slow", () => gate);
      dev.output("fast", () => "fast");
      const connected = dev.connect();
      await created(1);
      instances[0]!.accept();
      await connected;
      instances[0]!.receive({ type: "call", id: 7, resource: "slow" });
      instances[0]!.drop(1006);
      await created(2);
      const again = once(dev, "connected");
      instances[1]!.accept();
      await again;
      release("late value");
      instances[1]!.receive({ type: "call", id: 8, resource: "fast" });
      await sentFrame(instances[1]!, (f) => f.id === 8);
      expect(instances[1]!.sent.filter((f) => f.type === "result" || f.type === "error")).to.deep.equal([{ type: "result", id: 8, out: "fast" }]);
      expect(instances[0]!.sent.filter((f) => f.id === 7)).to.deep.equal([]);
      await dev.close();
    });

    it("close() during the reconnect wait stops reconnecting for good", async () => {
      const { FakeWS, instances, created } = fakeSocketClass();
      const clock = new FakeClock();
      const dev = new Device({ ...base, reconnectInitialMs: 20, reconnectMaxMs: 20, WebSocket: FakeWS, timers: clock });
      const connected = dev.connect();
      await created(1);
      instances[0]!.accept();
      await connected;
      const disconnected = once<{ code: number }>(dev, "disconnected");
      instances[0]!.drop(1006);
      expect((await disconnected).code).to.equal(1006);
      expect(dev.state).to.equal("connecting");
      await dev.close();
      expect(dev.state).to.equal("closed");
      expect(clock.size).to.equal(0); // the reconnect timer was cleared
      await clock.advance(200); // ten reconnect delays: none may fire
      expect(instances).to.have.length(1);
      expect(dev.state).to.equal("closed");
    });

    it("two concurrent connect() calls both resolve on the same session", async () => {
      const { FakeWS, instances, created } = fakeSocketClass();
      const dev = new Device({ ...base, WebSocket: FakeWS });
      const a = dev.connect();
      const b = dev.connect();
      await created(1);
      instances[0]!.accept();
      await Promise.all([a, b]);
      expect(instances).to.have.length(1);
      expect(dev.state).to.equal("open");
      await dev.close();
    });

    it("sends connect first, then describe with every resource and its kind", async () => {
      const { FakeWS, instances, created, sentFrame } = fakeSocketClass();
      const dev = new Device({ ...base, WebSocket: FakeWS });
      dev.output("t", () => 1).input("i", () => {}).io("x", (v) => v).run("r", () => {});
      const c = dev.connect();
      await created(1);
      instances[0]!.accept();
      await c;
      expect(instances[0]!.sent[0]).to.deep.equal({ type: "connect", user: "u", device: "d", credentials: "c", keepalive: 60 });
      expect(instances[0]!.sent[1]).to.deep.equal({ type: "describe", resources: { t: { kind: "output" }, i: { kind: "input" }, x: { kind: "io" }, r: { kind: "run" } } });
      dev.output("late", () => 2); // a resource added while open is announced again
      await sentFrame(instances[0]!, (f) => f.type === "describe" && f !== instances[0]!.sent[1]);
      expect((instances[0]!.sent[2]!.resources as Record<string, unknown>).late).to.deep.equal({ kind: "output" });
      await dev.close();
    });

    it("a server silent for two keepalive intervals is dropped at once, without waiting for a closing handshake", async () => {
      const { FakeWS, instances, created } = fakeSocketClass();
      const clock = new FakeClock();
      const dev = new Device({ ...base, keepalive: 1, WebSocket: FakeWS, timers: clock });
      const c = dev.connect();
      await created(1);
      instances[0]!.closeCompletes = false; // the peer is gone: close() would never complete
      instances[0]!.accept(1);
      await c;
      const disconnected = once<{ code: number; reason: string }>(dev, "disconnected");
      await clock.advance(2250); // two silent intervals, noticed at the next quarter-interval check
      expect(await disconnected).to.deep.equal({ code: 4408, reason: "keepalive timeout" });
      expect(instances[0]!.sent.filter((f) => f.type === "ping").length).to.be.at.least(1);
      await clock.advance(10); // the longest reconnect delay
      await created(2);
      await dev.close();
    });

    it("a connect that never completes is abandoned at connectTimeoutMs and retried", async () => {
      const { FakeWS, instances, created } = fakeSocketClass();
      const clock = new FakeClock();
      const dev = new Device({ ...base, connectTimeoutMs: 50, WebSocket: FakeWS, timers: clock });
      const c = dev.connect();
      await created(1);
      instances[0]!.closeCompletes = false;
      instances[0]!.readyState = 1;
      instances[0]!.onopen?.({});
      await clock.advance(50 + 10); // the connect timeout, then the longest reconnect delay
      await created(2);
      instances[1]!.accept();
      await c;
      expect(dev.state).to.equal("open");
      await dev.close();
    });

    it("refuses bad options with precise messages", () => {
      expect(() => new Device({ ...base, server: "ftp://x" })).to.throw(TypeError, '"server"');
      expect(() => new Device({ ...base, user: "a b" })).to.throw(TypeError, '"user"');
      expect(() => new Device({ ...base, device: "x".repeat(26) })).to.throw(TypeError, '"device"');
      expect(() => new Device({ ...base, credentials: "" })).to.throw(TypeError, '"credentials"');
      expect(() => new Device({ ...base, keepalive: 0 })).to.throw(TypeError, '"keepalive"');
      const d = new Device(base);
      expect(() => d.output("api", () => 1)).to.throw(TypeError, '"api" is reserved');
      expect(() => d.output("a/../b", () => 1)).to.throw(TypeError, "invalid resource name");
    });
  });

  describe("against a live server", () => {
    let srv: TestServer;
    let token: string;
    const devices: Device[] = [];
    before(async () => {
      srv = await startServer();
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      token = await newAccount(srv.url, admin.access_token, "alice");
      for (const d of ["sdk1", "sdk2", "sdk3", "twin"]) await newDevice(srv.url, token, "alice", d);
    });
    afterEach(async () => {
      for (const d of devices.splice(0)) await d.close();
    });
    after(async () => srv?.close());
    const make = (device: string, extra: Partial<ConstructorParameters<typeof Device>[0]> = {}) => {
      const d = new Device({ server: srv.wsUrl, user: "alice", device, credentials: `${device}-secret`, reconnectInitialMs: 20, reconnectMaxMs: 100, ...extra });
      devices.push(d);
      return d;
    };
    const v2 = (device: string, resource: string) => `/v2/users/alice/devices/${device}/${resource}`;

    it("async handlers: output, io and input may return promises", async () => {
      const d = make("sdk1");
      let stored: unknown;
      d.output("async_out", async () => {
        await new Promise((r) => setImmediate(r));
        return { v: 42 };
      });
      d.io("async_io", async (x: number) => {
        await new Promise((r) => setImmediate(r));
        return x * 2;
      });
      d.input("async_in", async (x: unknown) => {
        await new Promise((r) => setImmediate(r));
        stored = x;
      });
      await d.connect();
      expect((await api(srv.url, "GET", v2("sdk1", "async_out"), { token })).body).to.deep.equal({ out: { v: 42 } });
      expect((await api(srv.url, "POST", v2("sdk1", "async_io"), { token, json: { in: 21 } })).body).to.deep.equal({ out: 42 });
      const r = await api(srv.url, "POST", v2("sdk1", "async_in"), { token, json: { in: "stored" } });
      expect(r.status).to.equal(200);
      expect(r.text).to.equal("");
      expect(stored).to.equal("stored");
    });

    it("handler errors: DeviceError statuses pass through; other errors and bad statuses become 500", async () => {
      const d = make("sdk1");
      d.input("bad_input", () => {
        throw new DeviceError(400, "expects a boolean");
      });
      d.output("not_ready", async () => {
        throw new DeviceError(503, "warming up");
      });
      d.output("missing", () => {
        throw new DeviceError(404, "no sensor attached");
      });
      d.output("custom", () => {
        throw Object.assign(new Error("teapot"), { status: 418 });
      });
      d.output("bad_status", () => {
        throw new DeviceError(200, "not an error status");
      });
      d.output("string", () => {
        // eslint-disable-next-line no-throw-literal
        throw "plain string";
      });
      d.output("rejects", () => Promise.reject(new Error("async failure")));
      await d.connect();
      const cases: Array<[string, string, number, string]> = [
        ["POST", "bad_input", 400, "expects a boolean"],
        ["GET", "not_ready", 503, "warming up"],
        ["GET", "missing", 404, "no sensor attached"],
        ["GET", "custom", 418, "teapot"],
        ["GET", "bad_status", 500, "not an error status"],
        ["GET", "string", 500, "plain string"],
        ["GET", "rejects", 500, "async failure"],
      ];
      for (const [method, resource, status, message] of cases) {
        const r = await api(srv.url, method, v2("sdk1", resource), { token, json: method === "POST" ? { in: 1 } : undefined });
        expect(r.status, resource).to.equal(status);
        expect(r.body, resource).to.deep.equal({ error: { code: "device_error", message } });
      }
    });

    it("emits connected/disconnected, reconnects by itself after its session is closed (4003) and re-announces its resources", async () => {
      const d = make("sdk2");
      d.output("temperature", () => 21.5);
      const events: string[] = [];
      d.on("connected", () => events.push("connected"));
      d.on("disconnected", (e) => events.push(`disconnected ${e.code}`));
      await d.connect();
      const back = once(d, "connected");
      const r = await api(srv.url, "DELETE", "/v1/users/alice/devices/sdk2/session", { token });
      expect(r.status).to.equal(200);
      await back;
      expect(events).to.deep.equal(["connected", "disconnected 4003", "connected"]);
      expect(d.state).to.equal("open");
      const apiList = await api(srv.url, "GET", v2("sdk2", "api"), { token });
      expect(apiList.body).to.deep.equal({ temperature: { kind: "output" } });
      expect((await api(srv.url, "GET", v2("sdk2", "temperature"), { token })).body).to.deep.equal({ out: 21.5 });
    });

    it("connect() rejects on wrong credentials and the device does not retry", async () => {
      const d = make("sdk3", { credentials: "wrong" });
      const errors: Error[] = [];
      d.on("error", (e) => errors.push(e));
      const err = await d.connect().then(() => null, (e: Error) => e);
      expect(err?.message).to.match(/4001/);
      expect(d.state).to.equal("closed");
      expect(errors.map((e) => e.message)).to.deep.equal(["server refused the session: invalid device credentials"]);
      expect(srv.relay.services.hub.get("alice", "sdk3")).to.equal(undefined);
    });

    it("an instance replaced by a second session (4000) stops instead of flapping", async () => {
      const first = make("twin");
      first.output("who", () => "first");
      await first.connect();
      const second = make("twin");
      second.output("who", () => "second");
      const stopped = new Promise<void>((r) => first.on("state", (s) => s === "closed" && r()));
      await second.connect();
      await stopped;
      expect(first.state).to.equal("closed");
      expect(second.state).to.equal("open");
      expect((await api(srv.url, "GET", v2("twin", "who"), { token })).body).to.deep.equal({ out: "second" });
    });

    it("close() closes the session and the server sees the device offline", async () => {
      const d = make("sdk3");
      await d.connect();
      expect(srv.relay.services.hub.get("alice", "sdk3")).to.not.equal(undefined);
      const hub = srv.relay.services.hub;
      // Subscribed before close(): the server may unregister the session before close() resolves.
      const offline = new Promise<void>((resolve) => {
        const gone = (e: { user: string; device: string }) => {
          if (e.user !== "alice" || e.device !== "sdk3") return;
          hub.off("offline", gone);
          resolve();
        };
        hub.on("offline", gone);
      });
      await d.close();
      expect(d.state).to.equal("closed");
      await offline;
      expect(hub.get("alice", "sdk3")).to.equal(undefined);
      const r = await api(srv.url, "GET", v2("sdk3", "x"), { token });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_offline");
    });
  });

  describe("reconnecting through restarts and partitions", () => {
    it("reconnects after a server restart (same store, same port through a proxy) and its resources work again", async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-sdk-restart-"));
      let srv = await startServer({ dataDir });
      const proxy = await startTcpProxy(srv.port);
      const port = proxy.port;
      const d = new Device({ server: `ws://127.0.0.1:${port}`, user: "alice", device: "phoenix", credentials: "phoenix-secret", reconnectInitialMs: 20, reconnectMaxMs: 200 });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "phoenix");
        d.output("temperature", () => 19.5);
        d.io("double", (x: number) => x * 2);
        await d.connect();
        const gone = once<{ code: number }>(d, "disconnected");
        await srv.close();
        expect((await gone).code).to.equal(1001);
        srv = await startServer({ dataDir });
        proxy.setTarget(srv.port);
        await once(d, "connected", 10_000);
        // Same key and store: the token from before the restart still works.
        const apiList = await api(srv.url, "GET", "/v2/users/alice/devices/phoenix/api", { token });
        expect(apiList.status).to.equal(200);
        expect(apiList.body).to.deep.equal({ temperature: { kind: "output" }, double: { kind: "io" } });
        expect((await api(srv.url, "GET", "/v2/users/alice/devices/phoenix/temperature", { token })).body).to.deep.equal({ out: 19.5 });
        expect((await api(srv.url, "POST", "/v2/users/alice/devices/phoenix/double", { token, json: { in: 4 } })).body).to.deep.equal({ out: 8 });
      } finally {
        await d.close();
        await srv.close();
        await proxy.close();
        await rm(dataDir, { recursive: true, force: true });
      }
    });

    it("detects a partition by its keepalive, reconnects when the link heals", async () => {
      const srv = await startServer();
      const proxy = await startTcpProxy(srv.port);
      const port = proxy.port;
      // Real sockets, the device's timers on a fake clock: the two silent keepalive intervals pass at once.
      const clock = new FakeClock();
      const d = new Device({ server: `ws://127.0.0.1:${port}`, user: "alice", device: "island", credentials: "island-secret", keepalive: 1, reconnectInitialMs: 50, reconnectMaxMs: 200, connectTimeoutMs: 500, timers: clock });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "island");
        d.output("here", () => true);
        await d.connect();
        proxy.blackhole();
        const lost = once<{ code: number; reason: string }>(d, "disconnected", 10_000);
        await clock.advance(2250); // pings at 1 and 2 s go unanswered; the check at 2.25 s drops the session
        expect(await lost).to.deep.equal({ code: 4408, reason: "keepalive timeout" });
        const back = once(d, "connected", 10_000);
        proxy.heal();
        await clock.advance(200); // the longest reconnect delay
        await back;
        // The server may still hold the stale session until its own ping sweep; the new one replaces it.
        const r = await api(srv.url, "GET", "/v2/users/alice/devices/island/here", { token });
        expect(r.status).to.equal(200);
        expect(r.body).to.deep.equal({ out: true });
      } finally {
        await d.close();
        await srv.close();
        await proxy.close();
      }
    });
  });

  describe("packaging: thingrelay/device with a standard WebSocket and without ws", function () {
    this.timeout(60_000);
    let srv: TestServer;
    let token: string;
    let dir: string;
    before(async () => {
      srv = await startServer();
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      token = await newAccount(srv.url, admin.access_token, "alice");
      await newDevice(srv.url, token, "alice", "browserish");
      // Build the SDK as `npm run build` lays it out, into a package "thingrelay" outside the repository,
      // where no node_modules (and so no `ws`) can be resolved.
      dir = await mkdtemp(join(tmpdir(), "thingrelay-pkg-"));
      const pkg = join(dir, "node_modules", "thingrelay");
      await mkdir(pkg, { recursive: true });
      await copyFile(join(ROOT, "package.json"), join(pkg, "package.json"));
      await promisify(execFile)(join(ROOT, "node_modules/.bin/tsc"), [
        "--ignoreConfig", "--outDir", join(pkg, "dist", "device-sdk"), "--rootDir", join(ROOT, "device-sdk"),
        "--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2023", "--lib", "es2023,dom",
        "--types", "node", "--declaration", "--skipLibCheck", "--strict", join(ROOT, "device-sdk/index.ts"),
      ], { cwd: ROOT });
      await writeFile(join(dir, "device.mjs"), `
import { Device } from "thingrelay/device";
const [server, user, device, credentials] = process.argv.slice(2);
const d = new Device({ server, user, device, credentials });
d.output("runtime", () => ({ globalWebSocket: typeof WebSocket === "function" }));
d.io("double", (x) => x * 2);
d.on("error", (e) => process.stderr.write("device error: " + e.message + "\\n"));
try {
  await d.connect();
} catch (e) {
  process.stderr.write("connect failed: " + e.message + "\\n");
  process.exit(3);
}
process.stdout.write("ready\\n");
process.stdin.on("end", async () => { await d.close(); process.exit(0); });
process.stdin.resume();
`);
      await writeFile(join(dir, "resolve.mjs"), `
const m = await import("thingrelay/device");
process.stdout.write(JSON.stringify({ exports: Object.keys(m).sort(), url: import.meta.resolve("thingrelay/device") }));
`);
    });
    after(async () => {
      await srv?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const run = (args: string[]) => spawnChild(process.execPath, args, { cwd: dir, env: { PATH: process.env.PATH ?? "" } });

    it("the subpath thingrelay/device resolves through the exports map to dist/device-sdk/index.js", async () => {
      const p = run(["resolve.mjs"]);
      expect(await p.exit, p.err()).to.equal(0);
      const r = JSON.parse(p.out()) as { exports: string[]; url: string };
      expect(r.url).to.match(/node_modules\/thingrelay\/dist\/device-sdk\/index\.js$/);
      expect(r.exports).to.deep.equal(["Backoff", "Device", "DeviceError"]);
    });

    it("runs on Node's standard global WebSocket (--experimental-websocket) with no ws package anywhere", async () => {
      const p = run(["--experimental-websocket", "device.mjs", srv.wsUrl, "alice", "browserish", "browserish-secret"]);
      try {
        await p.printed((out) => out.includes("ready"), 20_000, "child device to connect");
        expect(p.out(), p.err()).to.include("ready");
        const r = await api(srv.url, "GET", "/v2/users/alice/devices/browserish/runtime", { token });
        expect(r.status).to.equal(200);
        expect(r.body).to.deep.equal({ out: { globalWebSocket: true } });
        expect((await api(srv.url, "POST", "/v2/users/alice/devices/browserish/double", { token, json: { in: 21 } })).body).to.deep.equal({ out: 42 });
      } finally {
        p.child.stdin.end();
        expect(await p.exit).to.equal(0);
      }
    });

    it("control: without a global WebSocket the same script needs ws, which cannot be found there", async () => {
      const p = run(["device.mjs", srv.wsUrl, "alice", "browserish", "browserish-secret"]);
      p.child.stdin.end();
      const code = await p.exit;
      expect(code).to.not.equal(0);
      expect(p.err()).to.match(/Cannot find package 'ws'|ERR_MODULE_NOT_FOUND/);
    });
  });
});
