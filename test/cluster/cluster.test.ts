import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { Device, DeviceError } from "../../device-sdk/index.js";
import { openNedbStore } from "../../server/store/nedb.js";
import type { Store } from "../../server/store/types.js";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { natsAvailable, startNats, type NatsServer } from "../helpers/nats.js";
import { once } from "../helpers/wait.js";
import { sse } from "../helpers/sse.js";
import { RawDevice } from "../helpers/rawdevice.js";
import { runAfter } from "../helpers/interleave.js";

/**
 * Cluster mode over a real nats-server (Debian package). The three nodes run in this process and share one
 * store object (fast, and runs without the FerretDB binary); test/cluster/processes.test.ts does the same
 * with three separate processes on FerretDB. Everything between the nodes — calls, takeover, events,
 * revocations — goes through NATS exactly as between processes.
 */
describe("cluster: three nodes, one store, calls routed over NATS", function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let store: Store;
  let dir: string;
  const nodes: TestServer[] = [];
  const conns: NatsConnection[] = [];
  const devices: Device[] = [];
  let token: string;
  let A: TestServer, B: TestServer, C: TestServer;

  async function node(): Promise<TestServer> {
    const nc = await connect({ servers: nats.url, name: `node-${nodes.length}` });
    conns.push(nc);
    // A short acknowledgement wait: one test has a node that does not acknowledge a revocation in time.
    const n = await startServer({ store, dataDir: dir, cluster: { nc, subjectPrefix: "trtest", revokeAckTimeoutMs: 300 } });
    nodes.push(n);
    return n;
  }

  function device(servers: string[], name = "nodemcu"): Device {
    const d = new Device({ server: servers, user: "alice", device: name, credentials: "s3cret", reconnectInitialMs: 50, reconnectMaxMs: 200 });
    devices.push(d);
    d.output("temperature", () => 21.5);
    d.input("relay", (v: unknown) => {
      if (typeof v !== "boolean") throw new DeviceError(400, "relay expects a boolean");
    });
    d.io("io", ({ value1, value2 }: { value1: number; value2: number }) => ({ sum: value1 + value2, mult: value1 * value2 }));
    d.run("reset", () => undefined);
    d.output("slow", () => new Promise(() => undefined));
    return d;
  }

  before(async function () {
    if (!natsAvailable()) this.skip();
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "thingrelay-cluster-"));
    store = await openNedbStore(join(dir, "db"));
    A = await node();
    B = await node();
    C = await node();
    const admin = await login(A.url, ADMIN.user, ADMIN.password);
    token = await newAccount(A.url, admin.access_token, "alice");
    await newDevice(A.url, token, "alice", "nodemcu", "s3cret");
    await newDevice(A.url, token, "alice", "idle", "s3cret");
  });

  after(async () => {
    for (const d of devices) await d.close();
    for (const n of nodes) await n.close();
    for (const nc of conns) if (!nc.isClosed()) await nc.close();
    await store?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const v2 = (r: string) => `/v2/users/alice/devices/nodemcu/${r}`;

  it("a device on node A answers calls made through B and C for every resource kind", async () => {
    // B and C learn that A holds the device from its NATS "online" event (published after A's subscription,
    // so once they see it, a request reaches A). A call sent before that answers device_offline, correctly.
    const known = [B, C].map((n) => once(n.relay.services.hub, "online"));
    await device([A.wsUrl]).connect();
    await Promise.all(known);
    for (const n of [B, C]) {
      expect((await api(n.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
      const input = await api(n.url, "POST", v2("relay"), { token, json: { in: true } });
      expect(input.status).to.equal(200);
      expect(input.text).to.equal("");
      expect((await api(n.url, "POST", v2("io"), { token, json: { value1: 20, value2: 10 } })).body).to.deep.equal({ out: { sum: 30, mult: 200 } });
      expect((await api(n.url, "GET", v2("reset"), { token })).status).to.equal(200);
      const kinds = await api(n.url, "GET", v2("api"), { token });
      expect(kinds.body.temperature).to.deep.equal({ kind: "output" });
    }
  });

  it("errors keep their status and code across nodes", async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ["GET", v2("nope"), undefined, 404, "resource_not_found"],
      ["POST", v2("relay"), { in: "on" }, 400, "device_error"],
      ["GET", `${v2("slow")}?timeout=0.3`, undefined, 504, "device_timeout"],
      ["GET", "/v2/users/alice/devices/idle/temperature", undefined, 404, "device_offline"],
      ["GET", "/v2/users/alice/devices/ghost/temperature", undefined, 404, "device_not_found"],
    ];
    for (const [method, path, json, status, code] of cases) {
      const r = await api(C.url, method, path, json === undefined ? { token } : { token, json });
      expect(r.status, path).to.equal(status);
      expect(r.body.error.code, path).to.equal(code);
    }
  });

  it("the node holding the device refuses wrong-kind calls (405 + Allow) and answers a resource's /api for the others", async () => {
    for (const [method, path, allow] of [["GET", v2("relay"), "POST"], ["POST", v2("temperature"), "GET"]] as const) {
      const r = await api(C.url, method, path, method === "POST" ? { token, json: { in: 1 } } : { token });
      expect(r.status, path).to.equal(405);
      expect(r.body.error.code).to.equal("method_not_allowed");
      expect(r.headers.get("allow")).to.equal(allow);
    }
    expect((await api(B.url, "GET", v2("temperature/api"), { token })).body).to.deep.equal({ kind: "output", out: 21.5 });
    expect((await api(C.url, "GET", v2("relay/api"), { token })).body).to.deep.equal({ kind: "input" });
    expect((await api(C.url, "GET", v2("nope/api"), { token })).body.error.code).to.equal("resource_not_found");
    expect((await api(C.url, "GET", "/v2/users/alice/devices/idle/x/api", { token })).body.error.code).to.equal("device_offline");
  });

  it("the device list on another node shows the device connected", async () => {
    const r = await api(C.url, "GET", "/v1/users/alice/devices?id=nodemcu", { token });
    expect(r.body[0].connection.active).to.equal(true);
  });

  it("a device token revoked on B is refused on A and C at once", async () => {
    const created = await api(B.url, "POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "screen" } });
    const dt = created.body.token as string;
    for (const n of [A, C]) expect((await api(n.url, "GET", `${v2("temperature")}?authorization=${dt}`)).status).to.equal(200);
    expect((await api(B.url, "DELETE", `/v1/users/alice/devices/nodemcu/tokens/${created.body.id}`, { token })).status).to.equal(200);
    for (const n of [A, B, C]) {
      const r = await api(n.url, "GET", `${v2("temperature")}?authorization=${dt}`);
      expect(r.status).to.equal(401);
      expect(r.body.error.code).to.equal("unauthorized");
    }
  });

  it("a revoking answer waits for every live node's acknowledgement; one that does not come in time is logged, the answer stays 200", async () => {
    // A fourth "node" that beats like one and acknowledges revocations only when this test lets it.
    const slow = await connect({ servers: nats.url });
    conns.push(slow);
    const slowId = "slow-node";
    const order: string[] = [];
    let ackNow = false;
    const late: Array<() => void> = [];
    slow.subscribe("trtest.revoke", {
      callback: (_err, msg) => {
        const m = JSON.parse(new TextDecoder().decode(msg.data)) as { ack?: number };
        const ack = () => {
          order.push("acked");
          msg.respond(new TextEncoder().encode(JSON.stringify({ ack: m.ack, node: slowId })));
        };
        if (ackNow) ack();
        else late.push(ack);
      },
    });
    slow.publish("trtest.node", new TextEncoder().encode(JSON.stringify({ node: slowId, state: "alive" })));
    try {
      // B counts it live once its heartbeat arrived.
      while (!B.relay.services.cluster!.liveNodes().includes(slowId)) await new Promise((r) => setImmediate(r));
      const revoke = async () => {
        const created = await api(B.url, "POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "wall" } });
        order.length = 0;
        const r = await api(B.url, "DELETE", `/v1/users/alice/devices/nodemcu/tokens/${created.body.id}`, { token });
        order.push("answered");
        return { r, dt: created.body.token as string };
      };

      // It does not acknowledge before the answer: B waits its bound, logs the node, answers 200.
      const from = B.logs.length;
      const first = await revoke();
      expect(first.r.status).to.equal(200);
      const line = B.logs.slice(from).find((l) => l.includes("cluster_revoke_unacked"));
      expect(line, "no cluster_revoke_unacked warning").to.be.a("string");
      expect(line).to.include(slowId);
      // A and C acknowledged: they refuse the token already.
      for (const n of [A, C]) expect((await api(n.url, "GET", `${v2("temperature")}?authorization=${first.dt}`)).status).to.equal(401);
      for (const ack of late.splice(0)) ack();

      // It acknowledges on receipt: B's answer comes after it, and nothing is logged.
      ackNow = true;
      const from2 = B.logs.length;
      const second = await revoke();
      expect(second.r.status).to.equal(200);
      expect(order).to.deep.equal(["acked", "answered"]);
      expect(B.logs.slice(from2).filter((l) => l.includes("cluster_revoke_unacked"))).to.deep.equal([]);
    } finally {
      // Gone: the nodes stop waiting for it.
      slow.publish("trtest.node", new TextEncoder().encode(JSON.stringify({ node: slowId, state: "gone" })));
      await slow.flush();
    }
  });

  it("reusing a rotated refresh token on B revokes the family on every node", async () => {
    const t = await login(A.url, "alice", "alice-password");
    for (const n of [A, C]) expect((await api(n.url, "GET", "/v1/users/alice/devices", { token: t.access_token })).status).to.equal(200);
    const rot = await api(B.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: t.refresh_token } });
    expect(rot.status).to.equal(200);
    const reuse = await api(B.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: t.refresh_token } });
    expect(reuse.status).to.equal(401);
    for (const n of [A, B, C]) {
      expect((await api(n.url, "GET", "/v1/users/alice/devices", { token: t.access_token })).status).to.equal(401);
      expect((await api(n.url, "GET", "/v1/users/alice/devices", { token: rot.body.access_token })).status).to.equal(401);
    }
  });

  it("a device that reconnects to B takes over: A closes its old session with 4000", async () => {
    const old = devices[0]!;
    const closed = once<{ code: number }>(old, "disconnected");
    const events = await sse(`${A.url}/v1/users/alice/events?device=nodemcu&authorization=${token}`);
    expect(events.status).to.equal(200);
    const moved = device([B.wsUrl]);
    await moved.connect();
    expect((await closed).code).to.equal(4000);
    // Subscribers on the old node see the device online (now on B) and no spurious offline in between.
    const online = await events.next((e) => e.event === undefined);
    expect(JSON.parse(online.data).type).to.equal("online");
    const ping = await api(A.url, "GET", v2("temperature"), { token });
    expect(ping.status).to.equal(200);
    expect(events.events.filter((e) => e.event === undefined && JSON.parse(e.data).type === "offline")).to.have.length(0);
    events.close();
    expect(A.relay.services.hub.get("alice", "nodemcu")).to.equal(undefined);
    expect(B.relay.services.hub.get("alice", "nodemcu")).to.not.equal(undefined);
    // Exactly one request travels on the device's subject per call: the old node no longer answers (or
    // forwards) for it, which once made a call bounce between nodes forever.
    const spy = await connect({ servers: nats.url });
    conns.push(spy);
    let seen = 0;
    spy.subscribe("trtest.dev.alice.nodemcu", { callback: () => void seen++ });
    await spy.flush();
    expect((await api(C.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
    expect((await api(A.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
    await spy.flush();
    expect(seen).to.equal(2);
    // A later call through the old node is the marker: a request still bouncing between nodes would have
    // put many more on the subject by the time this one went round (NATS → B → device → B → A → HTTP).
    // The spy got the request before B did; its flush then delivers everything the server routed to it.
    expect((await api(A.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
    await spy.flush();
    expect(seen).to.equal(3);
  });

  it("deleting a device connected to another node answers 400 device_connected", async () => {
    const r = await api(A.url, "DELETE", "/v1/users/alice/devices/nodemcu", { token });
    expect(r.status).to.equal(400);
    expect(r.body.error.code).to.equal("device_connected");
    expect((await api(C.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
  });

  it("new credentials set on A while B checks the old ones: B closes the new session 4001 instead of keeping it", async () => {
    await newDevice(A.url, token, "alice", "racer", "old-s3cret");
    // B has read the device (old credentials) when A stores the new ones and kicks; B goes on once it got the kick.
    const hubB = B.relay.services.hub;
    const kickHere = hubB.kickHere;
    let kickedOnB!: () => void;
    const kicked = new Promise<void>((resolve, reject) => {
      kickedOnB = resolve;
      setTimeout(() => reject(new Error("B never heard A's kick")), 5_000).unref();
    });
    hubB.kickHere = function (this: typeof hubB, ...args: Parameters<typeof kickHere>) {
      kickHere.apply(this, args);
      if (args[1] === "racer") kickedOnB();
    };
    const change = runAfter(B.relay.services.repos.devices, "findOne", async () => {
      const r = await api(A.url, "PUT", "/v1/users/alice/devices/racer", { token, json: { device_credentials: "n3w-s3cret" } });
      await kicked;
      return r;
    }, (q: { _id?: string }) => q._id === "alice/racer");
    let refused;
    try {
      refused = await RawDevice.connect({ wsUrl: B.wsUrl, user: "alice", device: "racer", credentials: "old-s3cret" }).then(
        () => ({ close: undefined }),
        (e: { close?: { code: number; reason: string } }) => e,
      );
    } finally {
      change.restore();
      hubB.kickHere = kickHere;
    }
    expect(change.ran().status).to.equal(200);
    expect(refused.close).to.deep.equal({ code: 4001, reason: "credentials changed" });
    expect(B.relay.services.hub.get("alice", "racer")).to.equal(undefined);
  });

  it("node A dies under load: no call hangs, and its device comes back on B", async () => {
    // The device from the previous test sits on B; bring a second device up on A with failover to B.
    await newDevice(A.url, token, "alice", "failover", "s3cret");
    const d = device([A.wsUrl, B.wsUrl], "failover");
    await d.connect();
    expect(A.relay.services.hub.get("alice", "failover")).to.not.equal(undefined);
    const path = "/v2/users/alice/devices/failover/temperature?timeout=1";
    const load = Array.from({ length: 40 }, (_, i) => api((i % 2 ? B : C).url, "GET", path, { token }));
    const back = once(d, "connected", 10_000);
    // What SIGKILL does to a node: its NATS connection and every socket vanish at once, nothing answers.
    const ncA = conns[0]!;
    await ncA.close();
    A.relay.services.hub.get("alice", "failover")!.terminate();
    await A.close();
    const answers = await Promise.all(load);
    for (const r of answers) expect([200, 404, 502, 504], r.text).to.include(r.status);
    console.log(`      figures: 1 node killed, ${answers.length} calls in flight, ${answers.filter((r) => r.status === 200).length} answered 200, ` +
      `${answers.filter((r) => r.status !== 200).length} answered with an error code, 0 hung`);
    await back;
    expect(B.relay.services.hub.get("alice", "failover")).to.not.equal(undefined);
    const r = await api(C.url, "GET", path, { token });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: 21.5 });
  });
});
