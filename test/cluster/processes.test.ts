import { expect } from "chai";
import { Device, DeviceError } from "../../device-sdk/index.js";
import { api, login, newAccount, newDevice, type ApiResponse } from "../helpers/api.js";
import { natsAvailable, startNats, type NatsServer } from "../helpers/nats.js";
import { ferretdbAvailable, FERRETDB_MISSING, freshDatabase, startFerretDb, withDatabase, type FerretDb } from "../helpers/ferretdb.js";
import { startMain, type MainProcess } from "../helpers/process.js";
import { closeAllSse, sse } from "../helpers/sse.js";
import { once } from "../helpers/wait.js";
import { LoadLog } from "../helpers/load-log.js";

/**
 * Cluster mode for real (DESIGN §7, docs/cluster.md): three separate server processes (`server/main.ts`) on
 * one FerretDB (MongoDB's stand-in, DESIGN §2) and one Debian nats-server, all of their own. Calls, takeover,
 * revocations and streams through every node; a node SIGKILLed under load; a rolling restart under load;
 * NATS restarted under load.
 *
 * Under load every call must be answered, with 200 or one of the codes docs/cluster.md lists for a node or
 * NATS going away; "hung" means no answer within the call timeout plus 5 s.
 */
const SECRET = "cluster-test-secret-at-least-32-bytes-long!";
const ADMIN = { user: "admin", password: "admin-password-1" };
/** Small, so that a dead node is noticed quickly here (production default: 6 s). */
const NODE_TIMEOUT_MS = 1_000;
/** Codes a call may answer while a node or NATS goes away (docs/cluster.md "Failures"). */
const FAILOVER_CODES: Record<number, string[]> = {
  404: ["device_offline"],
  502: ["device_disconnected"],
  503: ["service_unavailable"],
  504: ["device_timeout"],
};

interface LoadResult {
  answers: ApiResponse[];
  hung: number;
}

describe("cluster: three server processes on FerretDB and nats-server", function () {
  this.timeout(120_000);
  let fdb: FerretDb;
  let nats: NatsServer;
  let dbUrl: string;
  const nodes: MainProcess[] = [];
  const devices: Device[] = [];
  /** The device of the fail-over cases (connected to every node's URL), shared by the tests after it. */
  let failover: Device;
  let token: string;

  async function startNode(port = 0): Promise<MainProcess> {
    return await startMain({
      env: {
        PORT: String(port), MONGODB_URL: dbUrl, NATS_URL: nats.url, THINGRELAY_SECRET: SECRET,
        THINGRELAY_ADMIN_USER: ADMIN.user, THINGRELAY_ADMIN_PASSWORD: ADMIN.password,
        THINGRELAY_NODE_TIMEOUT_MS: String(NODE_TIMEOUT_MS), LOG_LEVEL: "warn",
      },
    });
  }

  /** Node i stopped (SIGTERM, or SIGKILL) and started again on the same port: devices' URL lists stay valid. */
  async function restartNode(i: number, signal: NodeJS.Signals): Promise<void> {
    const old = nodes[i]!;
    await old.kill(signal);
    await old.cleanup();
    nodes[i] = await startNode(old.port);
  }

  const urls = () => nodes.map((n) => n.url);
  const wsUrls = () => nodes.map((n) => n.wsUrl);

  function device(servers: string[], name: string): Device {
    const d = new Device({ server: servers, user: "alice", device: name, credentials: "s3cret", reconnectInitialMs: 50, reconnectMaxMs: 300 });
    devices.push(d);
    d.output("temperature", () => 21.5);
    d.input("relay", (v: unknown) => {
      if (typeof v !== "boolean") throw new DeviceError(400, "relay expects a boolean");
    });
    d.io("io", ({ value1, value2 }: { value1: number; value2: number }) => ({ sum: value1 + value2, mult: value1 * value2 }));
    d.run("reset", () => undefined);
    return d;
  }

  /** The index of the node whose process holds the device's session (its /sessions lists only its own). */
  async function holder(name: string): Promise<number> {
    for (let i = 0; i < nodes.length; i++) {
      const r = await api(nodes[i]!.url, "GET", "/v1/users/alice/sessions", { token }).catch(() => null); // a dead node
      if (r && r.status === 200 && (r.body as Array<{ device: string }>).some((s) => s.device === name)) return i;
    }
    return -1;
  }

  /**
   * Every node lists the device with `active` as given: a node that does not yet is awaited on its own account
   * event stream (opened before the look-up, so the change cannot slip between the two) and then looked up again.
   */
  async function activeEverywhere(name: string, active: boolean, timeoutMs = 10_000, nodeUrls = urls()): Promise<void> {
    const listed = async (u: string) => {
      const r = await api(u, "GET", `/v1/users/alice/devices?id=${name}`, { token });
      expect(r.status, `${u}: ${r.text}`).to.equal(200);
      return r.body[0]?.connection?.active as boolean;
    };
    await Promise.all(nodeUrls.map(async (u) => {
      const events = await sse(`${u}/v1/users/alice/events?device=${name}&authorization=${token}`);
      try {
        expect(events.status, u).to.equal(200);
        if ((await listed(u)) === active) return;
        const type = active ? "online" : "offline";
        await events.next((e) => e.event === undefined && JSON.parse(e.data).type === type, timeoutMs);
        expect(await listed(u), `${name} active on ${u}`).to.equal(active);
      } finally {
        events.close();
      }
    }));
  }

  /**
   * Calls `path` over and over from `workers` concurrent callers, each through `target()` (a proxy's pick),
   * until `stop` resolves; every call gets the call timeout plus 5 s before it counts as hung.
   */
  async function load(path: string, target: (n: number) => string, stop: Promise<unknown>, workers = 4, log = new LoadLog<ApiResponse>()): Promise<LoadResult> {
    let done = false;
    void stop.finally(() => (done = true));
    const answers = log.answers;
    let hung = 0;
    let n = 0;
    await Promise.all(Array.from({ length: workers }, async () => {
      while (!done) {
        const base = target(n++);
        try {
          const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(7_000) });
          const text = await res.text();
          let body: unknown;
          try {
            body = text === "" ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          log.add({ status: res.status, body, text, headers: res.headers });
        } catch (err) {
          if ((err as Error).name === "TimeoutError") hung++;
          else throw new Error(`call through ${base} failed without an answer: ${String(err)}`);
        }
      }
    }));
    return { answers, hung };
  }

  function expectAnswered(r: LoadResult, what: string): void {
    expect(r.hung, `${what}: calls without an answer`).to.equal(0);
    expect(r.answers.length, `${what}: calls made`).to.be.greaterThan(0);
    for (const a of r.answers) {
      if (a.status === 200) continue;
      expect(FAILOVER_CODES[a.status], `${what}: ${a.status} ${a.text}`).to.not.equal(undefined);
      expect(FAILOVER_CODES[a.status], `${what}: ${a.status} ${a.text}`).to.include(a.body?.error?.code);
    }
    const codes = new Map<string, number>();
    for (const a of r.answers) codes.set(String(a.status === 200 ? 200 : `${a.status} ${a.body.error.code}`), (codes.get(String(a.status === 200 ? 200 : `${a.status} ${a.body.error.code}`)) ?? 0) + 1);
    console.log(`      figures: ${what}: ${r.answers.length} calls, ${[...codes].map(([c, k]) => `${k}× ${c}`).join(", ")}, 0 hung`);
  }

  before(async function () {
    if (!natsAvailable()) this.skip();
    if (!ferretdbAvailable()) {
      console.log(`      SKIPPED: ${FERRETDB_MISSING}`);
      this.skip();
    }
    fdb = await startFerretDb();
    nats = await startNats();
    dbUrl = withDatabase(fdb.url, freshDatabase("thingrelay_cluster"));
    // One after the other: the first creates the admin and the indexes, the others find them.
    for (let i = 0; i < 3; i++) nodes.push(await startNode());
    const admin = await login(nodes[0]!.url, ADMIN.user, ADMIN.password);
    token = await newAccount(nodes[1]!.url, admin.access_token, "alice");
    for (const d of ["nodemcu", "mover", "failover", "roller"]) await newDevice(nodes[2]!.url, token, "alice", d, "s3cret");
  });

  afterEach(() => closeAllSse());

  after(async () => {
    for (const d of devices) await d.close();
    for (const n of nodes) await n.cleanup();
    await nats?.stop();
    await fdb?.dispose();
  });

  const v2 = (d: string, r: string) => `/v2/users/alice/devices/${d}/${r}`;

  it("a device on one node answers calls of every kind made through every node", async () => {
    await device([nodes[0]!.wsUrl], "nodemcu").connect();
    await activeEverywhere("nodemcu", true);
    for (const u of urls()) {
      expect((await api(u, "GET", v2("nodemcu", "temperature"), { token })).body, u).to.deep.equal({ out: 21.5 });
      const input = await api(u, "POST", v2("nodemcu", "relay"), { token, json: { in: true } });
      expect(input.status, u).to.equal(200);
      const bad = await api(u, "POST", v2("nodemcu", "relay"), { token, json: { in: "on" } });
      expect([bad.status, bad.body.error.code], u).to.deep.equal([400, "device_error"]);
      expect((await api(u, "POST", v2("nodemcu", "io"), { token, json: { value1: 20, value2: 10 } })).body, u).to.deep.equal({ out: { sum: 30, mult: 200 } });
      expect((await api(u, "GET", v2("nodemcu", "reset"), { token })).status, u).to.equal(200);
      expect((await api(u, "GET", v2("nodemcu", "api"), { token })).body.temperature, u).to.deep.equal({ kind: "output" });
      const stats = await api(u, "GET", "/v1/users/alice/devices/nodemcu/stats", { token });
      expect(stats.body.connected, u).to.equal(true);
      const missing = await api(u, "GET", v2("nodemcu", "nope"), { token });
      expect([missing.status, missing.body.error.code], u).to.deep.equal([404, "resource_not_found"]);
      const offline = await api(u, "GET", v2("mover", "temperature"), { token });
      expect([offline.status, offline.body.error.code], u).to.deep.equal([404, "device_offline"]);
    }
  });

  it("takeover: the device reconnecting to another node closes its old session there (4000); every node reaches the new one", async () => {
    const first = device([nodes[0]!.wsUrl], "mover");
    await first.connect();
    await activeEverywhere("mover", true);
    const closed = once<{ code: number }>(first, "disconnected", 10_000);
    await device([nodes[1]!.wsUrl], "mover").connect();
    expect((await closed).code).to.equal(4000);
    // Node 1 registered the session before it answered `connected`; node 0 dropped its own before the 4000.
    expect(await holder("mover")).to.equal(1);
    for (const u of urls()) expect((await api(u, "GET", v2("mover", "temperature"), { token })).body, u).to.deep.equal({ out: 21.5 });
  });

  it("revocations are seen on every node at once: a device token, a user token, a refresh family", async () => {
    const [n0, n1, n2] = urls() as [string, string, string];
    const dt = await api(n1, "POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "screen" } });
    expect(dt.status, dt.text).to.equal(200);
    const ut = await api(n2, "POST", "/v1/users/alice/tokens", { token, json: { name: "lister", allow: [{ action: "ListDevices", target: "*" }] } });
    expect(ut.status, ut.text).to.equal(200);
    const t = await login(n0, "alice", "alice-password");
    for (const u of urls()) {
      expect((await api(u, "GET", `${v2("nodemcu", "temperature")}?authorization=${dt.body.token}`)).status, u).to.equal(200);
      expect((await api(u, "GET", "/v1/users/alice/devices", { token: ut.body.token })).status, u).to.equal(200);
      expect((await api(u, "GET", "/v1/users/alice/devices", { token: t.access_token })).status, u).to.equal(200);
    }
    expect((await api(n1, "DELETE", `/v1/users/alice/devices/nodemcu/tokens/${dt.body.id}`, { token })).status).to.equal(200);
    expect((await api(n2, "DELETE", `/v1/users/alice/tokens/${ut.body.id}`, { token })).status).to.equal(200);
    const rotated = await api(n0, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: t.refresh_token } });
    expect(rotated.status).to.equal(200);
    const reuse = await api(n1, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: t.refresh_token } });
    expect(reuse.status).to.equal(401);
    // No waiting: each revoking call returned after its revocation reached NATS (docs/cluster.md "Revocation").
    for (const u of urls()) {
      const d = await api(u, "GET", `${v2("nodemcu", "temperature")}?authorization=${dt.body.token}`);
      expect([d.status, d.body.error.code], `device token on ${u}`).to.deep.equal([401, "unauthorized"]);
      expect((await api(u, "GET", "/v1/users/alice/devices", { token: ut.body.token })).status, `user token on ${u}`).to.equal(401);
      expect((await api(u, "GET", "/v1/users/alice/devices", { token: t.access_token })).status, `family on ${u}`).to.equal(401);
      expect((await api(u, "GET", "/v1/users/alice/devices", { token: rotated.body.access_token })).status, `rotated on ${u}`).to.equal(401);
    }
  });

  it("SSE across nodes: account events, a stats stream and a resource stream on other nodes than the device's", async () => {
    const [, n1, n2] = urls() as [string, string, string];
    const events = await sse(`${n2}/v1/users/alice/events?authorization=${token}`);
    expect(events.status).to.equal(200);
    const d = device([nodes[0]!.wsUrl], "roller");
    let n = 0;
    d.output("counter", () => ++n);
    await d.connect();
    const online = await events.next((e) => e.event === undefined && JSON.parse(e.data).type === "online" && JSON.parse(e.data).device === "roller");
    expect(JSON.parse(online.data)).to.include({ type: "online", device: "roller" });
    const stats = await sse(`${n1}/v1/users/alice/devices/roller/stats?authorization=${token}`);
    expect(stats.status).to.equal(200);
    expect(JSON.parse((await stats.next()).data)).to.include({ connected: true });
    const values = await sse(`${n2}${v2("roller", "counter")}?interval=0.2&authorization=${token}`);
    expect(values.status).to.equal(200);
    const a = JSON.parse((await values.next((e) => e.event === undefined)).data).out as number;
    const b = JSON.parse((await values.next((e) => e.event === undefined)).data).out as number;
    expect(b).to.be.greaterThan(a);
    await d.close();
    const off = await events.next((e) => e.event === undefined && JSON.parse(e.data).type === "offline" && JSON.parse(e.data).device === "roller");
    expect(JSON.parse(off.data)).to.include({ type: "offline", device: "roller" });
  });

  it("a node SIGKILLed under load: every call answered, its device reconnects to another node, its devices never linger as ghosts, no data lost", async () => {
    const d = device(wsUrls(), "failover");
    failover = d;
    await d.connect();
    await activeEverywhere("failover", true);
    const victim = await holder("failover");
    expect(victim).to.be.at.least(0);
    const others = [0, 1, 2].filter((i) => i !== victim).map((i) => nodes[i]!.url);
    const back = once(d, "connected", 20_000);
    let stopLoad!: () => void;
    const stop = new Promise<void>((r) => (stopLoad = r));
    const log = new LoadLog<ApiResponse>();
    const running = load(`${v2("failover", "temperature")}?timeout=2`, (i) => others[i % 2]!, stop, 6, log);
    // Calls in flight through the other nodes to the victim's device when it dies: the load has answers already.
    await log.next((a) => a.status === 200, 0, 10_000, "the load's first answers");
    await log.more(6, 10_000);
    await nodes[victim]!.kill("SIGKILL");
    // The `connected` frame comes from a live node, which registered the session before sending it.
    await back;
    expect(await holder("failover")).to.be.at.least(0);
    stopLoad();
    expectAnswered(await running, "node SIGKILLed");
    const moved = await holder("failover");
    expect(moved).to.not.equal(victim);
    // Restart the victim on its port; then nothing written before the kill is missing, on any node.
    nodes[victim] = await startNode(nodes[victim]!.port);
    for (const u of urls()) {
      const list = await api(u, "GET", "/v1/users/alice/devices", { token });
      expect(list.status).to.equal(200);
      expect((list.body as Array<{ device: string }>).map((x) => x.device).sort(), u).to.deep.equal(["failover", "mover", "nodemcu", "roller"]);
      expect((await api(u, "GET", v2("failover", "temperature"), { token })).body, u).to.deep.equal({ out: 21.5 });
    }
    expect((await login(nodes[victim]!.url, "alice", "alice-password")).access_token).to.be.a("string");
  });

  it("a node SIGKILLed with a device nobody else takes: the others list it offline within the node timeout, and calls answer device_offline", async () => {
    // A device with a single URL: it cannot fail over, so only the dead-node detection can clear it.
    const victim = 2;
    const d = new Device({ server: nodes[victim]!.wsUrl, user: "alice", device: "roller", credentials: "s3cret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
    devices.push(d);
    d.output("temperature", () => 1);
    await d.connect();
    await activeEverywhere("roller", true);
    await nodes[victim]!.kill("SIGKILL");
    await d.close();
    const alive = [0, 1].map((i) => nodes[i]!.url);
    // Each live node's dead-node detection sends an `offline` event (awaited on its event stream).
    await activeEverywhere("roller", false, 4 * NODE_TIMEOUT_MS + 5_000, alive);
    for (const u of alive) {
      const stats = await api(u, "GET", "/v1/users/alice/devices/roller/stats", { token });
      expect(stats.body.connected, u).to.equal(false);
      const call = await api(u, "GET", `${v2("roller", "temperature")}?timeout=20`, { token });
      expect([call.status, call.body.error.code], u).to.deep.equal([404, "device_offline"]);
    }
    nodes[victim] = await startNode(nodes[victim]!.port);
  });

  it("a rolling restart of the three nodes under load: no call fails beyond the documented codes", async () => {
    await activeEverywhere("failover", true);
    let restarting = -1;
    let stopLoad!: () => void;
    const stop = new Promise<void>((r) => (stopLoad = r));
    // A proxy with health checks: never the node being restarted.
    const running = load(`${v2("failover", "temperature")}?timeout=2`, (i) => {
      const up = [0, 1, 2].filter((k) => k !== restarting);
      return nodes[up[i % up.length]!]!.url;
    }, stop, 4);
    for (let i = 0; i < 3; i++) {
      // The device held by the node going down reconnects elsewhere: its `connected` event marks it.
      const back = (await holder("failover")) === i ? once(failover, "connected", 20_000) : undefined;
      restarting = i;
      await restartNode(i, "SIGTERM");
      restarting = -1;
      await back;
      expect(await holder("failover"), `after restarting node ${i}`).to.be.at.least(0);
    }
    stopLoad();
    expectAnswered(await running, "rolling restart");
    for (const u of urls()) expect((await api(u, "GET", v2("failover", "temperature"), { token })).body, u).to.deep.equal({ out: 21.5 });
  });

  it("NATS restarted under load: remote calls answer 503 service_unavailable at once, then recover without restarting any node", async () => {
    await activeEverywhere("failover", true);
    const h = await holder("failover");
    const remote = nodes[(h + 1) % 3]!.url;
    const local = nodes[h]!.url;
    const port = nats.port;
    await nats.stop();
    const down = await api(remote, "GET", v2("failover", "temperature"), { token });
    expect([down.status, down.body.error.code], down.text).to.deep.equal([503, "service_unavailable"]);
    expect(down.headers.get("retry-after")).to.equal("1");
    // The node holding the device still answers for it: the call needs no NATS.
    expect((await api(local, "GET", v2("failover", "temperature"), { token })).body).to.deep.equal({ out: 21.5 });
    let stopLoad!: () => void;
    const stop = new Promise<void>((r) => (stopLoad = r));
    const log = new LoadLog<ApiResponse>();
    const running = load(v2("failover", "temperature"), () => remote, stop, 2, log);
    nats = await startNats(port);
    // Recovery is the load's first 200 through the remote node after NATS is back.
    await log.next((a) => a.status === 200, log.answers.length, 20_000, "calls through the remote node to recover");
    stopLoad();
    expectAnswered(await running, "NATS restarted");
    for (const u of urls()) expect((await api(u, "GET", v2("failover", "temperature"), { token })).body, u).to.deep.equal({ out: 21.5 });
    await activeEverywhere("failover", true);
  });
});
