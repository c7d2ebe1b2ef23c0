import { expect } from "chai";
import type { EventSourceMessage } from "eventsource-parser";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { streamsOpen } from "./helpers/wait.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { RawDevice } from "./helpers/rawdevice.js";


const EVENT_ID_RE = /^[0-9a-f]{8}-\d+$/;
const json = (e: EventSourceMessage) => JSON.parse(e.data);

describe("streams: SSE stats, resource and account event streams", function () {
  this.timeout(30_000);
  let srv: TestServer;
  let token: string;
  const devices: Array<Device | RawDevice> = [];
  const base = (path: string) => `${srv.url}${path}${path.includes("?") ? "&" : "?"}authorization=${token}`;

  before(async () => {
    srv = await startServer({ env: { THINGRELAY_SSE_HEARTBEAT_MS: "200", THINGRELAY_MAX_STREAMS: "3" } });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const d of ["sensor", "other", "raw", "spare", "secret_dev"]) await newDevice(srv.url, token, "alice", d, `${d}-secret`);
  });
  afterEach(async () => {
    closeAllSse();
    for (const d of devices.splice(0)) await d.close();
    // Every stream closed by the test has released its account slot before the next test starts.
    await streamsOpen(srv.relay.services.streams, 0, 5000, "streams to close");
  });
  after(async () => {
    await srv?.close();
  });

  function sdkDevice(name: string): Device {
    const d = new Device({ server: srv.wsUrl, user: "alice", device: name, credentials: `${name}-secret`, reconnectInitialMs: 50 });
    devices.push(d);
    return d;
  }
  async function rawDevice(name: string, resources: Record<string, string>): Promise<RawDevice> {
    const d = await RawDevice.described(srv.wsUrl, "alice", name, `${name}-secret`, resources);
    devices.push(d);
    return d;
  }

  describe("every stream", () => {
    it("answers SSE headers, a retry line, an id on each event, and heartbeat comments (with ?authorization=)", async () => {
      const c = await sse(base("/v1/users/alice/devices/sensor/stats"));
      expect(c.status).to.equal(200);
      expect(c.headers.get("content-type")).to.equal("text/event-stream");
      expect(c.headers.get("cache-control")).to.include("no-cache");
      expect(c.headers.get("x-accel-buffering")).to.equal("no");
      expect(c.headers.get("content-encoding")).to.equal(null);
      expect(c.headers.get("referrer-policy")).to.equal("no-referrer");
      const first = await c.next();
      expect(first.event, "values are unnamed events").to.equal(undefined);
      expect(json(first)).to.have.property("connected");
      expect(first.id).to.match(EVENT_ID_RE);
      expect(c.retry).to.equal(3000);
      // Heartbeat comes every THINGRELAY_SSE_HEARTBEAT_MS (200 ms here): wait for two of them.
      for (let i = 0; i < 2; i++) await c.comment((x) => x.trim() === "heartbeat");
      expect(c.comments).to.include("heartbeat");
    });

    it("no token → 401 unauthorized (EventSource then stops)", async () => {
      const c = await sse(`${srv.url}/v1/users/alice/events`);
      expect(c.status).to.equal(401);
      expect(c.body.error.code).to.equal("unauthorized");
    });

    it("garbage and 10 KB Last-Event-ID values are ignored: 200 and a live stream, never 500", async () => {
      for (const leid of ["garbage", "deadbeef-99999999", "zz-1", "x".repeat(10 * 1024), "00000000-1\u00e9"]) {
        const c = await sse(base("/v1/users/alice/events"), { "Last-Event-ID": leid.replace(/[^\x20-\x7e]/g, "?") });
        expect(c.status, leid.slice(0, 20)).to.equal(200);
        c.close();
        const r = await sse(base("/v1/users/alice/devices/sensor/stats"), { "Last-Event-ID": leid.replace(/[^\x20-\x7e]/g, "?") });
        expect(r.status).to.equal(200);
        expect(json(await r.next())).to.have.property("connected");
        r.close();
        await streamsOpen(srv.relay.services.streams, 0, 5000, "streams to close");
      }
    });

    it("caps open streams per account: one more → 429 too_many_streams; a slot frees when a client leaves", async () => {
      const a = await sse(base("/v1/users/alice/events"));
      const b = await sse(base("/v1/users/alice/devices/sensor/stats"));
      const c = await sse(base("/v2/users/alice/devices/sensor/temperature?interval=1"));
      expect([a.status, b.status, c.status], JSON.stringify(c.body)).to.deep.equal([200, 200, 200]);
      const d = await sse(base("/v1/users/alice/events"));
      expect(d.status).to.equal(429);
      expect(d.body.error.code).to.equal("too_many_streams");
      b.close();
      await streamsOpen(srv.relay.services.streams, 2, 5000, "slot to free");
      const e = await sse(base("/v1/users/alice/events"));
      expect(e.status).to.equal(200);
    });

    it("releases every hub listener, timer and account slot when clients disconnect", async () => {
      const hub = srv.relay.services.hub;
      const events = ["online", "offline", "data", "traffic", "describe"] as const;
      const baseline = events.map((e) => hub.listenerCount(e));
      for (let round = 0; round < 5; round++) {
        const cs = [
          await sse(base("/v1/users/alice/devices/sensor/stats")),
          await sse(base("/v1/users/alice/events")),
          await sse(base("/v2/users/alice/devices/sensor/temperature?interval=0.5")),
        ];
        expect(cs.map((c) => c.status)).to.deep.equal([200, 200, 200]);
        expect(hub.listenerCount("traffic")).to.equal(baseline[3]! + 1);
        for (const c of cs) c.close();
        await streamsOpen(srv.relay.services.streams, 0, 5000, "streams to close");
      }
      expect(events.map((e) => hub.listenerCount(e))).to.deep.equal(baseline);
      const gauge = await srv.relay.services.metrics.streams.get();
      expect(gauge.values.every((v) => v.value === 0)).to.equal(true);
    });
  });

  describe("stats stream", () => {
    it("sends the current stats at once, then on connect, on traffic and on disconnect", async () => {
      const c = await sse(base("/v1/users/alice/devices/sensor/stats"));
      const first = json(await c.next());
      expect(first).to.include({ connected: false });
      expect(Object.keys(first).sort()).to.deep.equal(["connected", "connected_ts", "ip_address", "rx_bytes", "tx_bytes"]);
      const device = sdkDevice("sensor").output("temperature", () => 20);
      await device.connect();
      const online = json(await c.next((e) => json(e).connected === true));
      expect(online.ip_address).to.be.a("string");
      const call = await api(srv.url, "GET", "/v2/users/alice/devices/sensor/temperature", { token });
      expect(call.status).to.equal(200);
      // The call's frames move the byte counters: a (throttled) update follows.
      const moved = json(await c.next((e) => json(e).tx_bytes > online.tx_bytes));
      expect(moved.rx_bytes).to.be.greaterThan(online.rx_bytes);
      await device.close();
      const offline = json(await c.next((e) => json(e).connected === false));
      expect(offline.rx_bytes).to.be.at.least(moved.rx_bytes);
    });

    it("without Accept: text/event-stream answers the JSON object", async () => {
      const r = await api(srv.url, "GET", "/v1/users/alice/devices/sensor/stats", { token });
      expect(r.status).to.equal(200);
      expect(r.body).to.have.all.keys("connected", "connected_ts", "ip_address", "rx_bytes", "tx_bytes");
    });
  });

  describe("account event stream", () => {
    it("reports online and offline, each with an id", async () => {
      const c = await sse(base("/v1/users/alice/events"));
      const device = sdkDevice("sensor").output("temperature", () => 20);
      await device.connect();
      const on = await c.next();
      expect(on.event, "values are unnamed events").to.equal(undefined);
      expect(on.id).to.match(EVENT_ID_RE);
      expect(json(on)).to.include({ type: "online", device: "sensor" });
      await device.close();
      const off = await c.next();
      expect(off.event).to.equal(undefined);
      expect(json(off)).to.include({ type: "offline", device: "sensor" });
      expect(Number(off.id!.split("-")[1])).to.be.greaterThan(Number(on.id!.split("-")[1]));
    });

    it("?device= filters to one device; a bad filter is 400 invalid_request", async () => {
      const c = await sse(base("/v1/users/alice/events?device=other"));
      expect(c.status).to.equal(200);
      await sdkDevice("sensor").output("t", () => 1).connect();
      await sdkDevice("other").output("t", () => 1).connect();
      const first = await c.next();
      expect(json(first)).to.include({ type: "online", device: "other" });
      const bad = await sse(base("/v1/users/alice/events?device=no%20such"));
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal("invalid_request");
    });

    it("resumes from Last-Event-ID: events missed while disconnected are replayed", async () => {
      const c = await sse(base("/v1/users/alice/events"));
      const device = sdkDevice("sensor").output("t", () => 1);
      await device.connect();
      const on = await c.next();
      expect(json(on).type).to.equal("online");
      c.close();
      await streamsOpen(srv.relay.services.streams, 0, 5000, "stream to close");
      await device.close(); // happens while nobody listens
      const again = await sse(base("/v1/users/alice/events"), { "Last-Event-ID": on.id! });
      expect(again.status).to.equal(200);
      const missed = await again.next();
      expect(missed.event).to.equal(undefined);
      expect(json(missed).type).to.equal("offline");
      expect(json(missed)).to.include({ device: "sensor" });
    });

    it("a user token allowing ReadEvents on * but denying one device never sees that device's events, live or replayed, nor after an edit denies another", async () => {
      const created = await api(srv.url, "POST", "/v1/users/alice/tokens", {
        token, json: { name: "events but not secret", allow: [{ action: "ReadEvents", target: "*" }], deny: [{ action: "ReadEvents", target: "secret_dev" }] },
      });
      expect(created.status).to.equal(200);
      const ut = created.body as { id: string; token: string };
      const url = `${srv.url}/v1/users/alice/events?authorization=${ut.token}`;
      const denied = await sse(`${url}&device=secret_dev`);
      expect(denied.status).to.equal(403);
      expect(denied.body.error.code).to.equal("forbidden");

      // Live: the denied device's online comes first, yet the first event the stream shows is the other one.
      const c = await sse(url);
      expect(c.status).to.equal(200);
      const secret = sdkDevice("secret_dev").output("t", () => 1);
      await secret.connect();
      const other = sdkDevice("other").output("t", () => 1);
      await other.connect();
      const first = await c.next();
      expect(json(first)).to.include({ type: "online", device: "other" });

      // Replay: events recorded while the client was away go through the same filter.
      c.close();
      await streamsOpen(srv.relay.services.streams, 0, 5000, "stream to close");
      await secret.close();
      await other.close();
      const again = await sse(url, { "Last-Event-ID": first.id! });
      expect(again.status).to.equal(200);
      const replayed = await again.next();
      expect(json(replayed)).to.include({ type: "offline", device: "other" });
      // The stream reaches the live end without ever showing secret_dev.
      await sdkDevice("spare").output("t", () => 1).connect();
      await again.next((e) => json(e).device === "spare");
      expect(again.events.map((e) => json(e).device)).to.not.include("secret_dev");

      // An edit that denies "other" too: the stream stays open (some device is still allowed) and its
      // re-check applies the new permissions to what follows.
      const edited = await api(srv.url, "PUT", `/v1/users/alice/tokens/${ut.id}`, {
        token, json: { deny: [{ action: "ReadEvents", target: "secret_dev" }, { action: "ReadEvents", target: "other" }] },
      });
      expect(edited.status).to.equal(200);
      await other.connect();
      await sdkDevice("sensor").output("t", () => 1).connect();
      const next = await again.next((e) => json(e).type === "online" || e.event === "end");
      expect(json(next)).to.include({ type: "online", device: "sensor" });
      expect(again.events.map((e) => json(e).device).filter((d) => d === "other")).to.deep.equal(["other"]); // the replayed offline only
      expect(srv.relay.services.streams.openCount).to.equal(1);
    });
  });

  describe("resource stream", () => {
    it("streams sampled values of an output resource (SDK device, ?interval= seconds)", async () => {
      let n = 0;
      const device = sdkDevice("sensor").output("counter", () => ++n);
      await device.connect();
      const c = await sse(base("/v2/users/alice/devices/sensor/counter?interval=0.2"));
      expect(c.status).to.equal(200);
      const a = await c.next((e) => e.event === undefined);
      const b = await c.next((e) => e.event === undefined);
      expect(a.id).to.match(EVENT_ID_RE);
      expect(json(b).out).to.be.greaterThan(json(a).out);
      expect(json(a).ts).to.be.a("number");
    });

    it("delivers values the device pushes with device.stream() (interval 0)", async () => {
      let value = "idle";
      const device = sdkDevice("sensor").output("state", () => value);
      await device.connect();
      const c = await sse(base("/v2/users/alice/devices/sensor/state"));
      expect(c.status).to.equal(200);
      await streamsOpen(srv.relay.services.streams, 1, 5000, "stream open");
      value = "busy";
      await device.stream("state");
      expect(json(await c.next((e) => e.event === undefined))).to.include({ out: "busy" });
    });

    it("validates ?interval=: 400 invalid_request", async () => {
      await sdkDevice("sensor").output("t", () => 1).connect();
      for (const v of ["abc", "-1", "0.05", "1.25", "1e3", "100000", "", "1&interval=2"]) {
        const c = await sse(base(`/v2/users/alice/devices/sensor/t?interval=${v}`));
        expect(c.status, v).to.equal(400);
        expect(c.body.error.code, v).to.equal("invalid_request");
      }
    });

    it("refuses unknown devices (404), unknown resources (404) and input/run resources (400)", async () => {
      await sdkDevice("sensor").output("t", () => 1).input("led", () => undefined).run("reboot", () => undefined).connect();
      const ghost = await sse(base("/v2/users/alice/devices/ghost/t"));
      expect(ghost.status).to.equal(404);
      expect(ghost.body.error.code).to.equal("device_not_found");
      const nope = await sse(base("/v2/users/alice/devices/sensor/nope"));
      expect(nope.status).to.equal(404);
      expect(nope.body.error.code).to.equal("resource_not_found");
      for (const r of ["led", "reboot"]) {
        const c = await sse(base(`/v2/users/alice/devices/sensor/${r}`));
        expect(c.status).to.equal(400);
        expect(c.body.error.code).to.equal("invalid_request");
      }
    });

    it("asks the device for the GCD of two subscribers' intervals and stops when the last one leaves", async () => {
      const dev = await rawDevice("raw", { temp: "output" });
      const a = await sse(base("/v2/users/alice/devices/raw/temp?interval=2"));
      expect(a.status).to.equal(200);
      expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 2000 });
      const b = await sse(base("/v2/users/alice/devices/raw/temp?interval=3"));
      expect(b.status).to.equal(200);
      expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 1000 });
      // A value both subscribers are due for (their first) reaches both.
      dev.data("temp", 21.5);
      expect(json(await a.next((e) => e.event === undefined)).out).to.equal(21.5);
      expect(json(await b.next((e) => e.event === undefined)).out).to.equal(21.5);
      b.close();
      expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 2000 });
      a.close();
      expect(await dev.nextStreamFrame()).to.deep.equal({ type: "unstream", resource: "temp" });
    });

    it("re-subscribes after the device reconnects, and the open stream keeps delivering", async () => {
      const first = await rawDevice("raw", { temp: "output" });
      const c = await sse(base("/v2/users/alice/devices/raw/temp?interval=1"));
      expect(await first.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 1000 });
      first.data("temp", 1);
      expect(json(await c.next((e) => e.event === undefined)).out).to.equal(1);
      await first.close();
      const second = await rawDevice("raw", { temp: "output" });
      expect(await second.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 1000 });
      // Both frames follow `connected`, so any device that waits for it sees them.
      expect(second.frames.findIndex((f) => f.type === "connected")).to.be.lessThan(second.frames.findIndex((f) => f.type === "stream"));
      second.data("temp", 2);
      expect(json(await c.next((e) => e.event === undefined)).out).to.equal(2);
    });

    it("re-subscribes an SDK device after a dropped session (streams survive a reconnect)", async () => {
      let n = 0;
      const device = sdkDevice("sensor").output("counter", () => ++n);
      await device.connect();
      const c = await sse(base("/v2/users/alice/devices/sensor/counter?interval=0.2"));
      await c.next((e) => e.event === undefined);
      const reconnected = new Promise((r) => device.once("connected", () => r(undefined)));
      srv.relay.services.hub.closeSession("alice", "sensor", 1012, "test drop");
      await reconnected;
      const mark = n;
      const after = await c.next((e) => e.event === undefined && json(e).out > mark);
      expect(json(after).out).to.be.greaterThan(mark);
    });
  });

  describe("slow clients", () => {
    it("a client that stops reading is dropped, not buffered without bound", async () => {
      const dev = await rawDevice("raw", { blob: "output" });
      // A raw socket that sends the request and never reads the answer.
      const { connect } = await import("node:net");
      const sock = connect(srv.port, "127.0.0.1");
      await new Promise((r) => sock.once("connect", r));
      sock.pause();
      sock.write(`GET /v2/users/alice/devices/raw/blob?authorization=${token} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
      await dev.nextStreamFrame();
      expect(srv.relay.services.streams.openCount).to.equal(1);
      const big = "x".repeat(256 * 1024);
      // Push until the server gives up on the reader (socket buffers absorb the first few MiB).
      const frame = JSON.stringify({ type: "data", resource: "blob", out: big });
      for (let i = 0; i < 400 && srv.relay.services.streams.openCount > 0; i++) {
        await new Promise((r) => dev.ws.send(frame, r));
      }
      await streamsOpen(srv.relay.services.streams, 0, 10_000, "slow stream to be dropped");
      expect(srv.relay.services.streams.openCount).to.equal(0);
      expect(await dev.nextStreamFrame()).to.deep.equal({ type: "unstream", resource: "blob" });
      sock.destroy();
    });
  });

  describe("token lifecycle", () => {
    async function deviceToken(body: Record<string, unknown>): Promise<{ id: string; token: string }> {
      const r = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "wall", ...body } });
      expect(r.status).to.equal(200);
      return r.body;
    }

    it("deleting the device token behind a stream ends the stream at once; reconnecting gets 401", async () => {
      await sdkDevice("sensor").output("t", () => 1).connect();
      const dt = await deviceToken({});
      const url = `${srv.url}/v2/users/alice/devices/sensor/t?interval=1&authorization=${dt.token}`;
      const c = await sse(url);
      expect(c.status).to.equal(200);
      const stats = await sse(`${srv.url}/v1/users/alice/devices/sensor/stats?authorization=${dt.token}`);
      expect(stats.status).to.equal(200);
      const del = await api(srv.url, "DELETE", `/v1/users/alice/devices/sensor/tokens/${dt.id}`, { token });
      expect(del.status).to.equal(200);
      const end = await c.next((e) => e.event === "end");
      expect(json(end)).to.deep.equal({ reason: "token_revoked" });
      await c.ended;
      expect(json(await stats.next((e) => e.event === "end")).reason).to.equal("token_revoked");
      await stats.ended;
      const again = await sse(url);
      expect(again.status).to.equal(401);
      expect(again.body.error.code).to.equal("unauthorized");
    });

    it("revoking the refresh family of a session ends its streams", async () => {
      const session = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "alice", password: "alice-password" } });
      expect(session.status).to.equal(200);
      const c = await sse(`${srv.url}/v1/users/alice/events?authorization=${session.body.access_token}`);
      expect(c.status).to.equal(200);
      const revoke = await api(srv.url, "POST", "/oauth/revoke", { form: { token: session.body.refresh_token } });
      expect(revoke.status).to.equal(200);
      expect(json(await c.next((e) => e.event === "end"))).to.deep.equal({ reason: "token_revoked" });
      await c.ended;
    });

    it("narrowing a user token's permissions ends its stream with reason forbidden; disabling it, token_revoked", async () => {
      const created = await api(srv.url, "POST", "/v1/users/alice/tokens", {
        token, json: { name: "wall screen", allow: [{ action: "ReadEvents", target: "*" }, { action: "GetDeviceStats", target: "*" }] },
      });
      expect(created.status).to.equal(200);
      const ut = created.body as { id: string; token: string };
      const events = await sse(`${srv.url}/v1/users/alice/events?authorization=${ut.token}`);
      const stats = await sse(`${srv.url}/v1/users/alice/devices/sensor/stats?authorization=${ut.token}`);
      expect([events.status, stats.status]).to.deep.equal([200, 200]);
      const narrowed = await api(srv.url, "PUT", `/v1/users/alice/tokens/${ut.id}`, { token, json: { allow: [{ action: "GetDeviceStats", target: "*" }] } });
      expect(narrowed.status).to.equal(200);
      expect(json(await events.next((e) => e.event === "end"))).to.deep.equal({ reason: "forbidden" });
      await events.ended;
      expect(srv.relay.services.streams.openCount).to.equal(1);
      const disabled = await api(srv.url, "PUT", `/v1/users/alice/tokens/${ut.id}`, { token, json: { enabled: false } });
      expect(disabled.status).to.equal(200);
      expect(json(await stats.next((e) => e.event === "end"))).to.deep.equal({ reason: "token_revoked" });
      await stats.ended;
    });

    // "A stream ends when its token expires" (device and user tokens: 200, then `end` token_expired, the stream
    // closed) runs on a fake clock in streams-expiry-clock.test.ts, at a 90 s lifetime instead of a real 1.5 s.

    it("server shutdown ends open streams with reason shutdown", async () => {
      const other = await startServer();
      try {
        const adminToken = (await login(other.url, ADMIN.user, ADMIN.password)).access_token;
        const c = await sse(`${other.url}/v1/users/admin/events?authorization=${adminToken}`);
        expect(c.status).to.equal(200);
        await other.relay.close();
        expect(json(await c.next((e) => e.event === "end"))).to.deep.equal({ reason: "shutdown" });
        await c.ended;
      } finally {
        await other.close();
      }
    });
  });
});
