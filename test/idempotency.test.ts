import { expect } from "chai";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { IdempotencyKeys } from "../server/calls/idempotency.js";
import { holdUntilEntered } from "./helpers/interleave.js";
import { FakeClock } from "./helpers/fake-clock.js";

/** `Idempotency-Key` on `POST /v2/…` (issue 18, IETF httpapi Idempotency-Key draft). */
describe("Idempotency-Key on POST /v2", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  let bobToken: string;
  let device: Device;
  let bobDevice: Device;
  let runs = 0;
  let gate: Promise<void> | undefined;
  let k = 0;
  const key = () => `key-${++k}-${Date.now()}`;
  const v2 = (resource: string, user = "alice") => `/v2/users/${user}/devices/actuator/${resource}`;

  before(async () => {
    srv = await startServer({ env: { THINGRELAY_MAX_IDEMPOTENCY_KEYS: "40" } });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    bobToken = await newAccount(srv.url, admin.access_token, "bob");
    await newDevice(srv.url, token, "alice", "actuator", "s3cret");
    await newDevice(srv.url, token, "alice", "sleeper", "s3cret");
    await newDevice(srv.url, bobToken, "bob", "actuator", "s3cret");
    const make = (user: string) => {
      const d = new Device({ server: srv.wsUrl, user, device: "actuator", credentials: "s3cret" });
      d.io("move", async (steps: number) => {
        runs++;
        if (gate) await gate;
        return { moved: steps, run: runs };
      });
      d.input("jam", () => {
        runs++;
        throw new DeviceError(409, "jammed");
      });
      return d;
    };
    device = make("alice");
    bobDevice = make("bob");
    await device.connect();
    await bobDevice.connect();
  });
  after(async () => {
    await device?.close();
    await bobDevice?.close();
    await srv?.close();
  });

  it("a repeat with the same key and body answers the kept outcome without calling the device", async () => {
    const headers = { "Idempotency-Key": key() };
    const before = runs;
    const first = await api(srv.url, "POST", v2("move"), { token, json: { in: 5 }, headers });
    expect(first.status).to.equal(200);
    expect(first.headers.get("idempotent-replayed")).to.equal(null);
    const again = await api(srv.url, "POST", v2("move"), { token, json: { in: 5 }, headers });
    expect(again.status).to.equal(200);
    expect(again.body).to.deep.equal(first.body);
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
    expect(again.headers.get("content-type")).to.match(/application\/json/);
    expect(runs - before).to.equal(1);
  });

  it("the same key with another body is 422 idempotency_key_reused", async () => {
    const headers = { "Idempotency-Key": key() };
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers })).status).to.equal(200);
    const r = await api(srv.url, "POST", v2("move"), { token, json: { in: 2 }, headers });
    expect(r.status).to.equal(422);
    expect(r.body.error.code).to.equal("idempotency_key_reused");
    // Another resource is another request too.
    const other = await api(srv.url, "POST", v2("jam"), { token, json: { in: 1 }, headers });
    expect(other.status).to.equal(422);
  });

  it("QA F9: a retry with the body re-serialised (spaces, key order), `…/move/` or timeout=5.0 replays; another value is 422", async () => {
    const headers = { "Idempotency-Key": key(), "Content-Type": "application/json" };
    const before = runs;
    const first = await api(srv.url, "POST", `${v2("move")}?timeout=5`, { token, raw: '{"a":1,"b":{"c":2,"d":[1,{"x":1,"y":2}]}}', headers });
    expect(first.status).to.equal(200);
    for (const [path, raw] of [
      [`${v2("move")}?timeout=5`, '{"a":1, "b":{"c":2,"d":[1,{"x":1,"y":2}]}}'],
      [`${v2("move")}?timeout=5.0`, '{ "b": { "d": [1, {"y": 2, "x": 1}], "c": 2 }, "a": 1 }'],
      [`${v2("move/")}?timeout=5`, '{"b":{"c":2,"d":[1,{"x":1,"y":2}]},"a":1}'],
    ] as const) {
      const again = await api(srv.url, "POST", path, { token, raw, headers });
      expect(again.status, `${path} ${raw}`).to.equal(200);
      expect(again.headers.get("idempotent-replayed")).to.equal("true");
      expect(again.body).to.deep.equal(first.body);
    }
    expect(runs - before).to.equal(1);
    for (const [path, raw] of [
      [`${v2("move")}?timeout=5`, '{"a":1,"b":{"c":2,"d":[{"x":1,"y":2},1]}}'],
      [`${v2("move")}?timeout=5`, '{"a":"1","b":{"c":2,"d":[1,{"x":1,"y":2}]}}'],
      [`${v2("move")}?timeout=6`, '{"a":1,"b":{"c":2,"d":[1,{"x":1,"y":2}]}}'],
    ] as const) {
      const other = await api(srv.url, "POST", path, { token, raw, headers });
      expect(other.status, `${path} ${raw}`).to.equal(422);
      expect(other.body.error.code).to.equal("idempotency_key_reused");
    }
  });

  it("a repeat while the first is in flight is 409 idempotency_key_in_flight; afterwards it replays", async () => {
    const headers = { "Idempotency-Key": key() };
    let open!: () => void;
    gate = new Promise<void>((r) => (open = r));
    const before = runs;
    const first = api(srv.url, "POST", v2("move"), { token, json: { in: 3 }, headers });
    // The device has the call: the first request is in flight.
    while (runs === before) await new Promise((r) => setImmediate(r));
    const second = await api(srv.url, "POST", v2("move"), { token, json: { in: 3 }, headers });
    expect(second.status).to.equal(409);
    expect(second.body.error.code).to.equal("idempotency_key_in_flight");
    open();
    gate = undefined;
    expect((await first).status).to.equal(200);
    const third = await api(srv.url, "POST", v2("move"), { token, json: { in: 3 }, headers });
    expect(third.status).to.equal(200);
    expect(third.headers.get("idempotent-replayed")).to.equal("true");
    expect(runs - before).to.equal(1);
  });

  it("a device error is kept and replayed with its status", async () => {
    const headers = { "Idempotency-Key": key() };
    const before = runs;
    const first = await api(srv.url, "POST", v2("jam"), { token, json: { in: 1 }, headers });
    expect(first.status).to.equal(409);
    expect(first.body.error.code).to.equal("device_error");
    const again = await api(srv.url, "POST", v2("jam"), { token, json: { in: 1 }, headers });
    expect(again.status).to.equal(409);
    expect(again.body).to.deep.equal(first.body);
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
    expect(runs - before).to.equal(1);
  });

  it("an outcome where the device was not reached (offline) is not kept: the retry runs", async () => {
    const headers = { "Idempotency-Key": key() };
    const path = "/v2/users/alice/devices/sleeper/move";
    const off = await api(srv.url, "POST", path, { token, json: { in: 1 }, headers });
    expect(off.status).to.equal(404);
    expect(off.body.error.code).to.equal("device_offline");
    const sleeper = new Device({ server: srv.wsUrl, user: "alice", device: "sleeper", credentials: "s3cret" });
    sleeper.io("move", (v: number) => v + 1);
    await sleeper.connect();
    try {
      const on = await api(srv.url, "POST", path, { token, json: { in: 1 }, headers });
      expect(on.status).to.equal(200);
      expect(on.body).to.deep.equal({ out: 2 });
      expect(on.headers.get("idempotent-replayed")).to.equal(null);
    } finally {
      await sleeper.close();
    }
  });

  it("with Prefer: respond-async the 202 and its Location are replayed and only one call is queued", async () => {
    const headers = { "Idempotency-Key": key(), Prefer: "respond-async" };
    const first = await api(srv.url, "POST", v2("move"), { token, json: { in: 7 }, headers });
    expect(first.status).to.equal(202);
    const again = await api(srv.url, "POST", v2("move"), { token, json: { in: 7 }, headers });
    expect(again.status).to.equal(202);
    expect(again.headers.get("location")).to.equal(first.headers.get("location"));
    expect(again.headers.get("preference-applied")).to.equal("respond-async");
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
    expect(again.body.id).to.equal(first.body.id);
    expect(await srv.relay.services.repos.calls.count({ _id: first.body.id })).to.equal(1);
    // The same key without respond-async is another request.
    const sync = await api(srv.url, "POST", v2("move"), { token, json: { in: 7 }, headers: { "Idempotency-Key": headers["Idempotency-Key"] } });
    expect(sync.status).to.equal(422);
  });

  it("keys belong to one account: bob's identical key runs on bob's device", async () => {
    const headers = { "Idempotency-Key": "shared-key" };
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers })).status).to.equal(200);
    const bob = await api(srv.url, "POST", v2("move", "bob"), { token: bobToken, json: { in: 1 }, headers });
    expect(bob.status).to.equal(200);
    expect(bob.headers.get("idempotent-replayed")).to.equal(null);
  });

  it("a quoted key (the draft's sf-string) is the same key as the bare one", async () => {
    const raw = key();
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers: { "Idempotency-Key": `"${raw}"` } })).status).to.equal(200);
    const again = await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers: { "Idempotency-Key": raw } });
    expect(again.headers.get("idempotent-replayed")).to.equal("true");
  });

  it("malformed keys are 400 invalid_request: too long, non-ASCII, empty quotes", async () => {
    for (const bad of ["x".repeat(256), "clé", '""']) {
      const r = await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers: { "Idempotency-Key": bad } });
      expect(r.status, bad).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
    }
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers: { "Idempotency-Key": "x".repeat(255) } })).status).to.equal(200);
  });

  it("an unauthorized caller gets 403 before any replay", async () => {
    const headers = { "Idempotency-Key": key() };
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers })).status).to.equal(200);
    const t = await api(srv.url, "POST", "/v1/users/alice/devices/actuator/tokens", { token, json: { token_name: "lim", token_resources: ["jam"] } });
    const r = await api(srv.url, "POST", v2("move"), { token: t.body.token, json: { in: 1 }, headers });
    expect(r.status).to.equal(403);
    expect(r.body.error.code).to.equal("forbidden");
  });

  it("a first request cut by a crash (lease over) answers 502 call_interrupted, and the device is not called", async () => {
    const keys = srv.relay.services.idempotency;
    const fp = IdempotencyKeys.fingerprint(["x"]);
    // Claimed by a process that then crashed (its clock stands still: it never renews the lease).
    const crashed = new IdempotencyKeys(srv.relay.services.repos, 40, new FakeClock(Date.now()));
    expect((await crashed.begin("alice", "crashed", fp, -1)).kind).to.equal("new");
    const r = await keys.begin("alice", "crashed", fp, 1000);
    expect(r.kind).to.equal("replay");
    if (r.kind !== "replay") return;
    expect(r.outcome.status).to.equal(502);
    expect(JSON.parse(r.outcome.body).error.code).to.equal("call_interrupted");
  });

  describe("a first request that outlives its lease", () => {
    // The tests above leave alice at her bound of live keys.
    beforeEach(async () => {
      await srv.relay.services.repos.idempotency.deleteMany({ user: "alice" });
    });
    const fingerprintOf = (input: unknown) => IdempotencyKeys.callFingerprint({
      device: "actuator", resource: "move", queued: false, ttlS: null, timeoutMs: srv.relay.services.config.limits.callTimeoutMs, hasInput: true, input,
    });
    /** Starts a POST whose device call is held until `release`; resolves once the device has the call. */
    async function held(input: number, headers: Record<string, string>) {
      let open!: () => void;
      gate = new Promise<void>((r) => (open = r));
      const before = runs;
      const first = api(srv.url, "POST", v2("move"), { token, json: { in: input }, headers });
      while (runs === before) await new Promise((r) => setImmediate(r));
      return { first, before, release: () => { open(); gate = undefined; } };
    }
    /** The lease lapses without being renewed: what an event-loop stall or a slow store longer than it does. */
    const lapse = () => srv.relay.services.repos.idempotency.updateMany({ user: "alice", state: "in_flight" }, { $set: { leaseTs: 0 } });
    /** Once the held request ends: it answered 200, and a retry replays that answer without calling the device again. */
    async function expectReplayed(h: Awaited<ReturnType<typeof held>>, input: number, headers: Record<string, string>) {
      const first = await h.first;
      expect(first.status).to.equal(200);
      const again = await api(srv.url, "POST", v2("move"), { token, json: { in: input }, headers });
      expect(again.status).to.equal(200);
      expect(again.headers.get("idempotent-replayed")).to.equal("true");
      expect(again.body).to.deep.equal(first.body);
      expect(runs - h.before).to.equal(1);
    }

    it("a retry on its node while it still runs is 409 idempotency_key_in_flight, and its outcome is kept", async () => {
      const headers = { "Idempotency-Key": key() };
      const h = await held(4, headers);
      try {
        expect(await lapse()).to.equal(1);
        const retry = await api(srv.url, "POST", v2("move"), { token, json: { in: 4 }, headers });
        expect(retry.status, retry.text).to.equal(409);
        expect(retry.body.error.code).to.equal("idempotency_key_in_flight");
      } finally {
        h.release();
      }
      await expectReplayed(h, 4, headers);
    });

    it("a retry on another node answers call_interrupted; the first request's outcome, when it ends, is replayed after", async () => {
      const k = key();
      const headers = { "Idempotency-Key": k };
      const h = await held(6, headers);
      // Another cluster node on the same store cannot tell a stalled first request from one whose node crashed.
      const other = new IdempotencyKeys(srv.relay.services.repos, 40);
      try {
        expect(await lapse()).to.equal(1);
        const retry = await other.begin("alice", k, fingerprintOf(6), 1000);
        expect(retry.kind).to.equal("replay");
        if (retry.kind === "replay") expect(JSON.parse(retry.outcome.body).error.code).to.equal("call_interrupted");
      } finally {
        h.release();
      }
      await expectReplayed(h, 6, headers);
    });

    it("its lease is renewed while it runs: a retry on another node past the first lease is 409", async () => {
      // Two nodes on one clock; node A claims the key and its request goes on past the lease it was given.
      const clock = new FakeClock(Date.now());
      const repos = srv.relay.services.repos;
      const a = new IdempotencyKeys(repos, 40, clock);
      const b = new IdempotencyKeys(repos, 40, clock);
      const fp = IdempotencyKeys.fingerprint(["renewed"]);
      const begun = await a.begin("alice", "renewed", fp, 1_000);
      expect(begun.kind).to.equal("new");
      // The renewals A's timer makes of this key as time passes, awaited before B looks. (Only this key's: keys
      // that earlier tests claimed without finishing renew theirs on the real clock meanwhile.)
      const writes: Promise<number>[] = [];
      // While set, this key's renewals are held in flight until it opens.
      let gate: Promise<void> | undefined;
      const { updateOne } = repos.idempotency;
      repos.idempotency.updateOne = function (this: typeof repos.idempotency, ...args) {
        let w = updateOne.apply(this, args);
        if (begun.kind === "new" && (args[0] as { _id?: unknown })._id === begun.id) {
          const g = gate;
          if (g) w = w.then((n) => g.then(() => n));
          writes.push(w);
        }
        return w;
      };
      try {
        // Each renewal lands before the next is due, as at the real interval (half the lease, ~17 s by default).
        for (let i = 0; i < 5; i++) {
          await clock.advance(500);
          await Promise.all(writes);
        }
        // A renewal still in flight when the next is due is not doubled (a slow one landing after a newer one
        // would shorten the lease): two ticks while the first is held write once.
        let open!: () => void;
        gate = new Promise<void>((r) => (open = r));
        await clock.advance(500);
        await clock.advance(500);
        open();
        await Promise.all(writes);
      } finally {
        repos.idempotency.updateOne = updateOne;
      }
      expect(writes.length).to.equal(6);
      const retry = await b.begin("alice", "renewed", fp, 1_000).then(() => null, (e: { code?: string }) => e);
      expect(retry?.code).to.equal("idempotency_key_in_flight");
      if (begun.kind === "new") await a.finish(begun.id, { status: 200, body: "done", headers: {} });
      const after = await b.begin("alice", "renewed", fp, 1_000);
      expect(after.kind === "replay" && after.outcome.body).to.equal("done");
      // Finished: A renews nothing any more.
      expect(clock.size).to.equal(0);
    });
  });

  it("two new keys in parallel at one below the bound: one call runs, the other answers 429", async () => {
    const keys = srv.relay.services.idempotency;
    const live = await srv.relay.services.repos.idempotency.count({ user: "bob" });
    for (let i = live; i < 39; i++) expect((await keys.begin("bob", `filler-${i}`, "fp", 1000)).kind).to.equal("new");
    const hold = holdUntilEntered(keys, "begin", 2, srv.relay.services.repos.idempotency, "count", (q: { user?: string }) => q.user === "bob");
    let rs;
    try {
      rs = await Promise.all([1, 2].map((n) => api(srv.url, "POST", v2("move", "bob"), { token: bobToken, json: { in: n }, headers: { "Idempotency-Key": key() } })));
    } finally {
      hold.restore();
    }
    expect(hold.entered()).to.equal(2);
    expect(rs.map((r) => r.status).sort()).to.deep.equal([200, 429]);
    expect(rs.find((r) => r.status === 429)!.body.error.code).to.equal("too_many_idempotency_keys");
    expect(await srv.relay.services.repos.idempotency.count({ user: "bob" })).to.equal(40);
    await srv.relay.services.repos.idempotency.deleteMany({ user: "bob" });
  });

  it("keys per account are bounded: 429 too_many_idempotency_keys with Retry-After", async () => {
    const live = await srv.relay.services.repos.idempotency.count({ user: "alice" });
    for (let i = live; i < 40; i++) {
      const r = await api(srv.url, "POST", v2("move"), { token, json: { in: i }, headers: { "Idempotency-Key": key() } });
      expect(r.status).to.equal(200);
    }
    const r = await api(srv.url, "POST", v2("move"), { token, json: { in: 1 }, headers: { "Idempotency-Key": key() } });
    expect(r.status).to.equal(429);
    expect(r.body.error.code).to.equal("too_many_idempotency_keys");
    expect(r.headers.get("retry-after")).to.be.a("string");
    // Requests without a key are not affected.
    expect((await api(srv.url, "POST", v2("move"), { token, json: { in: 1 } })).status).to.equal(200);
  });
});
