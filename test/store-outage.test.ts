import { expect } from "chai";
import { Device } from "../device-sdk/index.js";
import { openMongoStore } from "../server/store/mongo.js";
import type { Store } from "../server/store/types.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { LoadLog } from "./helpers/load-log.js";
import { ferretdbAvailable, FERRETDB_MISSING, freshDatabase, startFerretDb, withDatabase, type FerretDb } from "./helpers/ferretdb.js";

/**
 * The MongoDB store goes away under load and comes back (README "Deployment", docs/deployment.md): a server
 * on a FerretDB of its own, which the test stops and starts again on the same port and data.
 */
describe("store outage: MongoDB (FerretDB) stopped under load, then back", function () {
  this.timeout(90_000);
  let fdb: FerretDb;
  let store: Store;
  let srv: TestServer;
  let token: string;
  let device: Device;

  before(async function () {
    if (!ferretdbAvailable()) {
      console.log(`      SKIPPED: ${FERRETDB_MISSING}`);
      this.skip();
    }
    fdb = await startFerretDb();
    // A short server selection timeout: calls during the outage answer 503 after it (production: 5 s).
    store = await openMongoStore(withDatabase(fdb.url, freshDatabase("thingrelay_outage")), { serverSelectionTimeoutMS: 1_000 });
    srv = await startServer({ store });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "sensor", "s3cret");
    device = new Device({ server: srv.wsUrl, user: "alice", device: "sensor", credentials: "s3cret", reconnectInitialMs: 50, reconnectMaxMs: 300 });
    device.output("temperature", () => 21.5);
    await device.connect();
  });

  after(async () => {
    await device?.close();
    await srv?.close();
    await store?.close();
    await fdb?.dispose();
  });

  it("/ready fails, store-backed routes answer 503 service_unavailable + Retry-After, relay calls keep working; all recovers without a restart and nothing is lost", async () => {
    // Written before the outage.
    const created = await api(srv.url, "POST", "/v1/users/alice/devices/sensor/tokens", { token, json: { token_name: "screen" } });
    expect(created.status, created.text).to.equal(200);
    expect((await api(srv.url, "GET", "/ready")).status).to.equal(200);

    // Load across the outage: relay calls (no store needed) and device lists (store-backed).
    // Each worker sends its next request when the last one answered (no pacing timer).
    let loading = true;
    const log = new LoadLog<{ path: string; status: number; code: string | undefined; retryAfter: string | null }>();
    const answers = log.answers;
    const worker = async (path: string) => {
      while (loading) {
        const res = await fetch(srv.url + path, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
        const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
        log.add({ path, status: res.status, code: body?.error?.code, retryAfter: res.headers.get("retry-after") });
      }
    };
    const load = Promise.all([
      worker("/v2/users/alice/devices/sensor/temperature"), worker("/v2/users/alice/devices/sensor/temperature"),
      worker("/v1/users/alice/devices"), worker("/v1/users/alice/devices/sensor"),
    ]);

    await fdb.stop();

    const ready = await api(srv.url, "GET", "/ready");
    expect([ready.status, ready.body.error.code]).to.deep.equal([503, "service_unavailable"]);
    expect(ready.headers.get("retry-after")).to.equal("5");
    expect((await api(srv.url, "GET", "/health")).status).to.equal(200);
    for (const [method, path, json] of [
      ["GET", "/v1/users/alice/devices", undefined],
      ["POST", "/v1/users/alice/devices", { device_id: "during", device_description: "x", device_credentials: "s3cret-during" }],
      ["GET", "/v1/users/alice/devices/sensor/tokens", undefined],
    ] as const) {
      const r = await api(srv.url, method, path, json === undefined ? { token } : { token, json });
      expect([r.status, r.body?.error?.code], `${method} ${path}: ${r.text}`).to.deep.equal([503, "service_unavailable"]);
      expect(r.headers.get("retry-after"), path).to.equal("5");
    }
    const pwd = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "alice", password: "alice-password" } });
    expect([pwd.status, pwd.body?.error?.code], pwd.text).to.deep.equal([503, "service_unavailable"]);
    // A relay call to the connected device needs no store (the token's revocation state is cached).
    const call = await api(srv.url, "GET", "/v2/users/alice/devices/sensor/temperature", { token });
    expect([call.status, call.text]).to.deep.equal([200, JSON.stringify({ out: 21.5 })]);
    const stats = await api(srv.url, "GET", "/v1/users/alice/devices/sensor/stats", { token });
    expect([stats.status, stats.body.connected]).to.deep.equal([200, true]);

    const restarted = answers.length;
    await fdb.start();

    // Recovery is the load's first store-backed 200 after the restart; /ready then answers 200 too.
    await log.next((a) => a.path.startsWith("/v1/") && a.status === 200, restarted, 40_000, "store-backed routes to recover").catch((err: Error) => {
      throw new Error(`${err.message}; last answers ${JSON.stringify(answers.slice(-4))}; FerretDB: ${fdb.process?.exitCode ?? "running"}`);
    });
    const readyAgain = await api(srv.url, "GET", "/ready");
    expect(readyAgain.status, readyAgain.text).to.equal(200);
    loading = false;
    await load;
    const relay = answers.filter((a) => a.path.startsWith("/v2/"));
    const stored = answers.filter((a) => a.path.startsWith("/v1/"));
    expect(relay.filter((a) => a.status !== 200), "relay calls that failed").to.deep.equal([]);
    const errors = () => srv.logs.filter((l) => l.includes('"level":50')).map((l) => l.slice(0, 600)).join("\n");
    for (const a of stored) {
      if (a.status === 200) continue;
      expect(a, `${a.path}\n${errors()}`).to.deep.equal({ path: a.path, status: 503, code: "service_unavailable", retryAfter: "5" });
    }
    expect(stored.filter((a) => a.status === 503).length, "store-backed calls that saw the outage").to.be.greaterThan(0);
    console.log(`      figures: outage under load: ${relay.length} relay calls all 200; ${stored.length} store-backed calls, ` +
      `${stored.filter((a) => a.status === 503).length} answered 503 service_unavailable, the rest 200, 0 hung`);
    const list = await api(srv.url, "GET", "/v1/users/alice/devices", { token });
    expect(list.status, list.text).to.equal(200);
    expect((list.body as Array<{ device: string }>).map((d) => d.device)).to.deep.equal(["sensor"]);
    const tokens = await api(srv.url, "GET", "/v1/users/alice/devices/sensor/tokens", { token });
    expect((tokens.body as Array<{ id: string }>).map((t) => t.id)).to.deep.equal([created.body.id]);
    expect((await api(srv.url, "GET", `/v2/users/alice/devices/sensor/temperature?authorization=${created.body.token}`)).status).to.equal(200);
    expect((await login(srv.url, "alice", "alice-password")).access_token).to.be.a("string");
    const again = await api(srv.url, "POST", "/v1/users/alice/devices", { token, json: { device_id: "after", device_description: "x", device_credentials: "s3cret-after" } });
    expect(again.status, again.text).to.equal(201);
  });

  it("FerretDB restarted three times in a row under load: the store recovers (a stuck driver client is replaced) and no call answers 500", async () => {
    let loading = true;
    const statuses = new Map<string, number>();
    const log = new LoadLog<string>();
    const worker = async () => {
      while (loading) {
        const res = await fetch(`${srv.url}/v1/users/alice/devices`, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
        const body = (await res.json().catch(() => undefined)) as { error?: { code?: string } } | undefined;
        const k = res.status === 200 ? "200" : `${res.status} ${body?.error?.code}`;
        statuses.set(k, (statuses.get(k) ?? 0) + 1);
        log.add(k);
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    // Each phase (up, then down) lasts until the load has sent 8 more requests through it: a marker in
    // requests, not in time. Down, each takes up to the server selection timeout.
    for (let i = 0; i < 3; i++) {
      await log.more(8, 30_000, `load before stop ${i + 1}`);
      await fdb.stop();
      await log.more(8, 30_000, `load during outage ${i + 1}`);
      await fdb.start();
    }
    await log.next((k) => k === "200", log.answers.length, 40_000, "store-backed routes to recover");
    expect((await api(srv.url, "GET", "/ready")).status).to.equal(200);
    loading = false;
    await load;
    expect([...statuses.keys()].filter((k) => k !== "200" && k !== "503 service_unavailable"), JSON.stringify([...statuses])).to.deep.equal([]);
    console.log(`      figures: 3 restarts under load: ${[...statuses].map(([k, n]) => `${n}× ${k}`).join(", ")}`);
  });
});
