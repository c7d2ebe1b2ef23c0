import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { openNedbStore } from "../../server/store/nedb.js";
import type { Store } from "../../server/store/types.js";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { natsAvailable, startNats, type NatsServer } from "../helpers/nats.js";
import { closeAllSse, sse } from "../helpers/sse.js";
import { once } from "../helpers/wait.js";
import { TestDevice } from "./device.js";

/** A Thinger device on node A is called, described and streamed through node B (two nodes, one store, real NATS). */
describe("cluster: a Thinger device on node A, callers on node B", function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let store: Store;
  let dir: string;
  let A: TestServer, B: TestServer;
  let token: string;
  const conns: NatsConnection[] = [];
  const devices: TestDevice[] = [];

  async function node(): Promise<TestServer> {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    return startServer({ store, dataDir: dir, cluster: { nc, subjectPrefix: "trthinger" }, thinger: {} });
  }

  before(async function () {
    if (!natsAvailable()) this.skip();
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "thingrelay-thinger-cluster-"));
    store = await openNedbStore(join(dir, "db"));
    A = await node();
    B = await node();
    const admin = await login(A.url, ADMIN.user, ADMIN.password);
    token = await newAccount(A.url, admin.access_token, "alice");
    await newDevice(A.url, token, "alice", "dev1", "s3cret");
  });
  after(async () => {
    closeAllSse();
    for (const d of devices) d.destroy();
    for (const n of [A, B]) await n?.close();
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await store?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  for (const protocol of ["legacy", "iotmp2"] as const) {
    it(`${protocol}: calls, /api, errors, stats and an SSE stream through B reach the device on A`, async () => {
      let led = false;
      const d = new TestDevice({
        protocol, transport: "tcp", port: protocol === "legacy" ? A.thingerPorts.thinger! : A.thingerPorts.iotmp!,
        user: "alice", device: "dev1", credentials: "s3cret",
        resources: {
          temp: { kind: "output", out: () => 21.5 },
          led: { kind: "input", in: (v) => void (led = v === true), state: () => led },
        },
      });
      devices.push(d);
      const known = once(B.relay.services.hub, "online");
      await d.connect();
      await known;
      const v2 = (r: string) => `/v2/users/alice/devices/dev1/${r}`;
      expect((await api(B.url, "GET", v2("temp"), { token })).body).to.deep.equal({ out: 21.5 });
      expect((await api(B.url, "POST", v2("led"), { token, json: { in: true } })).status).to.equal(200);
      expect(led).to.equal(true);
      expect((await api(B.url, "GET", v2("led"), { token })).status).to.equal(405);
      expect((await api(B.url, "GET", v2("led/api"), { token })).body).to.deep.equal({ kind: "input", in: true });
      expect((await api(B.url, "GET", v2("api"), { token })).body).to.deep.equal({ temp: { kind: "output" }, led: { kind: "input" } });
      const nf = await api(B.url, "GET", v2("nope"), { token });
      expect(nf.status).to.equal(404);
      expect(nf.body.error.code).to.equal("resource_not_found");
      const stats = await api(B.url, "GET", "/v1/users/alice/devices/dev1/stats", { token });
      expect(stats.body.connected).to.equal(true);
      const c = await sse(`${B.url}${v2("temp")}?interval=0.2&authorization=${token}`);
      expect(JSON.parse((await c.next((e) => e.event === undefined)).data)).to.include({ out: 21.5 });
      c.close();
      const gone = once(B.relay.services.hub, "offline");
      d.destroy();
      await gone;
    });
  }
});
