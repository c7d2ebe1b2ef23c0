import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice, type ApiResponse } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { once, sessionGone, whenState } from "./helpers/wait.js";
import { CLOSE_GRACE_MS, type JsonSession } from "../server/gateway/session.js";
import type { SessionInfo } from "../server/gateway/hub.js";
import { CALL_TIMEOUT_SLACK_MS } from "../server/gateway/device-session.js";
import { FakeClock } from "./helpers/fake-clock.js";

/**
 * A server with one account "alice" and the given devices (credentials = `${id}-secret`); with `timers`, its
 * deadlines, call timeouts and keepalive sweep pass when the test advances that clock.
 */
async function fixture(env: Record<string, string>, devices: string[], timers?: FakeClock): Promise<{ srv: TestServer; token: string }> {
  const srv = await startServer({ env, timers });
  const admin = await login(srv.url, ADMIN.user, ADMIN.password);
  const token = await newAccount(srv.url, admin.access_token, "alice");
  for (const d of devices) await newDevice(srv.url, token, "alice", d);
  return { srv, token };
}

type Refusal = { frame: Record<string, unknown>; close: { code: number; reason: string } };
async function refusal(p: Promise<RawDevice>): Promise<Refusal> {
  return p.then(() => { throw new Error("unexpectedly accepted"); }, (e: Refusal) => e);
}

describe("gateway: device sockets on /v1/connect", function () {
  this.timeout(30_000);

  describe("authentication", () => {
    let srv: TestServer;
    let token: string;
    const open: RawDevice[] = [];
    before(async () => {
      ({ srv, token } = await fixture({}, ["dev1", "dev2"]));
    });
    afterEach(() => {
      for (const d of open.splice(0)) d.kill();
    });
    after(async () => srv?.close());
    const dev = (device: string, credentials = `${device}-secret`, user = "alice") =>
      RawDevice.connect({ wsUrl: srv.wsUrl, user, device, credentials });

    it("connect frame → connected frame with user, device, keepalive and server time; device goes online", async () => {
      const before = Date.now();
      const d = await dev("dev1");
      open.push(d);
      const f = d.frames[0]!;
      expect(Object.keys(f).sort()).to.deep.equal(["device", "keepalive", "server_time", "type", "user"]);
      expect(f).to.include({ type: "connected", user: "alice", device: "dev1", keepalive: 30 });
      expect(f.server_time).to.be.within(before, Date.now());
      const view = await api(srv.url, "GET", "/v1/users/alice/devices/dev1", { token });
      expect(view.body.connection.active).to.equal(true);
    });

    it("wrong credentials, an unknown device and an unknown user get the same refusal (error frame + 4001)", async () => {
      const wrong = await refusal(dev("dev1", "not-the-secret"));
      const unknownDevice = await refusal(dev("ghost", "whatever"));
      const unknownUser = await refusal(dev("dev1", "dev1-secret", "mallory"));
      const expected = { frame: { type: "error", code: "unauthorized", message: "invalid device credentials" }, close: { code: 4001, reason: "unauthorized" } };
      expect({ frame: wrong.frame, close: wrong.close }).to.deep.equal(expected);
      expect({ frame: unknownDevice.frame, close: unknownDevice.close }).to.deep.equal(expected);
      expect({ frame: unknownUser.frame, close: unknownUser.close }).to.deep.equal(expected);
      expect(srv.relay.services.hub.get("alice", "dev1")).to.equal(undefined);
    });

    for (const [name, first] of [
      ["a call-like frame", JSON.stringify({ type: "call", id: 1, resource: "x" })],
      ["a describe frame", JSON.stringify({ type: "describe", resources: { x: { kind: "output" } } })],
      ["a result frame", JSON.stringify({ type: "result", id: 1, out: 1 })],
      ["invalid JSON", "{not json"],
      ["a connect frame with a bad device id", JSON.stringify({ type: "connect", user: "alice", device: "a-b", credentials: "x" })],
      ["a connect frame without credentials", JSON.stringify({ type: "connect", user: "alice", device: "dev1" })],
    ] as const) {
      it(`nothing is accepted before connect: ${name} first → error frame + 4400`, async () => {
        const d = await RawDevice.open(srv.wsUrl);
        const err = d.next((f) => f.type === "error");
        d.send(first);
        expect(await err).to.include({ type: "error", code: "invalid_request" });
        expect((await d.closed).code).to.equal(4400);
        expect(d.frames).to.have.length(1);
      });
    }

    it("a binary first frame → 4400", async () => {
      const d = await RawDevice.open(srv.wsUrl);
      d.ws.send(Buffer.from(JSON.stringify({ type: "connect", user: "alice", device: "dev1", credentials: "dev1-secret" })));
      expect((await d.closed).code).to.equal(4400);
      expect(srv.relay.services.hub.get("alice", "dev1")).to.equal(undefined);
    });

    it("frames after the first one are not a second chance: connect after a bad first frame is never answered", async () => {
      const d = await RawDevice.open(srv.wsUrl);
      d.send({ type: "hello" });
      d.send({ type: "connect", user: "alice", device: "dev1", credentials: "dev1-secret" });
      expect((await d.closed).code).to.equal(4400);
      expect(d.frames.map((f) => f.type)).to.deep.equal(["error"]);
    });

    it("a path other than /v1/connect is refused before the upgrade (404)", async () => {
      const err = await RawDevice.open(`${srv.wsUrl}/v1/other?next=`).then(() => null, (e: { status?: number }) => e);
      expect(err?.status).to.equal(404);
    });

    it("answers an app-level ping with a pong", async () => {
      const d = await dev("dev2");
      open.push(d);
      const pong = d.next((f) => f.type === "pong");
      d.send({ type: "ping" });
      expect(await pong).to.deep.equal({ type: "pong" });
    });
  });

  describe("deadline and throttling", () => {
    it("a socket that never sends connect is closed at the deadline with 1008", async () => {
      const clock = new FakeClock();
      // 60 s, longer than this test may take: only the injected clock can make it pass.
      const { srv } = await fixture({ THINGRELAY_AUTH_DEADLINE_MS: "60000" }, [], clock);
      try {
        const d = await RawDevice.open(srv.wsUrl);
        const err = d.next((f) => f.type === "error");
        await clock.advance(59_999);
        expect(srv.relay.gateway.unauthenticated, "held 1 ms before the deadline").to.equal(1);
        await clock.advance(1);
        const closed = await d.closed;
        expect(closed.code).to.equal(1008);
        expect(await err).to.include({ type: "error", code: "authentication_timeout" });
      } finally {
        await srv.close();
      }
    });

    it("20 failed authentications from one address in a minute → the next upgrade answers 429, even with good credentials", async () => {
      const { srv } = await fixture({}, ["dev1"]);
      try {
        for (let i = 0; i < 20; i++) {
          const r = await refusal(RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: `wrong-${i}` }));
          expect(r.close.code, `attempt ${i + 1}`).to.equal(4001);
        }
        const err = await RawDevice.open(srv.wsUrl).then(() => null, (e: { status?: number }) => e);
        expect(err?.status).to.equal(429);
        const good = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: "dev1-secret" }).then(() => null, (e: { status?: number }) => e);
        expect(good?.status).to.equal(429);
        expect(srv.relay.services.hub.size).to.equal(0);
      } finally {
        await srv.close();
      }
    });

    it("bad connect frames count as failed attempts (429 after 20 from one address); good ones never do", async () => {
      const { srv } = await fixture({}, ["dev1"]);
      try {
        for (let i = 0; i < 20; i++) {
          const d = await RawDevice.open(srv.wsUrl, { localAddress: "127.0.0.5" });
          d.send({ type: "nonsense" });
          expect((await d.closed).code).to.equal(4400);
        }
        const refused = await RawDevice.open(srv.wsUrl, { localAddress: "127.0.0.5" }).then(() => 101, (e: unknown) => String(e));
        expect(String(refused)).to.match(/429/);
        for (let i = 0; i < 25; i++) {
          const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: "dev1-secret", ws: { localAddress: "127.0.0.6" } });
          d.kill();
        }
        const last = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: "dev1-secret", ws: { localAddress: "127.0.0.6" } });
        expect(last.frames[0]!.type).to.equal("connected");
        last.kill();
      } finally {
        await srv.close();
      }
    });
  });

  describe("limits", () => {
    let srv: TestServer;
    let token: string;
    const open: RawDevice[] = [];
    before(async () => {
      ({ srv, token } = await fixture({
        THINGRELAY_WS_MAX_PAYLOAD: "4096", THINGRELAY_MAX_INFLIGHT: "2",
      }, ["big", "busy", "big2"]));
    });
    afterEach(() => {
      for (const d of open.splice(0)) d.kill();
    });
    after(async () => srv?.close());
    const dev = async (device: string) => {
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device, credentials: `${device}-secret` });
      open.push(d);
      return d;
    };

    it("a message above maxPayload closes the session with 1009", async () => {
      const d = await dev("big");
      d.send({ type: "data", resource: "x", out: "x".repeat(5000) });
      expect((await d.closed).code).to.equal(1009);
      await sessionGone(srv.relay.services.hub, "alice", "big");
    });

    it("a message above maxPayload before authentication also closes with 1009", async () => {
      const d = await RawDevice.open(srv.wsUrl);
      d.send({ type: "connect", user: "alice", device: "big2", credentials: "x".repeat(5000) });
      expect((await d.closed).code).to.equal(1009);
      expect(srv.relay.services.hub.get("alice", "big2")).to.equal(undefined);
    });

    it("beyond the in-flight limit → 429 device_busy with Retry-After; the calls in flight still complete", async () => {
      const d = await dev("busy");
      const url = "/v2/users/alice/devices/busy";
      const first = api(srv.url, "GET", `${url}/a?timeout=30`, { token });
      const second = api(srv.url, "GET", `${url}/b?timeout=30`, { token });
      const [ca, cb] = [await d.call(0), await d.call(1)];
      const third = await api(srv.url, "GET", `${url}/c`, { token });
      expect(third.status).to.equal(429);
      expect(third.body.error.code).to.equal("device_busy");
      expect(third.headers.get("retry-after")).to.equal("1");
      expect(d.calls.map((c) => c.resource)).to.deep.equal(["a", "b"]);
      d.reply(cb.id, "B");
      d.reply(ca.id, "A");
      expect((await first).body).to.deep.equal({ out: "A" });
      expect((await second).body).to.deep.equal({ out: "B" });
      const fourth = api(srv.url, "GET", `${url}/d`, { token });
      d.reply((await d.call(2)).id, "D");
      expect((await fourth).body).to.deep.equal({ out: "D" });
    });
  });

  describe("backpressure: a device that stops reading", () => {
    const CAP = 64 * 1024;
    const INPUT = 200 * 1024;
    /** The close grace of a socket that never answers the closing handshake passes when the test advances it. */
    const clock = new FakeClock();
    let srv: TestServer;
    let token: string;
    before(async () => {
      ({ srv, token } = await fixture({ THINGRELAY_MAX_DEVICE_BUFFER: String(CAP), THINGRELAY_MAX_INFLIGHT: "10000" }, ["slow"], clock));
    });
    after(async () => srv?.close());

    it("calls answer 429 device_busy once the socket buffer passes the cap, memory stays bounded, and the pending calls fail with 502 when it drops", async () => {
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "slow", credentials: "slow-secret" });
      after(() => d.kill());
      d.ws.pause(); // stop reading: the kernel buffers fill, then the server's own queue
      const hub = srv.relay.services.hub;
      const session = () => hub.list("alice").find((s) => s.device === "slow")!;
      /** Checked on each of the hub's `traffic` events (a frame sent to or received from a device). */
      const afterTraffic = (holds: (s: SessionInfo | undefined) => boolean, what: string) =>
        whenState(hub, "traffic", () => holds(hub.list("alice").find((s) => s.device === "slow")), 10_000, what);
      const payload = { in: "x".repeat(INPUT) };
      const pending: Array<Promise<ApiResponse>> = [];
      let busy: ApiResponse | undefined;
      for (let i = 0; i < 400 && !busy; i++) {
        const r = api(srv.url, "POST", "/v2/users/alice/devices/slow/sink?timeout=60", { token, json: payload });
        // Either the call is now in flight (its frame queued), or it was refused at once.
        const n = pending.length;
        const outcome = await Promise.race([r, afterTraffic((s) => (s?.inflight ?? 0) > n, "call in flight").then(() => null)]);
        if (outcome && outcome.status === 429) busy = outcome;
        else if (outcome) throw new Error(`unexpected answer ${outcome.status} ${outcome.text}`);
        else pending.push(r);
      }
      expect(busy, "a call was refused with device_busy").to.not.equal(undefined);
      expect(busy!.body.error.code).to.equal("device_busy");
      expect(busy!.headers.get("retry-after")).to.equal("1");
      const frame = INPUT + 100;
      const peak = session().buffered_bytes;
      expect(peak).to.be.above(CAP).and.at.most(CAP + frame);
      // More calls are refused without growing the queue.
      for (let i = 0; i < 5; i++) {
        const r = await api(srv.url, "POST", "/v2/users/alice/devices/slow/sink", { token, json: payload });
        expect(r.status).to.equal(429);
      }
      expect(session().buffered_bytes).to.be.at.most(peak);
      // The device keeps sending app-level pings while not reading: the answers must not pile up either.
      const rxBefore = session().rx_bytes;
      for (let i = 0; i < 5000; i++) d.send('{"type":"ping"}');
      await afterTraffic((s) => (s?.rx_bytes ?? 0) >= rxBefore + 5000 * 15, "pings to arrive");
      expect(session().buffered_bytes).to.be.at.most(peak);
      // Killing the device fails every pending call at once.
      d.kill();
      const answers = await Promise.all(pending);
      expect(answers.length).to.be.above(0);
      for (const a of answers) {
        expect(a.status).to.equal(502);
        expect(a.body.error.code).to.equal("device_disconnected");
      }
      console.log(`      backpressure: ${pending.length} calls of ${INPUT} B queued before 429; peak server-side bufferedAmount ${peak} B (cap ${CAP})`);
    });

    it("closing the session of a device that does not read drops its socket without waiting for ws's 30 s close timeout", async function () {
      this.timeout(10_000);
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "slow", credentials: "slow-secret" });
      after(() => d.kill());
      d.ws.pause();
      const session = srv.relay.services.hub.get("alice", "slow") as JsonSession;
      const serverClose = once(session.ws, "close", 10_000);
      const r = await api(srv.url, "DELETE", "/v1/users/alice/devices/slow/session", { token });
      expect(r.status).to.equal(200);
      // The close grace runs on the server's clock: the unanswered handshake holds the socket until it passes.
      await clock.advance(CLOSE_GRACE_MS - 1);
      expect(session.ws.readyState, "closing, 1 ms before the grace ends").to.equal(session.ws.CLOSING);
      await clock.advance(1);
      await serverClose;
      expect(session.ws.readyState).to.equal(session.ws.CLOSED);
      expect(srv.relay.services.hub.get("alice", "slow")).to.equal(undefined);
    });
  });

  describe("replies and failures", () => {
    let srv: TestServer;
    let token: string;
    /** Call timeouts pass when the test advances it. */
    const clock = new FakeClock();
    const open: RawDevice[] = [];
    before(async () => {
      ({ srv, token } = await fixture({}, ["rep", "killme", "twice", "stats"], clock));
    });
    afterEach(() => {
      for (const d of open.splice(0)) d.kill();
    });
    after(async () => srv?.close());
    const dev = async (device: string) => {
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device, credentials: `${device}-secret` });
      open.push(d);
      return d;
    };
    const call = (device: string, resource: string, query = "?timeout=30") => api(srv.url, "GET", `/v2/users/alice/devices/${device}/${resource}${query}`, { token });

    it("stray replies (unknown ids, ids not yet issued, malformed ids) are ignored and never answer a later call", async () => {
      const d = await dev("rep");
      d.send({ type: "result", id: 999_999, out: "stray" });
      d.send({ type: "result", id: "1", out: "stray" });
      d.send({ type: "result", out: "stray" });
      d.send({ type: "error", id: 424242, status: 500, message: "stray" });
      const a = call("rep", "a");
      const ca = await d.call(0);
      d.send({ type: "result", id: ca.id + 1, out: "stray-for-next" }); // the id the next call will get
      const b = call("rep", "b");
      const cb = await d.call(1);
      expect(cb.id).to.equal(ca.id + 1);
      d.reply(cb.id, "B");
      d.reply(ca.id, "A");
      expect((await a).body).to.deep.equal({ out: "A" });
      expect((await b).body).to.deep.equal({ out: "B" });
    });

    it("a duplicate reply is ignored; each caller gets its own answer", async () => {
      const d = await dev("rep");
      const a = call("rep", "a");
      const ca = await d.call(0);
      d.reply(ca.id, "A");
      expect((await a).body).to.deep.equal({ out: "A" });
      const b = call("rep", "b");
      const cb = await d.call(1);
      d.reply(ca.id, "A-again");
      d.fail(ca.id, 500, "late error for a");
      d.reply(cb.id, "B");
      const rb = await b;
      expect(rb.status).to.equal(200);
      expect(rb.body).to.deep.equal({ out: "B" });
    });

    it("a late reply (after 504 device_timeout) never reaches the next caller", async () => {
      const d = await dev("rep");
      // 45 s, longer than this test may take: only the injected clock can make it pass.
      const timing = call("rep", "slow", "?timeout=45");
      const late = await d.call(0);
      await clock.advance(45_000 + CALL_TIMEOUT_SLACK_MS);
      const timedOut = await timing;
      expect(timedOut.status).to.equal(504);
      expect(timedOut.body.error.code).to.equal("device_timeout");
      const next = call("rep", "next");
      const cn = await d.call(1);
      d.reply(late.id, "late");
      d.reply(cn.id, "mine");
      expect((await next).body).to.deep.equal({ out: "mine" });
      expect(srv.relay.services.hub.get("alice", "rep")!.inflight).to.equal(0);
    });

    it("call ids are not reused across sessions: an old session's reply replayed on the new session answers nothing", async () => {
      const d1 = await dev("rep");
      const held = call("rep", "old");
      const c1 = await d1.call(0);
      d1.kill();
      expect((await held).status).to.equal(502);
      const d2 = await dev("rep");
      const fresh = call("rep", "new");
      const c2 = await d2.call(0);
      expect(c2.id).to.not.equal(c1.id);
      d2.reply(c1.id, "meant for the old call");
      d2.reply(c2.id, "new");
      const r = await fresh;
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: "new" });
    });

    it("device killed mid-call → every waiting caller gets 502 device_disconnected (not the 30 s timeout)", async () => {
      const d = await dev("killme");
      const calls = ["a", "b", "c"].map((r) => call("killme", r));
      await d.call(2);
      d.kill();
      for (const r of await Promise.all(calls)) {
        expect(r.status).to.equal(502);
        expect(r.body.error.code).to.equal("device_disconnected");
      }
      const after = await call("killme", "a");
      expect(after.status).to.equal(404);
      expect(after.body.error.code).to.equal("device_offline");
    });

    it("a second session replaces the first (4000); the old socket's late close does not unregister the new one", async () => {
      const first = await dev("twice");
      const oldSession = srv.relay.services.hub.get("alice", "twice") as JsonSession;
      const oldServerClose = once(oldSession.ws, "close");
      const pendingOnOld = call("twice", "held");
      await first.call(0);
      const second = await dev("twice");
      second.onCall = (c) => `from second: ${c.resource}`;
      expect((await first.closed).code).to.equal(4000);
      await oldServerClose; // the old socket's close has now been handled by the server
      const held = await pendingOnOld;
      expect(held.status).to.equal(502);
      expect(held.body.error.code).to.equal("device_disconnected");
      const r = await call("twice", "temp");
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: "from second: temp" });
      const sessions = (await api(srv.url, "GET", "/v1/users/alice/sessions", { token })).body;
      expect(sessions.filter((s: { device: string }) => s.device === "twice")).to.have.length(1);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/twice", { token })).body.connection.active).to.equal(true);
      expect(first.calls.map((c) => c.resource)).to.deep.equal(["held"]);
    });

    it("counts rx/tx bytes, connection time and address per device (stats JSON)", async () => {
      const before = Date.now();
      const d = await dev("stats");
      d.describe({ temp: "output" });
      d.onCall = () => 21.5;
      d.send({ type: "ping" });
      await d.next((f) => f.type === "pong");
      for (let i = 0; i < 3; i++) expect((await call("stats", "temp", "")).body).to.deep.equal({ out: 21.5 });
      const r = await api(srv.url, "GET", "/v1/users/alice/devices/stats/stats", { token });
      expect(r.status).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(["connected", "connected_ts", "ip_address", "rx_bytes", "tx_bytes"]);
      expect(r.body.connected).to.equal(true);
      expect(r.body.connected_ts).to.be.within(before, Date.now());
      expect(r.body.ip_address).to.match(/^(::ffff:)?127\.0\.0\.1$/);
      // Exactly the message bytes each side sent: the device's rx is the server's tx and vice versa.
      expect(r.body.rx_bytes).to.equal(d.txBytes);
      expect(r.body.tx_bytes).to.equal(d.rxBytes);
      d.kill();
      await sessionGone(srv.relay.services.hub, "alice", "stats");
      const off = await api(srv.url, "GET", "/v1/users/alice/devices/stats/stats", { token });
      expect(off.body).to.deep.include({ connected: false, rx_bytes: d.txBytes, tx_bytes: d.rxBytes, connected_ts: r.body.connected_ts });
    });
  });

  describe("liveness", () => {
    let srv: TestServer;
    let token: string;
    /** The keepalive sweep (every THINGRELAY_PING_INTERVAL_MS) runs when the test advances it. */
    const PING_MS = 25_000; // two intervals are longer than a test may take (30 s): only the injected clock passes
    const clock = new FakeClock();
    const open: RawDevice[] = [];
    before(async () => {
      ({ srv, token } = await fixture({ THINGRELAY_PING_INTERVAL_MS: String(PING_MS) }, ["mute", "alive"], clock));
    });
    afterEach(() => {
      for (const d of open.splice(0)) d.kill();
    });
    after(async () => srv?.close());

    it("a device that stops answering pings is dropped within two ping intervals and its pending calls fail with 502", async () => {
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "mute", credentials: "mute-secret", autoPong: false });
      open.push(d);
      const r = api(srv.url, "GET", "/v2/users/alice/devices/mute/x?timeout=60", { token });
      await d.call(0);
      const pinged = once(d.ws, "ping");
      await clock.advance(PING_MS);
      await pinged;
      await clock.advance(PING_MS - 1);
      expect(d.ws.readyState, "held until the second sweep").to.equal(d.ws.OPEN);
      await clock.advance(1);
      const res = await r;
      expect(res.status).to.equal(502);
      expect(res.body.error.code).to.equal("device_disconnected");
      const closed = await d.closed;
      expect(closed.code).to.equal(1006); // terminated, no closing handshake
      // Dropped at the sweep after the first unanswered ping: never more than two pings sent.
      expect(d.pings).to.be.within(1, 2);
      expect(srv.relay.services.hub.get("alice", "mute")).to.equal(undefined);
    });

    it("a device that answers pings stays connected across many intervals", async () => {
      const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "alive", credentials: "alive-secret" });
      open.push(d);
      d.onCall = () => "here";
      const session = srv.relay.services.hub.get("alice", "alive") as JsonSession;
      for (let i = 0; i < 4; i++) {
        // The pong must reach the server before the next sweep judges the device.
        const pong = once(session.ws, "pong");
        await clock.advance(PING_MS);
        await pong;
      }
      expect(d.pings).to.equal(4);
      expect(d.ws.readyState).to.equal(d.ws.OPEN);
      const r = await api(srv.url, "GET", "/v2/users/alice/devices/alive/x", { token });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: "here" });
    });
  });
});
