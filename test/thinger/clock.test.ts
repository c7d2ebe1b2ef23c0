import { expect } from "chai";
import { connect } from "node:net";
import { WebSocket } from "ws";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { once } from "../helpers/wait.js";
import { ThingerDevice, type ThingerProtocol } from "../helpers/thinger-device.js";
import { THINGER_KEEPALIVE_TIMEOUT_MS } from "../../server/thinger/listeners.js";
import type { ThingerSession } from "../../server/thinger/session-base.js";
import type { ThingerDeviceFrame } from "../helpers/thinger-device.js";
import type { HubEventMap } from "../../server/gateway/hub.js";
import { DESCRIBE_RETRY_MS } from "../../server/thinger/session-base.js";
import { IOTMP_TYPE, LEGACY_FLAG } from "../../server/thinger/index.js";

/** Production's window (docs/thinger-devices.md: a device silent for 90 s is dropped; the clients tick every 60 s). */
const WINDOW_MS = THINGER_KEEPALIVE_TIMEOUT_MS;
const CLIENT_TICK_MS = 60_000;

/** server/config.ts default (THINGRELAY_AUTH_DEADLINE_MS). */
const AUTH_DEADLINE_MS = 5_000;

/**
 * The Thinger sessions' silence timer and describe retries run on the app's injected timers (issue 13.6): at
 * production's 90 s window, a silent device is dropped exactly when its window ends and one sending keep-alives
 * is kept, and the describe retries keep their backoff, without the test waiting for any of it.
 */
describe("Thinger sessions: the silence timer and describe retries on a fake clock", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  let clock: FakeClock;
  const devices: ThingerDevice[] = [];

  before(async () => {
    expect(WINDOW_MS).to.equal(90_000);
    clock = new FakeClock();
    srv = await startServer({ timers: clock, thinger: {} });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "dev1", "s3cret");
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
  });
  after(() => srv?.close());

  /** Connects a device and resolves once the hub holds it (its first describe answered or refused). */
  async function online(protocol: ThingerProtocol, refuseDescribes = 0): Promise<{ device: ThingerDevice; session: ThingerSession }> {
    const port = protocol === "legacy" ? srv.thingerPorts.thinger! : srv.thingerPorts.iotmp!;
    const device = new ThingerDevice({
      protocol, port, user: "alice", device: "dev1", credentials: "s3cret", refuseDescribes,
      resources: { temp: { kind: "output", out: () => 21 } },
    });
    devices.push(device);
    const on = once<HubEventMap["online"][0]>(srv.relay.services.hub, "online");
    expect(await device.connect()).to.equal("ok");
    expect(await on).to.include({ user: "alice", device: "dev1" });
    const session = srv.relay.services.hub.get("alice", "dev1") as ThingerSession;
    expect(session.isClosed).to.equal(false);
    return { device, session };
  }

  /** Advances the clock to 1 ms before `dropAt` (still held), then to it: dropped, offline, socket closed. */
  async function droppedAt(device: ThingerDevice, session: ThingerSession, start: number, dropAt: number): Promise<void> {
    await clock.advance(start + dropAt - 1 - clock.now());
    expect(session.isClosed, "held until its window ends").to.equal(false);
    expect(device.connected).to.equal(true);
    const off = once<HubEventMap["offline"][0]>(srv.relay.services.hub, "offline");
    await clock.advance(1);
    expect(session.isClosed, "dropped when its window ends").to.equal(true);
    expect(await off).to.include({ user: "alice", device: "dev1" });
    await device.closed();
    expect(device.connected).to.equal(false);
    expect(srv.relay.services.hub.get("alice", "dev1")).to.equal(undefined);
    const r = await api(srv.url, "GET", "/v2/users/alice/devices/dev1/temp", { token });
    expect(r.status).to.equal(404);
    expect((r.body as { error: { code: string } }).error.code).to.equal("device_offline");
  }

  it(`a connection that does not authenticate is closed ${AUTH_DEADLINE_MS / 1000} s after it opened, not before (TCP and /iotmp)`, async () => {
    const admission = () => srv.relay.gateway.unauthenticated;
    expect(admission()).to.equal(0);
    const sock = connect(srv.thingerPorts.iotmp!, "127.0.0.1");
    sock.on("error", () => {});
    await once(sock, "connect");
    const start = clock.now();
    expect(admission(), "accepted, waiting for its credentials").to.equal(1);
    // The WebSocket's deadline is armed before the server answers the upgrade: once open, it runs.
    const ws = new WebSocket(`${srv.wsUrl}/iotmp`, "iotmp");
    ws.on("error", () => {});
    await once(ws, "open");
    expect(ws.protocol).to.equal("iotmp");
    expect(admission()).to.equal(2);
    await clock.advance(start + AUTH_DEADLINE_MS - 1 - clock.now());
    expect(admission(), "both still held 1 ms before the deadline").to.equal(2);
    const closed = Promise.all([once(sock, "close"), once(ws, "close")]);
    await clock.advance(1);
    expect(admission(), "both dropped at the deadline").to.equal(0);
    await closed;
  });

  for (const protocol of ["legacy", "iotmp1", "iotmp2"] as const) {
    it(`${protocol}: a device silent since its describe answer is dropped exactly ${WINDOW_MS / 1000} s later`, async () => {
      const start = clock.now();
      const { device, session } = await online(protocol);
      await droppedAt(device, session, start, WINDOW_MS);
    });

    it(`${protocol}: a device sending a keep-alive every ${CLIENT_TICK_MS / 1000} s is kept; its window restarts at its last byte`, async () => {
      const start = clock.now();
      const { device, session } = await online(protocol);
      // Five client ticks (300 s, over three windows): each keep-alive is echoed, so it reached the server.
      for (let tick = 1; tick <= 5; tick++) {
        await clock.advance(CLIENT_TICK_MS);
        const echo = once(device, "keepalive");
        device.keepAlive();
        await echo;
        expect(session.isClosed, `after tick ${tick}`).to.equal(false);
      }
      expect(await api(srv.url, "GET", "/v2/users/alice/devices/dev1/temp", { token })).to.deep.include({ status: 200, body: { out: 21 } });
      // The call's answer was its last byte; the clock has not moved since the last tick.
      await droppedAt(device, session, start, 5 * CLIENT_TICK_MS + WINDOW_MS);
    });

    it(`${protocol}: after a refused first describe, the background retries run at ${DESCRIBE_RETRY_MS.first / 1000} s, then doubling, until one succeeds`, async () => {
      const { device, session } = await online(protocol, 3);
      expect(session.resources, "first describe refused").to.equal(null);
      let at = clock.now();
      // Each refused retry doubles the delay; the third retry is answered. The server writes synchronously,
      // so its byte counter tells whether it sent anything at all.
      for (const [delay, answered] of [[2_000, false], [4_000, false], [8_000, true]] as const) {
        const tx = session.txBytes;
        await clock.advance(at + delay - 1 - clock.now());
        expect(session.txBytes, `nothing sent before ${delay} ms`).to.equal(tx);
        const sent = device.nextFrame(isTreeDescribe);
        const described = answered ? once(srv.relay.services.hub, "describe") : undefined;
        await clock.advance(1);
        expect(session.txBytes, `a describe sent at ${delay} ms`).to.be.greaterThan(tx);
        await sent;
        at = clock.now();
        if (described) await described;
        // A round trip: the server has read the device's answer (and armed its next retry) once the echo is back.
        const echo = once(device, "keepalive");
        device.keepAlive();
        await echo;
      }
      expect([...session.resources!.keys()]).to.deep.equal(["temp"]);
      // Described: no retry is left (the silence timer is the only one of the session's).
      const tx = session.txBytes;
      await clock.advance(DESCRIBE_RETRY_MS.max);
      expect(session.txBytes).to.equal(tx);
      expect(session.isClosed).to.equal(false);
    });
  }
});

/** A describe of the whole resource tree (legacy: a run of `api`; IOTMP: DESCRIBE without a resource). */
function isTreeDescribe(f: ThingerDeviceFrame): boolean {
  if (f.legacy) return (f.legacy.flag ?? LEGACY_FLAG.RUN) === LEGACY_FLAG.RUN && JSON.stringify(f.legacy.resource) === '["api"]';
  return f.iotmp?.type === IOTMP_TYPE.DESCRIBE && f.iotmp.resource === undefined;
}
