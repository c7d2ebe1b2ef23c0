import { expect } from "chai";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { runBefore } from "./helpers/interleave.js";
import { sessionGone } from "./helpers/wait.js";

/** Device registry (DESIGN §4) and live sessions, over HTTP with raw devices on real sockets. */
describe("devices: registry and live sessions", () => {
  let srv: TestServer;
  let alice: string;
  let bob: string;
  const open: RawDevice[] = [];

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    alice = await newAccount(srv.url, admin.access_token, "alice");
    bob = await newAccount(srv.url, admin.access_token, "bob");
    await newDevice(srv.url, bob, "bob", "bobdev", "bob-secret");
  });
  afterEach(async () => {
    for (const d of open.splice(0)) d.kill();
  });
  after(async () => {
    await srv?.close();
  });

  const connect = async (device: string, credentials: string) => {
    const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device, credentials });
    open.push(d);
    return d;
  };
  const refused = async (device: string, credentials: string) => {
    const err = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device, credentials }).then(
      () => { throw new Error("connect unexpectedly accepted"); },
      (e: { close?: { code: number }; frame?: unknown }) => e,
    );
    return err as { close: { code: number }; frame: Record<string, unknown> };
  };
  const create = (json: unknown, token = alice) => api(srv.url, "POST", "/v1/users/alice/devices", { token, json });

  describe("POST /v1/users/{user}/devices", () => {
    it("creates a device: 201 with its view, not connected", async () => {
      const r = await create({ device_id: "created1", device_description: "kitchen", device_credentials: "c1-secret" });
      expect(r.status).to.equal(201);
      expect(r.body).to.deep.equal({ device: "created1", description: "kitchen", type: "Generic", connection: { active: false, ts: null } });
    });

    it("400 invalid_request when device_id or device_credentials is missing", async () => {
      for (const json of [{ device_description: "x", device_credentials: "c" }, { device_id: "nocreds", device_description: "x" }, {}]) {
        const r = await create(json);
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      expect((await api(srv.url, "GET", "/v1/users/alice/devices?id=nocreds", { token: alice })).body).to.deep.equal([]);
    });

    it("400 invalid_request for an id outside [a-zA-Z0-9_]{1,25}", async () => {
      for (const id of ["", "a-b", "a b", "x".repeat(26), "dé", "a/b", "..", 42, null]) {
        const r = await create({ device_id: id, device_description: "x", device_credentials: "c" });
        expect(r.status, String(id)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      const ok = await create({ device_id: "A".repeat(25), device_description: "", device_credentials: "c" });
      expect(ok.status).to.equal(201);
    });

    it("400 device_exists for a duplicate id, and the first device keeps its credentials", async () => {
      await create({ device_id: "dup", device_description: "first", device_credentials: "first-secret" });
      const r = await create({ device_id: "dup", device_description: "second", device_credentials: "second-secret" });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("device_exists");
      const get = await api(srv.url, "GET", "/v1/users/alice/devices/dup", { token: alice });
      expect(get.body.description).to.equal("first");
      const d = await connect("dup", "first-secret");
      expect(d.frames[0]!.type).to.equal("connected");
    });

    it("400 invalid_request for extra fields and non-object bodies; nothing is stored", async () => {
      for (const json of [
        { device_id: "extra1", device_description: "x", device_credentials: "c", user: "bob" },
        { device_id: "extra2", device_description: "x", device_credentials: "c", credentialsHash: "hmac-sha256$x$y" },
        [{ device_id: "extra3", device_credentials: "c" }],
      ]) {
        const r = await create(json);
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      expect(await srv.relay.services.repos.devices.count({ device: { $in: ["extra1", "extra2", "extra3"] } })).to.equal(0);
    });

    it("stores credentials only hashed (store document and files on disk)", async () => {
      const plain = "plaintext-credential-7f3a9c";
      await create({ device_id: "hashed", device_description: "x", device_credentials: plain });
      const doc = await srv.relay.services.repos.devices.findOne({ _id: "alice/hashed" });
      expect(doc).to.not.equal(null);
      expect(doc!.credentialsHash).to.match(/^hmac-sha256\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      expect(JSON.stringify(doc)).to.not.include(plain);
      // The embedded store's files (in the MongoDB pass, npm run test:mongo-api, the document above is all there is).
      if (srv.store.kind === "embedded") {
        const dir = join(srv.dataDir, "db");
        for (const f of await readdir(dir)) expect(await readFile(join(dir, f), "utf8"), f).to.not.include(plain);
      }
      // Same credentials, different salt: equal inputs never give equal stored values.
      await create({ device_id: "hashed2", device_description: "x", device_credentials: plain });
      const doc2 = await srv.relay.services.repos.devices.findOne({ _id: "alice/hashed2" });
      expect(doc2!.credentialsHash).to.not.equal(doc!.credentialsHash);
    });
  });

  describe("GET /v1/users/{user}/devices", () => {
    before(async () => {
      await newDevice(srv.url, alice, "alice", "list_a", "la");
      await newDevice(srv.url, alice, "alice", "list_b", "lb");
    });

    it("lists the account's devices with {device, description, connection}", async () => {
      const r = await api(srv.url, "GET", "/v1/users/alice/devices", { token: alice });
      expect(r.status).to.equal(200);
      const a = r.body.find((d: { device: string }) => d.device === "list_a");
      expect(a).to.deep.equal({ device: "list_a", description: "list_a test device", type: "Generic", connection: { active: false, ts: null } });
      expect(r.body.map((d: { device: string }) => d.device)).to.not.include("bobdev");
    });

    it("?id= filters to one device (or none)", async () => {
      const r = await api(srv.url, "GET", "/v1/users/alice/devices?id=list_b", { token: alice });
      expect(r.status).to.equal(200);
      expect(r.body.map((d: { device: string }) => d.device)).to.deep.equal(["list_b"]);
      const none = await api(srv.url, "GET", "/v1/users/alice/devices?id=bobdev", { token: alice });
      expect(none.status).to.equal(200);
      expect(none.body).to.deep.equal([]);
      const bad = await api(srv.url, "GET", "/v1/users/alice/devices?id=a-b", { token: alice });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal("invalid_request");
    });

    it("connection.active and connection.ts follow the live session", async () => {
      const before = Date.now();
      const d = await connect("list_a", "la");
      const on = (await api(srv.url, "GET", "/v1/users/alice/devices?id=list_a", { token: alice })).body[0];
      expect(on.connection.active).to.equal(true);
      expect(on.connection.ts).to.be.a("number").within(before, Date.now());
      const connectedTs = on.connection.ts as number;
      const killedAt = Date.now();
      d.kill();
      // The session ends, then its "seen now" is written to the store (batched, no other signal).
      await sessionGone(srv.relay.services.hub, "alice", "list_a");
      await srv.relay.admission.touchedWritten();
      const off = (await api(srv.url, "GET", "/v1/users/alice/devices/list_a", { token: alice })).body;
      expect(off.connection.active).to.equal(false);
      expect(off.connection.ts).to.be.above(connectedTs).and.at.most(Date.now());
      expect(off.connection.ts, "written when the session ended").to.be.at.least(killedAt);
    });
  });

  describe("GET/PUT/DELETE /v1/users/{user}/devices/{device}", () => {
    it("GET answers the view; a missing device is 404 device_not_found", async () => {
      await newDevice(srv.url, alice, "alice", "getme", "g");
      const r = await api(srv.url, "GET", "/v1/users/alice/devices/getme", { token: alice });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ device: "getme", description: "getme test device", type: "Generic", connection: { active: false, ts: null } });
      const missing = await api(srv.url, "GET", "/v1/users/alice/devices/nosuch", { token: alice });
      expect(missing.status).to.equal(404);
      expect(missing.body.error.code).to.equal("device_not_found");
    });

    it("PUT updates the description alone; credentials are unchanged", async () => {
      await newDevice(srv.url, alice, "alice", "upd1", "upd1-secret");
      const r = await api(srv.url, "PUT", "/v1/users/alice/devices/upd1", { token: alice, json: { device_description: "renamed" } });
      expect(r.status).to.equal(200);
      expect(r.body.description).to.equal("renamed");
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/upd1", { token: alice })).body.description).to.equal("renamed");
      const d = await connect("upd1", "upd1-secret");
      expect(d.frames[0]!.type).to.equal("connected");
    });

    it("PUT new credentials: the new ones work, the old ones are refused on the next connect", async () => {
      await newDevice(srv.url, alice, "alice", "upd2", "old-secret");
      const r = await api(srv.url, "PUT", "/v1/users/alice/devices/upd2", { token: alice, json: { device_credentials: "new-secret" } });
      expect(r.status).to.equal(200);
      expect(r.body.description).to.equal("upd2 test device");
      const old = await refused("upd2", "old-secret");
      expect(old.close.code).to.equal(4001);
      expect(old.frame).to.deep.equal({ type: "error", code: "unauthorized", message: "invalid device credentials" });
      const d = await connect("upd2", "new-secret");
      expect(d.frames[0]!.type).to.equal("connected");
    });

    it("PUT rejects extra fields, empty credentials and non-strings with 400; 404 for a missing device", async () => {
      await newDevice(srv.url, alice, "alice", "upd3", "u3");
      for (const json of [{ device_id: "other" }, { device_credentials: "" }, { device_description: 5 }, { credentialsHash: "x" }]) {
        const r = await api(srv.url, "PUT", "/v1/users/alice/devices/upd3", { token: alice, json });
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/upd3", { token: alice })).body.device).to.equal("upd3");
      const missing = await api(srv.url, "PUT", "/v1/users/alice/devices/nosuch", { token: alice, json: { device_description: "x" } });
      expect(missing.status).to.equal(404);
      expect(missing.body.error.code).to.equal("device_not_found");
    });

    it("DELETE answers 400 device_connected while the device is connected, then deletes it once offline", async () => {
      await newDevice(srv.url, alice, "alice", "del1", "d1");
      const d = await connect("del1", "d1");
      const r = await api(srv.url, "DELETE", "/v1/users/alice/devices/del1", { token: alice });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("device_connected");
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/del1", { token: alice })).status).to.equal(200);
      d.kill();
      await sessionGone(srv.relay.services.hub, "alice", "del1");
      const ok = await api(srv.url, "DELETE", "/v1/users/alice/devices/del1", { token: alice });
      expect(ok.status).to.equal(200);
      expect(ok.body).to.deep.equal({});
      const gone = await api(srv.url, "GET", "/v1/users/alice/devices/del1", { token: alice });
      expect(gone.status).to.equal(404);
      expect(gone.body.error.code).to.equal("device_not_found");
    });

    it("DELETE of a missing device is 404 device_not_found", async () => {
      const r = await api(srv.url, "DELETE", "/v1/users/alice/devices/nosuch", { token: alice });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_not_found");
    });

    it("DELETE removes the device's tokens: they stop working, and a new device with the same id does not revive them", async () => {
      await newDevice(srv.url, alice, "alice", "del2", "d2");
      const t = await api(srv.url, "POST", "/v1/users/alice/devices/del2/tokens", { token: alice, json: { token_name: "t" } });
      expect(t.status).to.equal(200);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/del2/stats", { token: t.body.token })).status).to.equal(200);
      expect((await api(srv.url, "DELETE", "/v1/users/alice/devices/del2", { token: alice })).status).to.equal(200);
      expect(await srv.relay.services.repos.deviceTokens.count({ user: "alice", device: "del2" })).to.equal(0);
      const after = await api(srv.url, "GET", "/v1/users/alice/devices/del2/stats", { token: t.body.token });
      expect(after.status).to.equal(401);
      expect(after.body.error.code).to.equal("unauthorized");
      await newDevice(srv.url, alice, "alice", "del2", "d2");
      const revived = await api(srv.url, "GET", "/v1/users/alice/devices/del2/stats", { token: t.body.token });
      expect(revived.status).to.equal(401);
      expect(revived.body.error.code).to.equal("unauthorized");
    });

    it("a token made while its device is deleted answers 404 and does not come back with a device re-created with the id", async () => {
      await newDevice(srv.url, alice, "alice", "race3", "r3");
      const del = runBefore(srv.relay.services.repos.deviceTokens, "insertOne",
        () => api(srv.url, "DELETE", "/v1/users/alice/devices/race3", { token: alice }), (doc: { device?: string }) => doc.device === "race3");
      try {
        const t = await api(srv.url, "POST", "/v1/users/alice/devices/race3/tokens", { token: alice, json: { token_name: "t" } });
        expect(del.ran().status).to.equal(200);
        expect(t.status).to.equal(404);
        expect(t.body.error.code).to.equal("device_not_found");
      } finally {
        del.restore();
      }
      await newDevice(srv.url, alice, "alice", "race3", "r3");
      expect(await srv.relay.services.repos.deviceTokens.count({ user: "alice", device: "race3" })).to.equal(0);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/race3/tokens", { token: alice })).body).to.deep.equal([]);
    });

    /**
     * Connects `device` while `change` runs to its end between the credential check's read of the device and the
     * session's registration (the order a slow store gives): the read saw the device as it was before the change.
     */
    async function connectAcross(device: string, credentials: string, change: () => Promise<{ status: number }>) {
      const devices = srv.relay.services.repos.devices;
      const findOne = devices.findOne;
      let changed: { status: number } | undefined;
      devices.findOne = async function (this: typeof devices, ...args: Parameters<typeof findOne>) {
        if (args[0]._id !== `alice/${device}`) return findOne.apply(this, args);
        devices.findOne = findOne;
        const before = await findOne.apply(this, args);
        changed = await change();
        return before;
      };
      try {
        const r = await refused(device, credentials);
        return { ...r, changed: changed! };
      } finally {
        devices.findOne = findOne;
      }
    }

    it("a device connecting with its old credentials while they are changed is closed 4001, not left connected", async () => {
      await newDevice(srv.url, alice, "alice", "race1", "old-secret");
      const r = await connectAcross("race1", "old-secret",
        () => api(srv.url, "PUT", "/v1/users/alice/devices/race1", { token: alice, json: { device_credentials: "new-secret" } }));
      expect(r.changed.status).to.equal(200);
      expect(r.close).to.deep.equal({ code: 4001, reason: "credentials changed" });
      expect(srv.relay.services.hub.get("alice", "race1")).to.equal(undefined);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/race1", { token: alice })).body.connection.active).to.equal(false);
      expect((await connect("race1", "new-secret")).frames[0]!.type).to.equal("connected");
    });

    it("a device connecting while it is deleted is closed 4004, not left connected to a device that is gone", async () => {
      await newDevice(srv.url, alice, "alice", "race2", "r2");
      const r = await connectAcross("race2", "r2", () => api(srv.url, "DELETE", "/v1/users/alice/devices/race2", { token: alice }));
      expect(r.changed.status).to.equal(200);
      expect(r.close).to.deep.equal({ code: 4004, reason: "device deleted" });
      expect(srv.relay.services.hub.get("alice", "race2")).to.equal(undefined);
    });
  });

  describe("another user's device answers exactly like a missing one", () => {
    const cases: Array<[string, string, unknown?]> = [
      ["GET", ""],
      ["PUT", "", { device_description: "pwned" }],
      ["DELETE", ""],
      ["DELETE", "/session"],
      ["GET", "/stats"],
      ["GET", "/tokens"],
      ["POST", "/tokens", { token_name: "steal" }],
    ];
    for (const [method, suffix, json] of cases) {
      it(`${method} /v1/users/bob/devices/{device}${suffix}`, async () => {
        const real = await api(srv.url, method, `/v1/users/bob/devices/bobdev${suffix}`, { token: alice, json });
        const missing = await api(srv.url, method, `/v1/users/bob/devices/nosuch${suffix}`, { token: alice, json });
        expect(real.status).to.equal(404);
        expect(real.body).to.deep.equal({ error: { code: "device_not_found", message: "device not found" } });
        expect(real.body).to.deep.equal(missing.body);
        expect(real.status).to.equal(missing.status);
      });
    }

    it("the list of another account answers like an account that does not exist; bob's device is untouched", async () => {
      const r = await api(srv.url, "GET", "/v1/users/bob/devices", { token: alice });
      const none = await api(srv.url, "GET", "/v1/users/nobody/devices", { token: alice });
      expect(r.status).to.equal(404);
      expect(r.body).to.deep.equal(none.body);
      expect(r.body.error.code).to.equal("user_not_found");
      const create = await api(srv.url, "POST", "/v1/users/bob/devices", { token: alice, json: { device_id: "planted", device_description: "", device_credentials: "x" } });
      expect(create.status).to.equal(404);
      expect(create.body.error.code).to.equal("user_not_found");
      const mine = await api(srv.url, "GET", "/v1/users/bob/devices", { token: bob });
      expect(mine.body).to.deep.equal([{ device: "bobdev", description: "bobdev test device", type: "Generic", connection: { active: false, ts: null } }]);
    });
  });

  describe("live sessions", () => {
    it("GET /v1/users/{user}/sessions lists the connected devices with address, time and counters", async () => {
      await newDevice(srv.url, alice, "alice", "sess1", "s1");
      const before = Date.now();
      await connect("sess1", "s1");
      const r = await api(srv.url, "GET", "/v1/users/alice/sessions", { token: alice });
      expect(r.status).to.equal(200);
      const s = r.body.find((x: { device: string }) => x.device === "sess1");
      expect(s).to.include({ device: "sess1", inflight: 0 });
      expect(s.ip_address).to.match(/127\.0\.0\.1$/);
      expect(s.connected_ts).to.be.within(before, Date.now());
      expect(s.rx_bytes).to.be.greaterThan(0);
      expect(s.tx_bytes).to.be.greaterThan(0);
      const other = await api(srv.url, "GET", "/v1/users/bob/sessions", { token: alice });
      expect(other.status).to.equal(404);
      expect(other.body.error.code).to.equal("user_not_found");
    });

    it("DELETE …/devices/{device}/session closes the socket with 4003 and the device shows offline", async () => {
      await newDevice(srv.url, alice, "alice", "sess2", "s2");
      const d = await connect("sess2", "s2");
      const r = await api(srv.url, "DELETE", "/v1/users/alice/devices/sess2/session", { token: alice });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({});
      expect((await d.closed).code).to.equal(4003);
      const list = await api(srv.url, "GET", "/v1/users/alice/sessions", { token: alice });
      expect(list.body.map((x: { device: string }) => x.device)).to.not.include("sess2");
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/sess2", { token: alice })).body.connection.active).to.equal(false);
      // The device may come back.
      const again = await connect("sess2", "s2");
      expect(again.frames[0]!.type).to.equal("connected");
    });

    it("DELETE …/session for an offline device is 404 device_offline, for a missing one 404 device_not_found", async () => {
      await newDevice(srv.url, alice, "alice", "sess3", "s3");
      const off = await api(srv.url, "DELETE", "/v1/users/alice/devices/sess3/session", { token: alice });
      expect(off.status).to.equal(404);
      expect(off.body.error.code).to.equal("device_offline");
      const missing = await api(srv.url, "DELETE", "/v1/users/alice/devices/nosuch/session", { token: alice });
      expect(missing.status).to.equal(404);
      expect(missing.body.error.code).to.equal("device_not_found");
    });
  });
});
