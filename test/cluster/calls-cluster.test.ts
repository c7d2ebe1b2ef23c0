import { expect } from "chai";
import { EventEmitter } from "node:events";
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
import { once, onceWhere, whenState } from "../helpers/wait.js";
import type { CallView } from "../../server/calls/queue.js";
import { sse } from "../helpers/sse.js";

/**
 * Issue 18 in cluster mode: two nodes in this process share one store and talk over a real nats-server (as in
 * cluster.test.ts). The node holding the device delivers queued calls and pushes property edits; any node
 * takes the call or the edit and answers the status.
 */
describe("cluster: queued calls and properties across nodes", function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let store: Store;
  let dir: string;
  const nodes: TestServer[] = [];
  const conns: NatsConnection[] = [];
  const devices: Device[] = [];
  let token: string;
  let A: TestServer, B: TestServer;
  const ASYNC = { Prefer: "respond-async" };

  async function node(): Promise<TestServer> {
    const nc = await connect({ servers: nats.url, name: `calls-node-${nodes.length}` });
    conns.push(nc);
    const n = await startServer({ store, dataDir: dir, cluster: { nc, subjectPrefix: "trcalls" } });
    nodes.push(n);
    return n;
  }
  function device(name: string, log: unknown[], seen: Array<[string, unknown]> = []): Device {
    const d = new Device({ server: A.wsUrl, user: "alice", device: name, credentials: "s3cret" });
    devices.push(d);
    d.io("echo", (v: unknown) => {
      log.push(v);
      return v;
    });
    d.onProperty("*", (value, prop) => seen.push([prop, value]));
    return d;
  }
  const callPath = (name: string, id: string) => `/v1/users/alice/devices/${name}/calls/${id}`;
  /**
   * Resolves with the first call `pick` chooses that a node's queue reports finished (`done` is emitted once the
   * final state is in the shared store, by whichever node wrote it). Subscribe before causing it.
   */
  function finished(pick: (device: string, call: CallView) => boolean, what: string): Promise<CallView> {
    const watchers = nodes.map((n) => onceWhere<[{ device: string; call: CallView }]>(n.relay.services.calls, "done", (e) => pick(e.device, e.call), 8000, what));
    return Promise.race(watchers).then(([e]) => e.call);
  }
  /** Once `done` came: the call's status as node `n` answers it, which must be `status`. */
  async function statusOn(n: TestServer, name: string, id: string, done: Promise<CallView>, status: string): Promise<any> {
    expect((await done).id).to.equal(id);
    const r = (await api(n.url, "GET", callPath(name, id), { token })).body;
    expect(r.status, `${status} on ${n.url}`).to.equal(status);
    return r;
  }

  before(async function () {
    if (!natsAvailable()) this.skip();
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "thingrelay-calls-cluster-"));
    store = await openNedbStore(join(dir, "db"));
    A = await node();
    B = await node();
    const admin = await login(A.url, ADMIN.user, ADMIN.password);
    token = await newAccount(A.url, admin.access_token, "alice");
    await newDevice(A.url, token, "alice", "online", "s3cret");
    await newDevice(A.url, token, "alice", "later", "s3cret");
  });

  after(async () => {
    for (const d of devices) await d.close();
    for (const n of nodes) await n.close();
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await store?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a call queued on B for a device held by A is delivered by A; both nodes answer its status", async () => {
    const log: unknown[] = [];
    const seen: Array<[string, unknown]> = [];
    const known = once(B.relay.services.hub, "online");
    await device("online", log, seen).connect();
    await known;
    const finishing = finished((name) => name === "online", "the call on online to finish");
    const r = await api(B.url, "POST", "/v2/users/alice/devices/online/echo", { token, json: { in: "via B" }, headers: ASYNC });
    expect(r.status).to.equal(202);
    const done = await statusOn(B, "online", r.body.id, finishing, "succeeded");
    expect(done.out).to.equal("via B");
    expect((await api(A.url, "GET", callPath("online", r.body.id), { token })).body).to.deep.equal(done);
    expect(log).to.deep.equal(["via B"]);
  });

  it("the `call` event of a call delivered by A reaches an account stream open on B", async () => {
    const stream = await sse(`${B.url}/v1/users/alice/events?device=online`, { Authorization: `Bearer ${token}` });
    try {
      const r = await api(B.url, "POST", "/v2/users/alice/devices/online/echo", { token, json: { in: "evt" }, headers: ASYNC });
      // This call's event: the one of the previous test's call can still be on its way from A through NATS.
      const ev = await stream.next((e) => {
        const d = JSON.parse(e.data) as { type?: string; id?: string };
        return e.event === undefined && d.type === "call" && d.id === r.body.id;
      });
      expect(JSON.parse(ev.data)).to.include({ type: "call", device: "online", id: r.body.id, status: "succeeded", out: "evt" });
    } finally {
      stream.close();
    }
  });

  it("a property edited on B reaches the device held by A", async () => {
    const seen: Array<[string, unknown]> = [];
    const pushes = new EventEmitter();
    const d = devices[0]!;
    d.onProperty("color", (value, prop) => {
      seen.push([prop, value]);
      pushes.emit("push");
    });
    expect((await api(B.url, "PUT", "/v3/users/alice/devices/online/properties/color", { token, json: { value: "red" } })).status).to.equal(200);
    await whenState(pushes, "push", () => seen.length > 0, 8000, "property pushed");
    expect(seen).to.deep.equal([["color", "red"]]);
    expect(await d.property("color")).to.equal("red");
  });

  it("calls queued on B while the device is offline are delivered in order when it connects to A; cancel works from B", async () => {
    const ids: string[] = [];
    for (const v of [1, 2, 3]) ids.push((await api(B.url, "POST", "/v2/users/alice/devices/later/echo", { token, json: { in: v }, headers: ASYNC })).body.id);
    const del = await api(B.url, "DELETE", callPath("later", ids[1]!), { token });
    expect(del.body.status).to.equal("cancelled");
    const log: unknown[] = [];
    const last = finished((_name, call) => call.id === ids[2], "the third call to finish");
    await device("later", log).connect();
    await statusOn(B, "later", ids[2]!, last, "succeeded");
    expect(log).to.deep.equal([1, 3]);
    expect((await api(A.url, "GET", callPath("later", ids[0]!), { token })).body.status).to.equal("succeeded");
  });

  it("an Idempotency-Key used on A replays on B", async () => {
    const headers = { "Idempotency-Key": "cluster-key" };
    const first = await api(A.url, "POST", "/v2/users/alice/devices/online/echo", { token, json: { in: "once" }, headers });
    expect(first.status).to.equal(200);
    const again = await api(B.url, "POST", "/v2/users/alice/devices/online/echo", { token, json: { in: "once" }, headers });
    expect(again.status).to.equal(200);
    expect(again.body).to.deep.equal(first.body);
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
  });
});
