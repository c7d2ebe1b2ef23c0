import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { closeAllSse, sse } from "../helpers/sse.js";
import { noSessions, once } from "../helpers/wait.js";
import { TestDevice, type Protocol, type ThingerResource } from "./device.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { DESCRIBE_RETRY_MS } from "../../server/thinger/session-base.js";

/**
 * QA F1: a Thinger device whose first describe fails (lost, refused, too slow) must not lose its kind checks.
 * The session asks again on demand (before a call, a stream, a `…/{resource}/api`) and in the background, and
 * a resource stream never runs a run or input resource, even when it was asked for before the kinds were known.
 */
for (const protocol of ["legacy", "iotmp2"] as Protocol[]) {
  describe(`Thinger device (${protocol}) whose first describe failed`, function () {
    this.timeout(20_000);
    let srv: TestServer;
    let token: string;
    /** The server's timers: the background describe retry runs when the test advances it. */
    let clock: FakeClock;
    const devices: TestDevice[] = [];
    let runs = 0;
    let ledSets = 0;
    const v2 = (path: string) => `/v2/users/alice/devices/dev1/${path}`;
    const resources: Record<string, ThingerResource> = {
      temp: { kind: "output", out: () => 20 },
      led: { kind: "input", in: () => void ledSets++, state: () => false },
      reset: { kind: "run", run: () => void runs++ },
    };

    /** Connects a device refusing its first `refuse` tree describes; resolves once the session is online. */
    async function online(refuse: number): Promise<TestDevice> {
      const p = srv.thingerPorts;
      const d = new TestDevice({
        protocol, transport: "tcp", port: protocol === "legacy" ? p.thinger! : p.iotmp!, user: "alice", device: "dev1", credentials: "s3cret",
        resources, refuseDescribes: refuse,
      });
      devices.push(d);
      const up = once(srv.relay.services.hub, "online");
      await d.connect();
      await up;
      return d;
    }

    before(async () => {
      clock = new FakeClock();
      srv = await startServer({ thinger: {}, timers: clock });
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      token = await newAccount(srv.url, admin.access_token, "alice");
      await newDevice(srv.url, token, "alice", "dev1", "s3cret");
    });
    beforeEach(() => {
      runs = 0;
      ledSets = 0;
    });
    afterEach(async () => {
      closeAllSse();
      for (const d of devices.splice(0)) d.destroy();
      await noSessions(srv.relay.services.hub);
    });
    after(() => srv?.close());

    it("GET on an input still answers 405 (described on demand), and the handler never runs", async () => {
      await online(1);
      expect(srv.relay.services.hub.get("alice", "dev1")!.resources).to.equal(null);
      const r = await api(srv.url, "GET", v2("led"), { token });
      expect(r.status).to.equal(405);
      expect(r.body.error.code).to.equal("method_not_allowed");
      expect(r.headers.get("allow")).to.equal("POST");
      expect(ledSets).to.equal(0);
      const post = await api(srv.url, "POST", v2("temp"), { token, json: { in: 1 } });
      expect(post.status).to.equal(405);
      expect(post.headers.get("allow")).to.equal("GET");
    });

    it("…/{resource}/api answers the kind (not 404 'has not described its resources')", async () => {
      await online(1);
      const r = await api(srv.url, "GET", v2("led/api"), { token });
      expect(r).to.deep.include({ status: 200, body: { kind: "input", in: false } });
      expect((await api(srv.url, "GET", v2("reset/api"), { token })).body).to.deep.equal({ kind: "run" });
    });

    it("an SSE stream of a run or input resource is refused (400), and the run resource never runs", async () => {
      await online(1);
      const run = await sse(`${srv.url}${v2("reset")}?interval=1000`, { Authorization: `Bearer ${token}` });
      expect(run.status).to.equal(400);
      expect((run.body as { error: { code: string } }).error.code).to.equal("invalid_request");
      const input = await sse(`${srv.url}${v2("led")}?interval=1000`, { Authorization: `Bearer ${token}` });
      expect(input.status).to.equal(400);
      expect(runs).to.equal(0);
    });

    it("a stream asked for while the kinds are still unknown starts only once described, and never for a run resource", async () => {
      // Refuses the first describe (at connect) and the on-demand one at the stream's start: the stream is
      // accepted, but the session holds it until a describe (it asks again) learns "reset" is a run resource.
      const d = await online(2);
      const described = once(srv.relay.services.hub, "describe", 10_000);
      const run = await sse(`${srv.url}${v2("reset")}?interval=1000`, { Authorization: `Bearer ${token}` });
      expect(run.status).to.equal(200);
      await described;
      // A round trip after the describe: anything sent before it has reached the device.
      expect((await api(srv.url, "GET", v2("temp"), { token })).body).to.deep.equal({ out: 20 });
      expect(runs).to.equal(0);
      expect(d.streams.size).to.equal(0);
      // An output asked for now streams as usual.
      const started = d.streamsOpen(1, "the output stream to start");
      const temp = await sse(`${srv.url}${v2("temp")}?interval=1000`, { Authorization: `Bearer ${token}` });
      expect(temp.status).to.equal(200);
      await started;
    });

    it("describes again in the background after a failed first describe", async () => {
      await online(1);
      const described = once(srv.relay.services.hub, "describe");
      await clock.advance(DESCRIBE_RETRY_MS.first - 1);
      expect(srv.relay.services.hub.get("alice", "dev1")!.resources, "not asked again before the retry delay").to.equal(null);
      await clock.advance(1);
      await described;
      expect([...srv.relay.services.hub.get("alice", "dev1")!.resources!.keys()].sort()).to.deep.equal(["led", "reset", "temp"]);
    });
  });
}
