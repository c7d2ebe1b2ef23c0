import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { once } from "./helpers/wait.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { streamsClosedTo } from "./helpers/streams.js";
import type { JsonSession } from "../server/gateway/session.js";
import type { HubEventMap } from "../server/gateway/hub.js";

/** Production's intervals (server/config.ts defaults): the fake clock makes them free to wait for. */
const PING_MS = 30_000;
const HEARTBEAT_MS = 15_000;
/** STREAM_DEFAULTS.statsThrottleMs: byte-counter changes reach a stats stream at most once per this. */
const THROTTLE_MS = 1_000;

/**
 * The keepalive sweep and the SSE heartbeat run on the app's injected timers (issue 13.6): with a fake clock
 * they move only when the test advances it, at production's intervals, without sleeping.
 */
describe("injected timers: keepalive sweep and SSE heartbeat on a fake clock", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  let clock: FakeClock;
  const open: RawDevice[] = [];
  const offline: Array<HubEventMap["offline"][0]> = [];

  before(async () => {
    clock = new FakeClock();
    srv = await startServer({ timers: clock });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const d of ["mute", "alive", "sensor", "meter"]) await newDevice(srv.url, token, "alice", d);
    srv.relay.services.hub.on("offline", (e) => offline.push(e));
  });
  afterEach(async () => {
    closeAllSse();
    for (const d of open.splice(0)) d.kill();
    // Each test counts the clock's timers: the streams of the last one have let go of their heartbeats.
    await streamsClosedTo(srv.relay.services.streams, 0);
  });
  after(async () => srv?.close());

  const connect = async (device: string, autoPong = true) => {
    const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device, credentials: `${device}-secret`, autoPong });
    open.push(d);
    return d;
  };

  describe("keepalive sweep", () => {
    it("a device that answers no ping is dropped at the second sweep (offline event, close 1006), not before", async () => {
      const d = await connect("mute", false);
      const session = srv.relay.services.hub.get("alice", "mute");
      expect(session).to.not.equal(undefined);
      const pinged = once(d.ws, "ping");
      await clock.advance(PING_MS);
      await pinged;
      // One interval of silence is allowed: the sweep only pinged it.
      await clock.advance(PING_MS - 1);
      expect(srv.relay.services.hub.get("alice", "mute")).to.equal(session);
      expect(offline.filter((e) => e.device === "mute")).to.deep.equal([]);
      await clock.advance(1);
      expect(srv.relay.services.hub.get("alice", "mute")).to.equal(undefined);
      expect(offline.filter((e) => e.device === "mute").map(({ user, device }) => ({ user, device }))).to.deep.equal([{ user: "alice", device: "mute" }]);
      const closed = await d.closed;
      expect(closed.code).to.equal(1006); // terminated, no closing handshake
      expect(d.pings).to.equal(1);
      const view = await api(srv.url, "GET", "/v1/users/alice/devices/mute", { token });
      expect(view.status).to.equal(200);
      expect(view.body.connection.active).to.equal(false);
    });

    it("a device that answers every ping stays connected across many sweeps and still answers calls", async () => {
      const d = await connect("alive");
      d.onCall = () => "here";
      const session = srv.relay.services.hub.get("alice", "alive") as JsonSession;
      for (let i = 0; i < 4; i++) {
        // The pong must reach the server before the next sweep judges the device.
        const pong = once(session.ws, "pong");
        await clock.advance(PING_MS);
        await pong;
      }
      expect(d.pings).to.equal(4);
      expect(srv.relay.services.hub.get("alice", "alive")).to.equal(session);
      expect(offline.filter((e) => e.device === "alive")).to.deep.equal([]);
      const r = await api(srv.url, "GET", "/v2/users/alice/devices/alive/x", { token });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: "here" });
    });
  });

  describe("SSE heartbeat", () => {
    it("heartbeat comments arrive when the clock passes each interval, and not before", async () => {
      const c = await sse(`${srv.url}/v1/users/alice/devices/sensor/stats?authorization=${token}`);
      expect(c.status).to.equal(200);
      const first = await c.next();
      expect(JSON.parse(first.data)).to.include({ connected: false });
      await clock.advance(HEARTBEAT_MS - 1);
      // A positive marker through the same response: the device's online change arrives after anything
      // the stream wrote before it, so a heartbeat due by now would be in `comments` already.
      await connect("sensor");
      const online = await c.next((e) => JSON.parse(e.data).connected === true);
      expect(online.id).to.not.equal(first.id);
      expect(c.comments.map((x) => x.trim())).to.deep.equal(["thingrelay"]);
      await clock.advance(1);
      expect((await c.comment((x) => x.trim() === "heartbeat")).trim()).to.equal("heartbeat");
      await clock.advance(HEARTBEAT_MS);
      expect((await c.comment((x) => x.trim() === "heartbeat")).trim()).to.equal("heartbeat");
      expect(c.comments.map((x) => x.trim())).to.deep.equal(["thingrelay", "heartbeat", "heartbeat"]);
    });
  });

  describe("stats stream throttle", () => {
    const statsUrl = () => `${srv.url}/v1/users/alice/devices/meter/stats?authorization=${token}`;
    const data = (e: { data: string }) => JSON.parse(e.data) as { connected: boolean; rx_bytes: number; tx_bytes: number };
    /** A frame the server answers at once: when the pong is back, the server has counted the ping's bytes. */
    const pingPong = async (d: RawDevice) => {
      const pong = d.next((f) => f.type === "pong");
      d.send({ type: "ping" });
      await pong;
    };

    it("holds byte-counter updates until the throttle has passed on the clock; an online/offline change in between supersedes them", async () => {
      const c = await sse(statsUrl());
      await c.next();
      // The `connected` frame is the session's first traffic: it arms the throttle timer; later frames join it.
      const timers = clock.size;
      const d = await connect("meter");
      const online = await c.next((e) => data(e).connected === true);
      for (let i = 0; i < 3; i++) await pingPong(d);
      expect(clock.size, "one throttle timer, on the injected clock").to.equal(timers + 1);
      await clock.advance(THROTTLE_MS - 1);
      // The offline change is sent at once, with the counters so far: the marker that no update went out before it.
      d.kill();
      const offline = await c.next((e) => data(e).connected === false);
      expect(c.events.slice(c.events.indexOf(online) + 1)).to.deep.equal([offline]);
      expect(data(offline).rx_bytes).to.be.greaterThan(data(online).rx_bytes);
      expect(clock.size, "the superseded update's timer is cleared").to.equal(timers);
    });

    it("then sends one update with the latest counters for all the frames of the window", async () => {
      const c = await sse(statsUrl());
      await c.next();
      // The `connected` frame is the session's first traffic: it arms the throttle timer; later frames join it.
      const timers = clock.size;
      const d = await connect("meter");
      const online = await c.next((e) => data(e).connected === true);
      for (let i = 0; i < 3; i++) await pingPong(d);
      expect(clock.size, "one throttle timer for the three frames").to.equal(timers + 1);
      const { rx_bytes, tx_bytes } = srv.relay.services.hub.stats("alice", "meter");
      await clock.advance(THROTTLE_MS);
      const update = await c.next();
      expect(data(update)).to.include({ connected: true, rx_bytes, tx_bytes });
      expect(c.events.slice(c.events.indexOf(online) + 1)).to.deep.equal([update]);
    });
  });
});
