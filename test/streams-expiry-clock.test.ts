import { expect } from "chai";
import type { EventSourceMessage } from "eventsource-parser";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { streamsClosedTo } from "./helpers/streams.js";
import { runBefore } from "./helpers/interleave.js";

const json = (e: EventSourceMessage) => JSON.parse(e.data) as unknown;
/** Long enough to cross several SSE heartbeats (15 s), each of which re-checks the token. */
const LIFETIME_MS = 90_000;

/**
 * A token's expiry on one injected clock (issue 13.6): the token is dated by it when created, checked by the
 * Authenticator on it, and an open stream's expiry timer runs on it, so a test ends a stream as `token_expired`
 * by advancing the clock, not by waiting for real time.
 */
describe("stream token expiry on a fake clock", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  let clock: FakeClock;

  before(async () => {
    clock = new FakeClock();
    srv = await startServer({ timers: clock });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "sensor");
  });
  afterEach(() => closeAllSse());
  after(() => srv?.close());

  const kinds: Array<{ kind: string; create(expiresAt: number): Promise<string>; path: string; refusal: string }> = [
    {
      kind: "device token",
      path: "/v1/users/alice/devices/sensor/stats",
      refusal: "token expired",
      async create(expiresAt) {
        const r = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "wall", token_expiration: expiresAt } });
        expect(r.status).to.equal(200);
        return (r.body as { token: string }).token;
      },
    },
    {
      kind: "user token",
      path: "/v1/users/alice/events",
      refusal: "token expired",
      async create(expiresAt) {
        const r = await api(srv.url, "POST", "/v1/users/alice/tokens", {
          token, json: { name: "screen", expiration: expiresAt, allow: [{ action: "ReadEvents", target: "*" }] },
        });
        expect(r.status).to.equal(200);
        return (r.body as { token: string }).token;
      },
    },
  ];

  for (const k of kinds) {
    it(`a ${k.kind}'s stream ends with token_expired when the clock reaches its expiry, not before; the token is then refused`, async () => {
      // Whole seconds: the JWT `exp` is in seconds (rounded up), so this is the exact instant it lapses.
      const expiresAt = Math.ceil(clock.now() / 1000) * 1000 + LIFETIME_MS;
      const t = await k.create(expiresAt);
      const c = await sse(`${srv.url}${k.path}?authorization=${t}`);
      expect(c.status).to.equal(200);
      expect(srv.relay.services.streams.openCount).to.equal(1);
      // To 1 ms before the expiry (six heartbeats on the way, each re-checking the token on the same clock).
      await clock.advance(expiresAt - 1 - clock.now());
      expect(srv.relay.services.streams.openCount, "still open 1 ms before expiry").to.equal(1);
      for (let i = 0; i < Math.floor((LIFETIME_MS - 1) / 15_000); i++) await c.comment((x) => x.trim() === "heartbeat");
      const closed = streamsClosedTo(srv.relay.services.streams, 0);
      await clock.advance(1);
      expect(json(await c.next((e) => e.event === "end"))).to.deep.equal({ reason: "token_expired" });
      await c.ended;
      await closed;
      // The Authenticator judges the token on the same clock: expired now, and it was valid a moment ago.
      const again = await api(srv.url, "GET", k.path, { token: t });
      expect(again.status).to.equal(401);
      expect((again.body as { error: { code: string; message: string } }).error).to.deep.include({ code: "unauthorized", message: k.refusal });
    });
  }

  it("a token expiring in the past on the injected clock is refused when created (400), one in its future accepted", async () => {
    const past = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "x", token_expiration: clock.now() } });
    expect(past.status).to.equal(400);
    expect((past.body as { error: { code: string } }).error.code).to.equal("invalid_request");
    const soon = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "x", token_expiration: clock.now() + 1_000 } });
    expect(soon.status).to.equal(200);
  });
});

/**
 * A revocation that lands while a stream is being opened (after its token was checked, before the stream is
 * registered) is told to the streams open at that moment, not to this one. On a fake clock no heartbeat re-checks
 * the token, so only the stream's own re-check at opening can end it.
 */
describe("a stream opened across a revocation of its token", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;

  before(async () => {
    srv = await startServer({ timers: new FakeClock() });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "sensor");
  });
  afterEach(() => closeAllSse());
  after(() => srv?.close());

  it("ends with token_revoked as soon as it opens, not at the next heartbeat", async () => {
    const created = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "wall" } });
    expect(created.status).to.equal(200);
    const { id, token: dt } = created.body as { id: string; token: string };
    // The resource stream of an offline device asks the store whether the device exists: the token is deleted then.
    const revoke = runBefore(srv.relay.services.repos.devices, "count",
      () => api(srv.url, "DELETE", `/v1/users/alice/devices/sensor/tokens/${id}`, { token }), (q: { _id?: string }) => q._id === "alice/sensor");
    let c;
    try {
      c = await sse(`${srv.url}/v2/users/alice/devices/sensor/temp?authorization=${dt}`);
    } finally {
      revoke.restore();
    }
    expect(revoke.ran().status).to.equal(200);
    expect(c.status).to.equal(200);
    expect(json(await c.next((e) => e.event === "end"))).to.deep.equal({ reason: "token_revoked" });
    await c.ended;
  });
});
