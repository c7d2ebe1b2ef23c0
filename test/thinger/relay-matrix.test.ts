import { expect } from "chai";
import { EventEmitter } from "node:events";
import { WebSocket } from "ws";
import { Device } from "../../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { closeAllSse, sse } from "../helpers/sse.js";
import { noSessions, once, onceWhere, sessionGone } from "../helpers/wait.js";
import { TestDevice, ThingerDeviceError, type Protocol, type ThingerResource, type Transport } from "./device.js";
import { selfSigned } from "../helpers/self-signed.js";
import { connect } from "node:net";
import { encodeFrame, LEGACY_FLAG, IOTMP_TYPE } from "../../server/thinger/index.js";
import { CALL_TIMEOUT_SLACK_MS } from "../../server/gateway/device-session.js";
import { FakeClock } from "../helpers/fake-clock.js";

/**
 * The relay matrix, once, against a Thinger device of every protocol, dialect and transport: a REST, SSE or
 * CLI caller must not be able to tell it from an SDK device.
 */
const VARIANTS: Array<{ protocol: Protocol; transport: Transport }> = [
  { protocol: "legacy", transport: "tcp" },
  { protocol: "legacy", transport: "tls" },
  { protocol: "iotmp1", transport: "tcp" },
  { protocol: "iotmp2", transport: "tcp" },
  { protocol: "iotmp2", transport: "tls" },
  { protocol: "iotmp2", transport: "ws" },
];

const tls = selfSigned();

function endpoint(srv: TestServer, protocol: Protocol, transport: Transport): { port?: number; url?: string } {
  if (transport === "ws") return { url: `${srv.wsUrl}/iotmp` };
  const p = srv.thingerPorts;
  // Either TCP listener accepts either protocol (first-byte detection): legacy uses the legacy ports.
  const port = protocol === "legacy" ? (transport === "tls" ? p.thinger_tls : p.thinger) : transport === "tls" ? p.iotmp_tls : p.iotmp;
  return { port: port! };
}

for (const { protocol, transport } of VARIANTS) {
  describe(`Thinger device, ${protocol} over ${transport}: relay matrix`, function () {
    this.timeout(20_000);
    let srv: TestServer;
    let token: string;
    /** The server's timers (call timeouts among them): a timeout passes when the test advances it, not in real time. */
    let clock: FakeClock;
    const devices: TestDevice[] = [];
    const sdks: Device[] = [];
    let led = false;
    let last: unknown;
    /** Emits "call" each time the device starts answering `slow` (so the server holds that call in flight). */
    const slowCalls = new EventEmitter();
    /** Resolves once the device got `n` more calls of `slow`. */
    const slowCallsReach = (n: number, what: string) => {
      let got = 0;
      return onceWhere(slowCalls, "call", () => ++got === n, 5000, what);
    };
    const v2 = (path: string) => `/v2/users/alice/devices/dev1/${path}`;
    // IOTMP-Linux 1.3 (dialect 1) sends every top-level number as a truncated varint: 21.5 arrives as 21.
    const TEMP = protocol === "iotmp1" ? 21 : 21.5;

    const resources: Record<string, ThingerResource> = {
      temp: { kind: "output", out: () => 21.5 },
      location: { kind: "output", out: () => ({ lat: 41.65, lon: 0.88 }) },
      led: { kind: "input", in: (v) => void (led = v === true), state: () => led },
      sum: { kind: "io", io: (v) => {
        const { value1, value2 } = v as { value1: number; value2: number };
        return { result: value1 + value2 };
      } },
      reset: { kind: "run", run: () => void (last = "reset") },
      "sub/leaf": { kind: "output", out: () => "leaf" },
      boom: { kind: "output", out: () => {
        throw new ThingerDeviceError("sensor failure", 503);
      } },
      // Never answers (timeouts, busy, disconnects).
      slow: { kind: "output", out: () => {
        slowCalls.emit("call");
        return new Promise<never>(() => {});
      } },
    };

    function device(over: Partial<ConstructorParameters<typeof TestDevice>[0]> = {}): TestDevice {
      const d = new TestDevice({
        protocol, transport, ...endpoint(srv, protocol, transport), user: "alice", device: "dev1", credentials: "s3cret",
        resources, ...over,
      });
      devices.push(d);
      return d;
    }

    /** Connects and waits until the session is online (its resources described). */
    async function online(d: TestDevice = device()): Promise<TestDevice> {
      const up = once(srv.relay.services.hub, "online");
      await d.connect();
      await up;
      return d;
    }

    before(async () => {
      clock = new FakeClock();
      srv = await startServer({ thinger: { tls }, env: { THINGRELAY_MAX_INFLIGHT: "3" }, timers: clock });
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      token = await newAccount(srv.url, admin.access_token, "alice");
      await newDevice(srv.url, token, "alice", "dev1", "s3cret");
      await newDevice(srv.url, token, "alice", "gone", "g0ne");
    });
    afterEach(async () => {
      closeAllSse();
      for (const d of devices.splice(0)) d.destroy();
      for (const d of sdks.splice(0)) await d.close();
      await noSessions(srv.relay.services.hub);
    });
    after(() => srv?.close());

    describe("calls", () => {
      beforeEach(() => online());

      it("output: GET answers the raw value as {out}; object values and nested names (sub/leaf) too", async () => {
        expect(await api(srv.url, "GET", v2("temp"), { token })).to.deep.include({ status: 200, body: { out: TEMP } });
        expect((await api(srv.url, "GET", v2("location"), { token })).body).to.deep.equal({ out: { lat: 41.65, lon: 0.88 } });
        expect((await api(srv.url, "GET", v2("sub/leaf"), { token })).body).to.deep.equal({ out: "leaf" });
        expect((await api(srv.url, "GET", v2("sub%2Fleaf"), { token })).status).to.equal(400);
      });

      it("input: POST {in} sets it (200, empty), GET answers 405 (Allow: POST), {resource}/api reads its current state", async () => {
        const set = await api(srv.url, "POST", v2("led"), { token, json: { in: true } });
        expect(set.status).to.equal(200);
        expect(set.text).to.equal("");
        expect(led).to.equal(true);
        const get = await api(srv.url, "GET", v2("led"), { token });
        expect(get.status).to.equal(405);
        expect(get.body.error.code).to.equal("method_not_allowed");
        expect(get.headers.get("allow")).to.equal("POST");
        expect((await api(srv.url, "GET", v2("led/api"), { token })).body).to.deep.equal({ kind: "input", in: true });
        await api(srv.url, "POST", v2("led"), { token, json: { in: false } });
        expect((await api(srv.url, "GET", v2("led/api"), { token })).body).to.deep.equal({ kind: "input", in: false });
      });

      it("io: POST a body, the device's answer comes back as {out}", async () => {
        const r = await api(srv.url, "POST", v2("sum"), { token, json: { value1: 2, value2: 40 } });
        expect(r).to.deep.include({ status: 200, body: { out: { result: 42 } } });
      });

      it("run: GET runs it, 200 with no body", async () => {
        last = undefined;
        const r = await api(srv.url, "GET", v2("reset"), { token });
        expect(r.status).to.equal(200);
        expect(r.text).to.equal("");
        expect(last).to.equal("reset");
      });

      it("/api lists the resources with their kinds (nested names flattened to a/b)", async () => {
        const r = await api(srv.url, "GET", v2("api"), { token });
        expect(r.status).to.equal(200);
        expect(r.body).to.deep.equal({
          temp: { kind: "output" }, location: { kind: "output" }, led: { kind: "input" }, sum: { kind: "io" },
          reset: { kind: "run" }, "sub/leaf": { kind: "output" }, boom: { kind: "output" }, slow: { kind: "output" },
        });
      });

      it("{resource}/api answers that resource's state ({in} of an input, {out} of an output)", async () => {
        led = true;
        expect((await api(srv.url, "GET", v2("led/api"), { token })).body).to.deep.equal({ kind: "input", in: true });
        expect((await api(srv.url, "GET", v2("temp/api"), { token })).body).to.deep.equal({ kind: "output", out: TEMP });
        expect((await api(srv.url, "GET", v2("nope/api"), { token })).body.error.code).to.equal("resource_not_found");
      });

      it("errors: unknown resource 404 resource_not_found, handler failure device_error (IOTMP: its code and message)", async () => {
        const nf = await api(srv.url, "GET", v2("nope"), { token });
        expect(nf.status).to.equal(404);
        expect(nf.body.error.code).to.equal("resource_not_found");
        const boom = await api(srv.url, "GET", v2("boom"), { token });
        expect(boom.body.error.code).to.equal("device_error");
        if (protocol === "legacy") {
          expect(boom.status).to.equal(500);
        } else {
          expect(boom.status).to.equal(503);
          expect(boom.body.error.message).to.equal("sensor failure");
        }
      });

      it("errors: no answer 504 device_timeout; too many in flight 429 device_busy; the session stays usable", async () => {
        const first = slowCallsReach(1, "the call at the device");
        // 30 s, longer than this test may take: the call's timeout is on the server's clock, held 1 ms before it
        // and answered once it passes.
        const slowCall = api(srv.url, "GET", `${v2("slow")}?timeout=30`, { token });
        await first;
        await clock.advance(29_999);
        expect(srv.relay.services.hub.get("alice", "dev1")!.inflight, "still in flight 1 ms before the timeout").to.equal(1);
        await clock.advance(1 + CALL_TIMEOUT_SLACK_MS);
        const slow = await slowCall;
        expect(slow.status).to.equal(504);
        expect(slow.body.error.code).to.equal("device_timeout");
        const reached = slowCallsReach(3, "three calls at the device");
        const pending = [1, 2, 3].map(() => api(srv.url, "GET", `${v2("slow")}?timeout=2`, { token }));
        await reached;
        expect(srv.relay.services.hub.get("alice", "dev1")!.inflight).to.equal(3);
        const busy = await api(srv.url, "GET", v2("temp"), { token });
        expect(busy.status).to.equal(429);
        expect(busy.body.error.code).to.equal("device_busy");
        expect(busy.headers.get("retry-after")).to.equal("1");
        await clock.advance(2000 + CALL_TIMEOUT_SLACK_MS);
        for (const r of await Promise.all(pending)) expect(r.status).to.equal(504);
        expect((await api(srv.url, "GET", v2("temp"), { token })).status).to.equal(200);
      });

      it("errors: the device dropping mid-call 502 device_disconnected; then 404 device_offline; unknown device 404 device_not_found", async () => {
        const reached = slowCallsReach(1, "the call at the device");
        const call = api(srv.url, "GET", `${v2("slow")}?timeout=5`, { token });
        await reached;
        expect(srv.relay.services.hub.get("alice", "dev1")?.inflight).to.equal(1);
        devices[0]!.destroy();
        const r = await call;
        expect(r.status).to.equal(502);
        expect(r.body.error.code).to.equal("device_disconnected");
        await sessionGone(srv.relay.services.hub, "alice", "dev1");
        const off = await api(srv.url, "GET", v2("temp"), { token });
        expect(off.status).to.equal(404);
        expect(off.body.error.code).to.equal("device_offline");
        expect((await api(srv.url, "GET", v2("api"), { token })).body.error.code).to.equal("device_offline");
        const nf = await api(srv.url, "GET", "/v2/users/alice/devices/ghost/temp", { token });
        expect(nf.status).to.equal(404);
        expect(nf.body.error.code).to.equal("device_not_found");
      });

      it("stats and the sessions list count the bytes both ways", async () => {
        await api(srv.url, "GET", v2("temp"), { token });
        const st = await api(srv.url, "GET", "/v1/users/alice/devices/dev1/stats", { token });
        expect(st.status).to.equal(200);
        expect(st.body).to.include({ connected: true, ip_address: "127.0.0.1" });
        expect(st.body.rx_bytes).to.be.greaterThan(20);
        expect(st.body.tx_bytes).to.be.greaterThan(10);
        const list = await api(srv.url, "GET", "/v1/users/alice/sessions", { token });
        expect(list.body).to.have.length(1);
        expect(list.body[0]).to.include({ device: "dev1", inflight: 0 });
      });

      it("keep-alive: the server echoes the device's keep-alive", async () => {
        await devices[0]!.keepalive();
        expect(devices[0]!.keepalives).to.equal(1);
      });

      it("a device-initiated request (property, bucket, endpoint…) is answered with an error at once", async () => {
        const answer = await devices[0]!.request();
        expect(answer, "an answer with the request's stream id").to.not.equal(undefined);
        if (protocol === "legacy") expect((answer as { flag?: number }).flag).to.equal(LEGACY_FLAG.REQUEST_ERROR);
        else expect((answer as { type: number }).type).to.equal(IOTMP_TYPE.ERROR);
        expect((await api(srv.url, "GET", v2("temp"), { token })).status).to.equal(200);
      });

      it("a hostile frame (oversized header) closes that connection only", async () => {
        const other = device({ device: "gone", credentials: "g0ne" });
        await online(other);
        devices[0]!.raw(Uint8Array.of(0x01, 0xff, 0xff, 0xff, 0x7f));
        await devices[0]!.closed;
        await sessionGone(srv.relay.services.hub, "alice", "dev1");
        expect((await api(srv.url, "GET", "/v2/users/alice/devices/gone/temp", { token })).body).to.deep.equal({ out: TEMP });
      });
    });

    describe("streams (SSE)", () => {
      it("samples at the requested interval, unwrapped; the device stops streaming after the last subscriber leaves", async () => {
        const d = await online();
        const c = await sse(`${srv.url}${v2("temp")}?interval=0.2&authorization=${token}`);
        expect(c.status).to.equal(200);
        const a = await c.next((e) => e.event === undefined);
        const b = await c.next((e) => e.event === undefined);
        expect(JSON.parse(a.data)).to.include({ out: TEMP });
        expect(JSON.parse(b.data)).to.include({ out: TEMP });
        expect(d.streams.size).to.equal(1);
        c.close();
        await d.streamsOpen(0, "device stream to stop");
      });

      it("interval 0: values the device pushes arrive", async () => {
        const d = await online();
        const started = d.streamsOpen(1, "the device to get START_STREAM");
        const c = await sse(`${srv.url}${v2("temp")}?authorization=${token}`);
        await started;
        d.push("temp");
        expect(JSON.parse((await c.next((e) => e.event === undefined)).data)).to.include({ out: TEMP });
      });

      it("a stream waiting for the device subscribes when it comes online; input resources cannot be streamed", async () => {
        const c = await sse(`${srv.url}${v2("temp")}?interval=0.2&authorization=${token}`);
        expect(c.status).to.equal(200);
        await online();
        expect(JSON.parse((await c.next((e) => e.event === undefined)).data)).to.include({ out: TEMP });
        const bad = await sse(`${srv.url}${v2("led")}?authorization=${token}`);
        expect(bad.status).to.equal(400);
      });

      it("online/offline reach the account event stream", async () => {
        const c = await sse(`${srv.url}/v1/users/alice/events?authorization=${token}`);
        const d = await online();
        expect(JSON.parse((await c.next((e) => e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === "online")).data)).to.include({ device: "dev1" });
        d.destroy();
        expect(JSON.parse((await c.next((e) => e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === "offline")).data)).to.include({ device: "dev1" });
      });
    });

    describe("sessions", () => {
      it("takeover: an SDK device with the same id replaces the Thinger device, and the other way round", async () => {
        const d = await online();
        const sdk = new Device({ server: srv.wsUrl, user: "alice", device: "dev1", credentials: "s3cret" });
        sdks.push(sdk);
        sdk.output("temp", () => 99);
        sdk.on("error", () => {});
        await sdk.connect();
        await d.closed;
        expect((await api(srv.url, "GET", v2("temp"), { token })).body).to.deep.equal({ out: 99 });
        const replaced = once<{ code: number }>(sdk, "disconnected");
        await online();
        expect((await replaced).code).to.equal(4000);
        expect((await api(srv.url, "GET", v2("temp"), { token })).body).to.deep.equal({ out: TEMP });
      });

      it("a second Thinger session replaces the first", async () => {
        const first = await online();
        await online();
        await first.closed;
        expect(srv.relay.services.hub.size).to.equal(1);
      });

      it("wrong credentials and unknown devices are refused", async () => {
        let err = await device({ credentials: "wrong" }).connect().catch((e: Error) => e);
        expect(err).to.be.instanceOf(Error);
        err = await device({ device: "ghost" }).connect().catch((e: Error) => e);
        expect(err).to.be.instanceOf(Error);
        expect(srv.relay.services.hub.size).to.equal(0);
      });

      it("new credentials close the session; the device cannot come back with the old ones", async () => {
        const d = await online();
        // FerretDB (the API suite's MongoDB pass) rewrites the whole document on update: the connect's own
        // lastConnectionTs write, still in flight, could put the old credentials back. MongoDB applies $set per field.
        await srv.relay.admission.touchedWritten();
        const r = await api(srv.url, "PUT", "/v1/users/alice/devices/dev1", { token, json: { device_credentials: "n3w" } });
        expect(r.status).to.equal(200);
        await d.closed;
        expect(await device().connect().catch((e: Error) => e)).to.be.instanceOf(Error);
        await online(device({ credentials: "n3w" }));
        await srv.relay.admission.touchedWritten();
        await api(srv.url, "PUT", "/v1/users/alice/devices/dev1", { token, json: { device_credentials: "s3cret" } });
      });

      it("new credentials set while the device's old ones are checked: closed before it goes online", async () => {
        await newDevice(srv.url, token, "alice", "racer", "old-s3cret");
        const devs = srv.relay.services.repos.devices;
        const findOne = devs.findOne;
        let changed: { status: number } | undefined;
        // The check has read the device (old credentials) when the change runs to its end, before the session registers.
        devs.findOne = async function (this: typeof devs, ...args: Parameters<typeof findOne>) {
          if (args[0]._id !== "alice/racer") return findOne.apply(this, args);
          devs.findOne = findOne;
          const before = await findOne.apply(this, args);
          changed = await api(srv.url, "PUT", "/v1/users/alice/devices/racer", { token, json: { device_credentials: "n3w-s3cret" } });
          return before;
        };
        try {
          const d = device({ device: "racer", credentials: "old-s3cret" });
          const online = once(srv.relay.services.hub, "online").then(() => "online");
          await d.connect();
          expect(await Promise.race([d.closed.then(() => "closed"), online])).to.equal("closed");
          expect(changed!.status).to.equal(200);
          expect(srv.relay.services.hub.get("alice", "racer")).to.equal(undefined);
        } finally {
          devs.findOne = findOne;
        }
      });

      it("deleting the device (force) closes its session", async () => {
        await newDevice(srv.url, token, "alice", "doomed", "d00m");
        const d = await online(device({ device: "doomed", credentials: "d00m" }));
        expect((await api(srv.url, "DELETE", "/v1/users/alice/devices/doomed", { token })).status).to.equal(400);
        expect((await api(srv.url, "DELETE", "/v1/users/alice/devices/doomed?force=true", { token })).status).to.equal(200);
        await d.closed;
      });
    });
  });
}

describe("Thinger devices: keep-alive timeout, throttling, detection", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  /** The keep-alive timeout and the authentication deadline pass when the test advances the server's clock. */
  let clock: FakeClock;
  before(async () => {
    clock = new FakeClock();
    srv = await startServer({ thinger: { keepaliveTimeoutMs: 300 }, env: { THINGRELAY_AUTH_DEADLINE_MS: "300" }, timers: clock });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "dev1", "s3cret");
  });
  after(() => srv?.close());

  for (const protocol of ["legacy", "iotmp1", "iotmp2"] as const) {
    it(`${protocol}: a device silent past the keep-alive timeout is dropped and goes offline (any TCP port detects the protocol)`, async () => {
      const port = protocol === "legacy" ? srv.thingerPorts.iotmp! : srv.thingerPorts.thinger!;
      const d = new TestDevice({ protocol, transport: "tcp", port, user: "alice", device: "dev1", credentials: "s3cret" });
      const on = once(srv.relay.services.hub, "online");
      const off = once(srv.relay.services.hub, "offline");
      await d.connect();
      await on;
      await clock.advance(299);
      expect(srv.relay.services.hub.get("alice", "dev1"), "held 1 ms before the timeout").to.not.equal(undefined);
      await clock.advance(1);
      await d.closed;
      await off;
      expect(srv.relay.services.hub.get("alice", "dev1")).to.equal(undefined);
    });
  }

  it("a connection that does not authenticate within the deadline is closed (TCP and /iotmp)", async () => {
    const sock = connect(srv.thingerPorts.iotmp!, "127.0.0.1");
    sock.on("error", () => {});
    await once(sock, "connect");
    expect(srv.relay.gateway.unauthenticated).to.equal(1);
    const sockClosed = once(sock, "close");
    await clock.advance(300);
    await sockClosed;
    const ws = new WebSocket(`${srv.wsUrl}/iotmp`, "iotmp");
    ws.on("error", () => {});
    await once(ws, "open");
    expect(ws.protocol).to.equal("iotmp");
    const wsClosed = once(ws, "close");
    await clock.advance(300);
    await wsClosed;
    expect(srv.relay.gateway.unauthenticated).to.equal(0);
  });

  it("a first byte of neither protocol closes the connection, counted as a failed attempt", async () => {
    const sock = connect(srv.thingerPorts.thinger!, "127.0.0.1");
    sock.on("error", () => {});
    await once(sock, "connect");
    sock.write(encodeFrame(0x07, Uint8Array.of(0x08, 0x01)));
    await once(sock, "close");
  });

  it("failed authentications are throttled per address across protocols: after 20, even good credentials are refused", async () => {
    for (let i = 0; i < 20; i++) {
      const protocol = i % 2 === 0 ? "legacy" : "iotmp2";
      const d = new TestDevice({ protocol, transport: "tcp", port: srv.thingerPorts.thinger!, user: "alice", device: "dev1", credentials: `bad${i}` });
      expect(await d.connect().catch((e: Error) => e)).to.be.instanceOf(Error);
    }
    const good = new TestDevice({ protocol: "legacy", transport: "tcp", port: srv.thingerPorts.thinger!, user: "alice", device: "dev1", credentials: "s3cret" });
    expect(await good.connect().catch((e: Error) => e)).to.be.instanceOf(Error);
    // The JSON gateway shares the throttle.
    const ws = new WebSocket(`${srv.wsUrl}/v1/connect`);
    ws.on("error", () => {});
    const status = await new Promise<number>((resolve) => ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0)));
    expect(status).to.equal(429);
    ws.terminate();
  });
});
