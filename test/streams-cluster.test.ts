import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { Device } from "../device-sdk/index.js";
import { openNedbStore } from "../server/store/nedb.js";
import type { Store } from "../server/store/types.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { natsAvailable, startNats, type NatsServer } from "./helpers/nats.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { sessionGone, streamsOpen } from "./helpers/wait.js";
import { RawDevice } from "./helpers/rawdevice.js";

/**
 * Streams across cluster nodes (DESIGN §7: "events and stats streams work whichever nodes the device and the
 * subscriber are on"): two nodes in this process over a real nats-server, the device on A, the client on B.
 */
describe("streams across cluster nodes (NATS)", function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let store: Store;
  let dir: string;
  let A: TestServer, B: TestServer;
  let token: string;
  const conns: NatsConnection[] = [];
  const devices: Device[] = [];
  const raws: RawDevice[] = [];
  const json = (e: { data: string }) => JSON.parse(e.data);

  async function node(): Promise<TestServer> {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    return startServer({ store, dataDir: dir, cluster: { nc, subjectPrefix: "trstreams" } });
  }

  before(async function () {
    if (!natsAvailable()) this.skip();
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "thingrelay-streams-cluster-"));
    store = await openNedbStore(join(dir, "db"));
    A = await node();
    B = await node();
    const admin = await login(A.url, ADMIN.user, ADMIN.password);
    token = await newAccount(A.url, admin.access_token, "alice");
    await newDevice(A.url, token, "alice", "sensor", "s3cret");
  });
  afterEach(async () => {
    closeAllSse();
    for (const d of devices.splice(0)) await d.close();
    for (const d of raws.splice(0)) await d.close();
  });
  after(async () => {
    for (const n of [A, B]) await n?.close();
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await store?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function sensor(): { device: Device } {
    let n = 0;
    const device = new Device({ server: A.wsUrl, user: "alice", device: "sensor", credentials: "s3cret", reconnectInitialMs: 50 });
    device.output("counter", () => ++n);
    devices.push(device);
    return { device };
  }

  it("an account event stream on B reports a device connecting to A", async () => {
    const c = await sse(`${B.url}/v1/users/alice/events?authorization=${token}`);
    expect(c.status).to.equal(200);
    await sensor().device.connect();
    const on = await c.next();
    expect(on.event).to.equal(undefined);
    expect(json(on).type).to.equal("online");
    expect(json(on)).to.include({ type: "online", device: "sensor" });
  });

  it("a resource stream on B makes the device on A sample, and delivers its values", async () => {
    const { device } = sensor();
    await device.connect();
    const c = await sse(`${B.url}/v2/users/alice/devices/sensor/counter?interval=0.2&authorization=${token}`);
    expect(c.status).to.equal(200);
    const a = await c.next((e) => e.event === undefined);
    const b = await c.next((e) => e.event === undefined);
    expect(json(b).out).to.be.greaterThan(json(a).out);
  });

  it("combines both nodes' intervals into one GCD for the device, and unstreams when both are gone", async () => {
    const dev = await RawDevice.described(A.wsUrl, "alice", "sensor", "s3cret", { temp: "output" });
    raws.push(dev);
    const remote = await sse(`${B.url}/v2/users/alice/devices/sensor/temp?interval=2&authorization=${token}`);
    expect(remote.status).to.equal(200);
    expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 2000 });
    const local = await sse(`${A.url}/v2/users/alice/devices/sensor/temp?interval=3&authorization=${token}`);
    expect(local.status).to.equal(200);
    expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 1000 });
    dev.data("temp", 7);
    expect(json(await remote.next((e) => e.event === undefined)).out).to.equal(7);
    expect(json(await local.next((e) => e.event === undefined)).out).to.equal(7);
    remote.close();
    expect(await dev.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 3000 });
    local.close();
    expect(await dev.nextStreamFrame()).to.deep.equal({ type: "unstream", resource: "temp" });
  });

  it("a remote subscriber that left while the device was away is not re-subscribed when it comes back", async () => {
    const first = await RawDevice.described(A.wsUrl, "alice", "sensor", "s3cret", { temp: "output", hum: "output" });
    raws.push(first);
    const remote = await sse(`${B.url}/v2/users/alice/devices/sensor/temp?interval=2&authorization=${token}`);
    expect(await first.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "temp", interval: 2000 });
    await first.close();
    await sessionGone(A.relay.services.hub, "alice", "sensor");
    remote.close(); // B's "no subscribers left" now has no node to reach
    await streamsOpen(B.relay.services.streams, 0, 5000, "B's stream to close");
    const second = await RawDevice.described(A.wsUrl, "alice", "sensor", "s3cret", { temp: "output", hum: "output" });
    raws.push(second);
    const local = await sse(`${A.url}/v2/users/alice/devices/sensor/hum?interval=1&authorization=${token}`);
    expect(local.status).to.equal(200);
    // A stale wish for "temp" would have been sent right after `connected`, before this one.
    expect(await second.nextStreamFrame()).to.deep.equal({ type: "stream", resource: "hum", interval: 1000 });
  });
});
