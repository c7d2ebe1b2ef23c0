import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { once } from "../helpers/wait.js";
import { ThingerDevice, type ThingerProtocol } from "../helpers/thinger-device.js";
import { THINGER_KEEPALIVE_TIMEOUT_MS } from "../../server/thinger/listeners.js";
import type { ThingerSession } from "../../server/thinger/session-base.js";
import type { HubEventMap } from "../../server/gateway/hub.js";

/** Production's window (docs/thinger-devices.md: a device silent for 90 s is dropped; the clients tick every 60 s). */
const WINDOW_MS = THINGER_KEEPALIVE_TIMEOUT_MS;
const CLIENT_TICK_MS = 60_000;

/**
 * The Thinger sessions' silence timer runs on the app's injected timers (issue 13.6): at production's 90 s
 * window, a silent device is dropped exactly when its window ends and one sending keep-alives is kept, without
 * the test waiting for either.
 */
describe("Thinger sessions: the silence timer on a fake clock", function () {
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

  /** Connects a device and resolves once the hub holds it (its describe answered). */
  async function online(protocol: ThingerProtocol): Promise<{ device: ThingerDevice; session: ThingerSession }> {
    const port = protocol === "legacy" ? srv.thingerPorts.thinger! : srv.thingerPorts.iotmp!;
    const device = new ThingerDevice({
      protocol, port, user: "alice", device: "dev1", credentials: "s3cret",
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
  }
});
