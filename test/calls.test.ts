import { expect } from "chai";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { holdUntilEntered, runBefore } from "./helpers/interleave.js";
import { onceWhere, whenState } from "./helpers/wait.js";
import { EventEmitter } from "node:events";
import { closeAllSse, sse } from "./helpers/sse.js";
import { newCallId, type CallView } from "../server/calls/queue.js";

const ASYNC = { Prefer: "respond-async" };

/** Queued calls (issue 18): `Prefer: respond-async`, delivery on connect, status, cancel, ttl, limits, events. */
describe("queued calls (Prefer: respond-async)", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  const devices: Device[] = [];
  const raws: RawDevice[] = [];
  let n = 0;
  const v2 = (device: string, resource: string) => `/v2/users/alice/devices/${device}/${resource}`;
  const callPath = (device: string, id = "") => `/v1/users/alice/devices/${device}/calls${id ? `/${id}` : ""}`;

  async function freshDevice(): Promise<string> {
    const name = `d${++n}`;
    await newDevice(srv.url, token, "alice", name, "s3cret");
    return name;
  }
  function sdk(name: string, log: unknown[] = []): Device {
    const d = new Device({ server: srv.wsUrl, user: "alice", device: name, credentials: "s3cret", reconnectInitialMs: 50, reconnectMaxMs: 100 });
    devices.push(d);
    d.input("relay", (v: unknown) => {
      log.push(v);
    });
    d.io("double", (v: number) => v * 2);
    d.input("fail", () => {
      throw new DeviceError(409, "door is open");
    });
    return d;
  }
  /** Every call the server's queue reported finished (`done`, emitted once the final state is stored), by id. */
  const finished = new Map<string, CallView>();
  const finishing = new EventEmitter();
  /** Waits for the call to finish, then answers its status as the API shows it, which must be `status`. */
  async function waitStatus(device: string, id: string, status: string): Promise<any> {
    await whenState(finishing, "done", () => finished.has(id), 8000, `call ${id} to finish`);
    const last = (await api(srv.url, "GET", callPath(device, id), { token })).body;
    expect(last?.status, `call ${id} ${status} (last: ${JSON.stringify(last)})`).to.equal(status);
    return last;
  }

  before(async () => {
    srv = await startServer({ env: { THINGRELAY_MAX_QUEUED_PER_DEVICE: "3", THINGRELAY_MAX_QUEUED_PER_USER: "5" } });
    srv.relay.services.calls.on("done", ({ call }) => {
      finished.set(call.id, call);
      finishing.emit("done");
    });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
  });
  afterEach(async () => {
    closeAllSse();
    for (const d of devices.splice(0)) await d.close();
    for (const r of raws.splice(0)) await r.close();
  });
  after(async () => {
    await srv?.close();
  });

  it("answers 202 with Location, Preference-Applied and the queued call; an online device runs it at once", async () => {
    const name = await freshDevice();
    const d = sdk(name);
    await d.connect();
    const r = await api(srv.url, "POST", v2(name, "double"), { token, json: { in: 21 }, headers: ASYNC });
    expect(r.status, r.text).to.equal(202);
    expect(r.headers.get("preference-applied")).to.equal("respond-async");
    expect(r.body).to.include({ resource: "double", done_ts: null });
    expect(r.body.status).to.be.oneOf(["queued", "running"]);
    expect(r.headers.get("location")).to.equal(`/v1/users/alice/devices/${name}/calls/${r.body.id}`);
    const done = await waitStatus(name, r.body.id, "succeeded");
    expect(done.out).to.equal(42);
    expect(done.done_ts).to.be.at.least(done.created_ts);
    expect(Object.keys(done).sort()).to.deep.equal(["created_ts", "done_ts", "id", "out", "resource", "status"]);
  });

  it("keeps calls for an offline device and delivers them in order when it connects", async () => {
    const name = await freshDevice();
    const ids: string[] = [];
    for (const v of [1, 2, 3]) {
      const r = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: v }, headers: ASYNC });
      expect(r.status).to.equal(202);
      expect(r.body.status).to.equal("queued");
      ids.push(r.body.id);
    }
    expect((await api(srv.url, "GET", callPath(name, ids[0]), { token })).body.status).to.equal("queued");
    const log: unknown[] = [];
    await sdk(name, log).connect();
    for (const id of ids) await waitStatus(name, id, "succeeded");
    expect(log).to.deep.equal([1, 2, 3]);
  });

  it("QA F4: a queued POST on an output of an online device answers 405 (Allow: GET), an unknown resource 404; nothing is queued", async () => {
    const name = await freshDevice();
    let reads = 0;
    const d = sdk(name).output("temp", () => ++reads);
    await d.connect();
    const r = await api(srv.url, "POST", v2(name, "temp"), { token, json: { in: true }, headers: ASYNC });
    expect(r.status, r.text).to.equal(405);
    expect(r.body.error.code).to.equal("method_not_allowed");
    expect(r.headers.get("allow")).to.equal("GET");
    const nope = await api(srv.url, "POST", v2(name, "nope"), { token, json: { in: true }, headers: ASYNC });
    expect(nope.status).to.equal(404);
    expect(nope.body.error.code).to.equal("resource_not_found");
    expect((await api(srv.url, "GET", callPath(name), { token })).body).to.deep.equal([]);
    expect(reads).to.equal(0);
  });

  it("a queued POST on a resource's /api answers 405 (Allow: GET) like the synchronous one, online or offline; nothing is queued", async () => {
    const name = await freshDevice();
    for (const path of [v2(name, "double/api"), v2(name, "a/b/api"), v2(name, "api")]) {
      const r = await api(srv.url, "POST", path, { token, json: { in: 1 }, headers: ASYNC });
      expect(r.status, `${path} ${r.text}`).to.equal(405);
      expect(r.body.error.code).to.equal("method_not_allowed");
      expect(r.headers.get("allow")).to.equal("GET");
    }
    await sdk(name).connect();
    const online = await api(srv.url, "POST", v2(name, "double/api"), { token, json: { in: 1 }, headers: ASYNC });
    expect(online.status, online.text).to.equal(405);
    expect(online.headers.get("allow")).to.equal("GET");
    expect((await api(srv.url, "GET", callPath(name), { token })).body).to.deep.equal([]);
  });

  it("QA F4: a queued POST on an output accepted while the device was offline ends failed with method_not_allowed, never run", async () => {
    const name = await freshDevice();
    const r = await api(srv.url, "POST", v2(name, "temp"), { token, json: { in: true }, headers: ASYNC });
    expect(r.status).to.equal(202);
    let reads = 0;
    const ok = await api(srv.url, "POST", v2(name, "double"), { token, json: { in: 2 }, headers: ASYNC });
    await sdk(name).output("temp", () => ++reads).connect();
    const done = await waitStatus(name, r.body.id, "failed");
    expect(done.error).to.include({ code: "method_not_allowed", status: 405 });
    expect((await waitStatus(name, ok.body.id, "succeeded")).out).to.equal(4);
    expect(reads).to.equal(0);
  });

  it("a device error leaves the call failed with the device's status and message", async () => {
    const name = await freshDevice();
    await sdk(name).connect();
    const r = await api(srv.url, "POST", v2(name, "fail"), { token, json: { in: 1 }, headers: ASYNC });
    const done = await waitStatus(name, r.body.id, "failed");
    expect(done.error).to.deep.equal({ code: "device_error", message: "door is open", status: 409 });
  });

  it("DELETE cancels a queued call, which is then never delivered; a second DELETE is 409 call_not_queued", async () => {
    const name = await freshDevice();
    const first = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: "cancelled" }, headers: ASYNC });
    const second = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: "kept" }, headers: ASYNC });
    const del = await api(srv.url, "DELETE", callPath(name, first.body.id), { token });
    expect(del.status).to.equal(200);
    expect(del.body.status).to.equal("cancelled");
    expect(del.body.done_ts).to.be.a("number");
    const again = await api(srv.url, "DELETE", callPath(name, first.body.id), { token });
    expect(again.status).to.equal(409);
    expect(again.body.error.code).to.equal("call_not_queued");
    const log: unknown[] = [];
    await sdk(name, log).connect();
    await waitStatus(name, second.body.id, "succeeded");
    expect(log).to.deep.equal(["kept"]);
    expect((await api(srv.url, "GET", callPath(name, first.body.id), { token })).body.status).to.equal("cancelled");
    const late = await api(srv.url, "DELETE", callPath(name, second.body.id), { token });
    expect(late.status).to.equal(409);
    expect(late.body.error.code).to.equal("call_not_queued");
  });

  it("a call past its ttl is expired and never delivered", async () => {
    const name = await freshDevice();
    const r = await api(srv.url, "POST", `${v2(name, "relay")}?ttl=60`, { token, json: { in: "late" }, headers: ASYNC });
    expect(r.status).to.equal(202);
    const doc = await srv.relay.services.repos.calls.findOne({ _id: r.body.id });
    expect(doc!.expiresTs - doc!.createdTs).to.equal(60_000);
    // Time passing, without sleeping: the deadline moves into the past.
    await srv.relay.services.repos.calls.updateOne({ _id: r.body.id }, { $set: { expiresTs: Date.now() - 1 } });
    const kept = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: "fresh" }, headers: ASYNC });
    const log: unknown[] = [];
    await sdk(name, log).connect();
    await waitStatus(name, kept.body.id, "succeeded");
    expect(log).to.deep.equal(["fresh"]);
    const expired = (await api(srv.url, "GET", callPath(name, r.body.id), { token })).body;
    expect(expired.status).to.equal("expired");
    expect(expired.error).to.equal(undefined);
    expect(expired.done_ts).to.be.a("number");
  });

  it("bad ?ttl= is 400 invalid_request (default 3600 s, max 604800 s)", async () => {
    const name = await freshDevice();
    for (const ttl of ["0", "604801", "abc", "1.5", "-1"]) {
      const r = await api(srv.url, "POST", `${v2(name, "relay")}?ttl=${ttl}`, { token, json: { in: 1 }, headers: ASYNC });
      expect(r.status, ttl).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
    }
    const max = await api(srv.url, "POST", `${v2(name, "relay")}?ttl=604800`, { token, json: { in: 1 }, headers: ASYNC });
    expect(max.status).to.equal(202);
    const dflt = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: 1 }, headers: ASYNC });
    const doc = await srv.relay.services.repos.calls.findOne({ _id: dflt.body.id });
    expect(doc!.expiresTs - doc!.createdTs).to.equal(3_600_000);
    await srv.relay.services.repos.calls.deleteMany({ deviceKey: `alice/${name}` });
  });

  it("a device that drops mid-call leaves it failed with device_disconnected, and it is not sent again", async () => {
    const name = await freshDevice();
    const raw = await RawDevice.described(srv.wsUrl, "alice", name, "s3cret", { relay: "input" });
    raws.push(raw);
    const r = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: "once" }, headers: ASYNC });
    const frame = await raw.take((f) => f.type === "call");
    expect(frame.in).to.equal("once");
    await raw.close();
    const failed = await waitStatus(name, r.body.id, "failed");
    expect(failed.error.code).to.equal("device_disconnected");
    // Reconnected: the next call it receives is a new one, not the one that failed.
    const again = await RawDevice.described(srv.wsUrl, "alice", name, "s3cret", { relay: "input" });
    raws.push(again);
    const next = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: "twice" }, headers: ASYNC });
    const f2 = await again.take((f) => f.type === "call");
    expect(f2.in).to.equal("twice");
    again.ws.send(JSON.stringify({ type: "result", id: f2.id }));
    await waitStatus(name, next.body.id, "succeeded");
  });

  it("a call the device is too busy to take (device_busy) stays queued and is delivered once when it can be", async () => {
    const busy = await startServer({ env: { THINGRELAY_MAX_INFLIGHT: "1" } });
    try {
      const admin = await login(busy.url, ADMIN.user, ADMIN.password);
      const t = await newAccount(busy.url, admin.access_token, "alice");
      await newDevice(busy.url, t, "alice", "busy", "s3cret");
      const raw = await RawDevice.described(busy.wsUrl, "alice", "busy", "s3cret", { relay: "input", slow: "output" });
      raws.push(raw);
      const sync = api(busy.url, "GET", "/v2/users/alice/devices/busy/slow", { token: t });
      const held = await raw.take((f) => f.type === "call");
      expect(held.resource).to.equal("slow");
      const q = await api(busy.url, "POST", "/v2/users/alice/devices/busy/relay", { token: t, json: { in: 1 }, headers: ASYNC });
      expect(q.status).to.equal(202);
      // The only slot is taken: the session refuses the queued call (device_busy), which goes back to the queue
      // and is tried again once the slot is free.
      raw.ws.send(JSON.stringify({ type: "result", id: held.id, out: 1 }));
      expect((await sync).status).to.equal(200);
      const delivered = await raw.take((f) => f.type === "call");
      expect(delivered).to.include({ resource: "relay", in: 1 });
      const done = onceWhere<[{ call: CallView }]>(busy.relay.services.calls, "done", (e) => e.call.id === q.body.id, 8000, "the queued call to finish");
      raw.ws.send(JSON.stringify({ type: "result", id: delivered.id }));
      await done;
      expect((await api(busy.url, "GET", `/v1/users/alice/devices/busy/calls/${q.body.id}`, { token: t })).body.status).to.equal("succeeded");
      expect(raw.frames.filter((f) => f.type === "call" && f.resource === "relay")).to.have.length(1);
    } finally {
      await busy.close();
    }
  });

  it("per-device and per-account limits answer 429 queue_full with Retry-After", async () => {
    const a = await freshDevice();
    const b = await freshDevice();
    for (let i = 0; i < 3; i++) expect((await api(srv.url, "POST", v2(a, "relay"), { token, json: { in: i }, headers: ASYNC })).status).to.equal(202);
    const full = await api(srv.url, "POST", v2(a, "relay"), { token, json: { in: 9 }, headers: ASYNC });
    expect(full.status).to.equal(429);
    expect(full.body.error.code).to.equal("queue_full");
    expect(full.body.error.message).to.match(/per device/);
    expect(Number(full.headers.get("retry-after"))).to.be.greaterThan(0);
    for (let i = 0; i < 2; i++) expect((await api(srv.url, "POST", v2(b, "relay"), { token, json: { in: i }, headers: ASYNC })).status).to.equal(202);
    const account = await api(srv.url, "POST", v2(b, "relay"), { token, json: { in: 9 }, headers: ASYNC });
    expect(account.status).to.equal(429);
    expect(account.body.error.code).to.equal("queue_full");
    expect(account.body.error.message).to.match(/per account/);
    expect(account.headers.get("retry-after")).to.be.a("string");
    await srv.relay.services.repos.calls.deleteMany({ user: "alice" });
  });

  it("two calls queued in parallel at one below the device's limit: one is queued, the other answers 429", async () => {
    await srv.relay.services.repos.calls.deleteMany({ user: "alice" });
    const name = await freshDevice();
    for (let i = 0; i < 2; i++) expect((await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: i }, headers: ASYNC })).status).to.equal(202);
    const hold = holdUntilEntered(srv.relay.services.calls, "enqueue", 2, srv.relay.services.repos.calls, "count", (q: { user?: string; deviceKey?: string }) => q.deviceKey === `alice/${name}`);
    let rs;
    try {
      rs = await Promise.all([7, 8].map((v) => api(srv.url, "POST", v2(name, "relay"), { token, json: { in: v }, headers: ASYNC })));
    } finally {
      hold.restore();
    }
    expect(hold.entered()).to.equal(2);
    expect(rs.map((r) => r.status).sort()).to.deep.equal([202, 429]);
    expect(rs.find((r) => r.status === 429)!.body.error.code).to.equal("queue_full");
    expect(await srv.relay.services.repos.calls.count({ deviceKey: `alice/${name}`, status: "queued" })).to.equal(3);
    await srv.relay.services.repos.calls.deleteMany({ user: "alice" });
  });

  it("GET …/calls lists newest first with ?page=&limit=, X-Total-Count and Link", async () => {
    const name = await freshDevice();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: i }, headers: ASYNC })).body.id);
    const all = await api(srv.url, "GET", callPath(name), { token });
    expect(all.status).to.equal(200);
    expect(all.body.map((c: { id: string }) => c.id)).to.deep.equal([...ids].reverse());
    expect(all.headers.get("x-total-count")).to.equal("3");
    const page2 = await api(srv.url, "GET", `${callPath(name)}?limit=1&page=2`, { token });
    expect(page2.body.map((c: { id: string }) => c.id)).to.deep.equal([ids[1]]);
    expect(page2.headers.get("link")).to.include('rel="next"').and.include('rel="prev"');
    expect((await api(srv.url, "GET", `${callPath(name)}?limit=0`, { token })).status).to.equal(400);
    await srv.relay.services.repos.calls.deleteMany({ user: "alice" });
  });

  it("a call queued while its device is deleted answers 404 and is never delivered to a device re-created with the id", async () => {
    const name = await freshDevice();
    const del = runBefore(srv.relay.services.repos.calls, "insertOne",
      () => api(srv.url, "DELETE", `/v1/users/alice/devices/${name}`, { token }), (doc: { device?: string }) => doc.device === name);
    try {
      const r = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: true }, headers: ASYNC });
      expect(del.ran().status).to.equal(200);
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_not_found");
    } finally {
      del.restore();
    }
    await newDevice(srv.url, token, "alice", name, "s3cret");
    expect(await srv.relay.services.repos.calls.count({ deviceKey: `alice/${name}` })).to.equal(0);
    expect((await api(srv.url, "GET", callPath(name), { token })).body).to.deep.equal([]);
  });

  it("unknown calls are 404 call_not_found; an unknown device is 404 device_not_found", async () => {
    const name = await freshDevice();
    for (const id of ["AAAAAAAAAAAAAAAA", "bad"]) {
      const r = await api(srv.url, "GET", callPath(name, id), { token });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("call_not_found");
    }
    const r = await api(srv.url, "POST", v2("ghost", "relay"), { token, json: { in: 1 }, headers: ASYNC });
    expect(r.status).to.equal(404);
    expect(r.body.error.code).to.equal("device_not_found");
  });

  it("a resource-limited device token enqueues its resource only and reads only its calls", async () => {
    const name = await freshDevice();
    const t = await api(srv.url, "POST", `/v1/users/alice/devices/${name}/tokens`, { token, json: { token_name: "lim", token_resources: ["relay"] } });
    const mine = await api(srv.url, "POST", v2(name, "relay"), { token: t.body.token, json: { in: 1 }, headers: ASYNC });
    expect(mine.status).to.equal(202);
    const other = await api(srv.url, "POST", v2(name, "double"), { token, json: { in: 1 }, headers: ASYNC });
    expect((await api(srv.url, "POST", v2(name, "double"), { token: t.body.token, json: { in: 1 }, headers: ASYNC })).status).to.equal(403);
    expect((await api(srv.url, "GET", callPath(name, other.body.id), { token: t.body.token })).status).to.equal(403);
    const list = await api(srv.url, "GET", callPath(name), { token: t.body.token });
    expect(list.body.map((c: { id: string }) => c.id)).to.deep.equal([mine.body.id]);
    await srv.relay.services.repos.calls.deleteMany({ user: "alice" });
  });

  it("a finished queued call is a `call` event on the account stream", async () => {
    const name = await freshDevice();
    const stream = await sse(`${srv.url}/v1/users/alice/events?device=${name}`, { Authorization: `Bearer ${token}` });
    expect(stream.status).to.equal(200);
    const r = await api(srv.url, "POST", v2(name, "double"), { token, json: { in: 4 }, headers: ASYNC });
    await sdk(name).connect();
    const ev = await stream.next((e) => e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === "call");
    const data = JSON.parse(ev.data);
    expect(data).to.include({ type: "call", device: name, id: r.body.id, status: "succeeded", out: 8 });
  });

  it("a `call` event reaches a token only if it may read that call (AccessDeviceResources on its resource), live and replayed", async () => {
    const name = await freshDevice();
    const limited = await api(srv.url, "POST", "/v1/users/alice/tokens", {
      token, json: { name: `events ${name}`, allow: { Device: { [name]: ["ReadEvents", { AccessDeviceResources: ["relay"] }] } } },
    });
    const isCall = (e: { event?: string; data: string }) => e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === "call";
    const all = await sse(`${srv.url}/v1/users/alice/events?device=${name}`, { Authorization: `Bearer ${token}` });
    const some = await sse(`${srv.url}/v1/users/alice/events?device=${name}`, { Authorization: `Bearer ${limited.body.token}` });
    const secret = await api(srv.url, "POST", v2(name, "double"), { token, json: { in: 21 }, headers: ASYNC });
    const open = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: true }, headers: ASYNC });
    expect((await api(srv.url, "GET", callPath(name, secret.body.id), { token: limited.body.token })).status).to.equal(403);
    await sdk(name).connect();
    const seen = [await all.next(isCall), await all.next(isCall)];
    expect(seen.map((e) => JSON.parse(e.data).id)).to.have.members([secret.body.id, open.body.id]);
    // Events reach both streams in one order: the limited one's first call event is the relay's, never the double's `out`.
    const mine = JSON.parse((await some.next(isCall)).data);
    expect(mine).to.include({ id: open.body.id, resource: "relay", status: "succeeded" });
    // Replayed from before both events: still only the relay's.
    const first = seen[0]!.id!;
    const before = `${first.split("-")[0]}-${Number(first.split("-")[1]) - 1}`;
    const replay = await sse(`${srv.url}/v1/users/alice/events?device=${name}`, { Authorization: `Bearer ${limited.body.token}`, "Last-Event-ID": before });
    const replayed = JSON.parse((await replay.next(isCall)).data);
    expect(replayed).to.include({ id: open.body.id });
    const marker = await api(srv.url, "POST", v2(name, "relay"), { token, json: { in: false }, headers: ASYNC });
    expect(JSON.parse((await replay.next(isCall)).data).id).to.equal(marker.body.id);
  });
});

describe("queued call ids", () => {
  it("are 16 base64url characters that never start with '-' (the CLI would take the id for an option)", () => {
    // One id in 64 would start with "-" if drawn plainly: 4000 ids all pass only then with odds ~1e-27.
    const ids = Array.from({ length: 4000 }, () => newCallId());
    for (const id of ids) expect(id).to.match(/^[A-Za-z0-9_][A-Za-z0-9_-]{15}$/);
    expect(new Set(ids).size).to.equal(ids.length);
  });
});
