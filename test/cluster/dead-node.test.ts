import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { Device } from "../../device-sdk/index.js";
import { openNedbStore } from "../../server/store/nedb.js";
import type { Store } from "../../server/store/types.js";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { natsAvailable, startNats, type NatsServer } from "../helpers/nats.js";
import { once } from "../helpers/wait.js";
import { closeAllSse, sse } from "../helpers/sse.js";

/**
 * A node that dies without a word (DESIGN §7, docs/cluster.md "Node failure"): its NATS connection is gone
 * without any "offline" announcement. The others must stop listing its devices as connected once its
 * heartbeats stop for nodeTimeoutMs (injected small here), and calls must answer device_offline at once.
 * test/cluster/processes.test.ts does the same with a real SIGKILL of a separate process.
 */
describe("cluster: a node that dies silently is noticed by the others", function () {
  this.timeout(20_000);
  const NODE_TIMEOUT_MS = 300;
  let nats: NatsServer;
  let store: Store;
  let dir: string;
  let A: TestServer, B: TestServer;
  let ncA: NatsConnection, ncB: NatsConnection;
  let token: string;
  const devices: Device[] = [];

  before(async function () {
    if (!natsAvailable()) this.skip();
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "thingrelay-dead-node-"));
    store = await openNedbStore(join(dir, "db"));
    ncA = await connect({ servers: nats.url });
    ncB = await connect({ servers: nats.url });
    A = await startServer({ store, dataDir: dir, cluster: { nc: ncA, subjectPrefix: "trdead", nodeTimeoutMs: NODE_TIMEOUT_MS } });
    B = await startServer({ store, dataDir: dir, cluster: { nc: ncB, subjectPrefix: "trdead", nodeTimeoutMs: NODE_TIMEOUT_MS } });
    const admin = await login(A.url, ADMIN.user, ADMIN.password);
    token = await newAccount(A.url, admin.access_token, "alice");
    await newDevice(A.url, token, "alice", "sensor", "s3cret");
  });

  after(async () => {
    closeAllSse();
    for (const d of devices) await d.close();
    for (const n of [A, B]) await n?.close();
    for (const nc of [ncA, ncB]) if (nc && !nc.isClosed()) await nc.close();
    await store?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("B shows A's device offline after A's heartbeats stop, emits offline on its streams, and calls answer device_offline", async () => {
    const d = new Device({ server: A.wsUrl, user: "alice", device: "sensor", credentials: "s3cret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
    devices.push(d);
    d.output("temperature", () => 21.5);
    const known = once(B.relay.services.hub, "online");
    await d.connect();
    await known;
    const listed = await api(B.url, "GET", "/v1/users/alice/devices?id=sensor", { token });
    expect(listed.body[0].connection.active).to.equal(true);
    const events = await sse(`${B.url}/v1/users/alice/events?authorization=${token}`);
    expect(events.status).to.equal(200);

    // What SIGKILL does to A as seen from NATS: its connection vanishes, no offline and no goodbye is sent.
    // (A's HTTP server and its device socket stay up: only B's view of A is under test.)
    const gone = once<{ device: string }>(B.relay.services.hub, "offline", 4 * NODE_TIMEOUT_MS + 2_000);
    await ncA.close();
    expect((await gone).device).to.equal("sensor");

    const off = await events.next();
    expect(off.event).to.equal(undefined); // values are unnamed events (DESIGN.md, docs/streams.md)
    expect(JSON.parse(off.data)).to.include({ type: "offline", device: "sensor" });
    const after = await api(B.url, "GET", "/v1/users/alice/devices?id=sensor", { token });
    expect(after.body[0].connection.active).to.equal(false);
    const stats = await api(B.url, "GET", "/v1/users/alice/devices/sensor/stats", { token });
    expect(stats.status).to.equal(200);
    expect(stats.body.connected).to.equal(false);
    const call = await api(B.url, "GET", "/v2/users/alice/devices/sensor/temperature?timeout=20", { token });
    expect(call.status).to.equal(404);
    expect(call.body.error.code).to.equal("device_offline");
  });
});
