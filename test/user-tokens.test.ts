import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice, type ApiResponse } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { cacheKey } from "../server/auth/authenticator.js";

type Perm = { action: string; target?: string; resources?: string[] };
/** Thinger's shape: {Type|"*": {device|"*": "*" | [action | {action: resource|[resources]}]}}. */
type Thinger = Record<string, Record<string, unknown>>;

function payload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

/** User access tokens (issue 4): Thinger's allow/deny model, one action and target at a time. */
describe("user access tokens", function () {
  this.timeout(30_000);
  let srv: TestServer;
  let alice: string;
  let bob: string;
  const devices: RawDevice[] = [];
  let seq = 0;

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    alice = await newAccount(srv.url, admin.access_token, "alice");
    bob = await newAccount(srv.url, admin.access_token, "bob");
    for (const d of ["d1", "d2"]) {
      await newDevice(srv.url, alice, "alice", d);
      await connectDevice(d);
    }
  });
  after(async () => {
    for (const d of devices) d.kill();
    await srv?.close();
  });

  async function connectDevice(device: string): Promise<RawDevice> {
    const d = await RawDevice.connect({
      wsUrl: srv.wsUrl, user: "alice", device, credentials: `${device}-secret`,
      describe: { temperature: "output", relay: "input", humidity: "output" },
    });
    d.onCall = (c) => (c.resource === "relay" ? undefined : `${device}:${c.resource}`);
    devices.push(d);
    return d;
  }

  const create = (json: Record<string, unknown>, token = alice) => api(srv.url, "POST", "/v1/users/alice/tokens", { token, json });
  async function userToken(allow: Perm[] | Thinger, deny: Perm[] | Thinger = [], extra: Record<string, unknown> = {}): Promise<{ id: string; token: string }> {
    const r = await create({ name: `t${++seq}`, allow, deny, ...extra });
    expect(r.status, r.text).to.equal(200);
    return r.body as { id: string; token: string };
  }
  const get = (token: string, path: string) => api(srv.url, "GET", path, { token });

  describe("CRUD on /v1/users/{user}/tokens", () => {
    it("POST answers the token with its settings; the JWT carries no permissions and no exp", async () => {
      const before = Date.now();
      const r = await create({ name: "dashboard", allow: [{ action: "ListDevices", target: "*" }] });
      expect(r.status).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(["allow", "created_ts", "deny", "enabled", "expiration", "id", "name", "token"]);
      // Our earlier array shape is still accepted; answers are in Thinger's shape (issue 12).
      expect(r.body).to.deep.include({ name: "dashboard", enabled: true, expiration: null, allow: { Device: { "*": ["ListDevices"] } }, deny: {} });
      expect(r.body.id).to.match(/^[a-f0-9]{32}$/);
      expect(r.body.created_ts).to.be.within(before, Date.now());
      const p = payload(r.body.token);
      expect(Object.keys(p).sort()).to.deep.equal(["iat", "jti", "tok", "usr"]);
      expect(p).to.include({ usr: "alice", jti: r.body.id });
    });

    it("a target defaults to *", async () => {
      const r = await create({ name: "default-target", allow: [{ action: "ListDevices" }] });
      expect(r.status).to.equal(200);
      expect(r.body.allow).to.deep.equal({ Device: { "*": ["ListDevices"] } });
    });

    it("GET lists and GET {id} reads; PUT edits name, enabled, permissions; DELETE removes (then 404)", async () => {
      const t = await userToken([{ action: "ListDevices", target: "*" }]);
      const list = await get(alice, "/v1/users/alice/tokens");
      expect(list.status).to.equal(200);
      expect(list.body.map((x: { id: string }) => x.id)).to.include(t.id);
      const one = await get(alice, `/v1/users/alice/tokens/${t.id}`);
      expect(one.status).to.equal(200);
      expect(one.body.token).to.equal(t.token);
      const put = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { name: "renamed", enabled: false, deny: [{ action: "ReadDevice", target: "d1" }] } });
      expect(put.status).to.equal(200);
      expect(put.body).to.deep.include({ id: t.id, name: "renamed", enabled: false, allow: { Device: { "*": ["ListDevices"] } }, deny: { Device: { d1: ["ReadDevice"] } } });
      const del = await api(srv.url, "DELETE", `/v1/users/alice/tokens/${t.id}`, { token: alice });
      expect(del.status).to.equal(200);
      expect(del.body).to.deep.equal({});
      for (const [method, json] of [["GET", undefined], ["PUT", { name: "x" }], ["DELETE", undefined]] as const) {
        const r = await api(srv.url, method, `/v1/users/alice/tokens/${t.id}`, { token: alice, json });
        expect(r.status, method).to.equal(404);
        expect(r.body.error.code).to.equal("token_not_found");
      }
    });

    it("400 invalid_request for bad bodies; nothing is stored", async () => {
      const count = await srv.relay.services.repos.userTokens.count({ user: "alice" });
      const bad: Array<Record<string, unknown>> = [
        {},
        { name: "" },
        { name: "x", allow: [{ action: "Root", target: "*" }] },
        { name: "x", allow: [{ target: "*" }] },
        { name: "x", allow: [{ action: "ReadDevice", target: "a-b" }] },
        { name: "x", allow: [{ action: "ListDevices", target: "*", resources: ["temperature"] }] },
        { name: "x", allow: [{ action: "AccessDeviceResources", target: "d1", resources: [1] }] },
        { name: "x", allow: [{ action: "AccessDeviceResources", target: "d1", resources: "temperature" }] },
        { name: "x", allow: [{ action: "ReadDevice", target: "d1", user: "bob" }] },
        { name: "x", allow: { action: "ReadDevice" } },
        { name: "x", deny: ["ReadDevice"] },
        { name: "x", enabled: "yes" },
        { name: "x", expiration: Date.now() - 1 },
        { name: "x", expiration: "tomorrow" },
        { name: "x", user: "bob" },
        { name: "x", admin: true },
      ];
      for (const json of bad) {
        const r = await create(json);
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      expect(await srv.relay.services.repos.userTokens.count({ user: "alice" })).to.equal(count);
    });

    it("another account answers 404 on every token route", async () => {
      const t = await userToken([{ action: "ListDevices", target: "*" }]);
      for (const [method, path, json] of [
        ["GET", "/v1/users/alice/tokens", undefined],
        ["POST", "/v1/users/alice/tokens", { name: "planted", allow: [{ action: "*", target: "*" }] }],
        ["GET", `/v1/users/alice/tokens/${t.id}`, undefined],
        ["PUT", `/v1/users/alice/tokens/${t.id}`, { allow: [{ action: "*", target: "*" }] }],
        ["DELETE", `/v1/users/alice/tokens/${t.id}`, undefined],
      ] as const) {
        const r = await api(srv.url, method, path, { token: bob, json });
        expect(r.status, `${method} ${path}`).to.equal(404);
        expect(r.body.error.code).to.equal("user_not_found");
      }
      const still = await get(alice, `/v1/users/alice/tokens/${t.id}`);
      expect(still.body.allow).to.deep.equal({ Device: { "*": ["ListDevices"] } });
      expect(await srv.relay.services.repos.userTokens.count({ name: "planted" })).to.equal(0);
    });
  });

  describe("one action, one target (each written in Thinger's shape)", () => {
    interface Case {
      action: string;
      /** Performs the action on `device` with `token`. */
      run(token: string, device: string): Promise<ApiResponse>;
      /** Device-less actions use target "*". */
      targeted: boolean;
      ok: number;
    }
    let fresh = 0;
    /** A new offline device (for delete) or a connected one. */
    async function newDev(connected: boolean): Promise<string> {
      const id = `x${++fresh}`;
      await newDevice(srv.url, alice, "alice", id);
      if (connected) await connectDevice(id);
      return id;
    }
    const cases: Case[] = [
      { action: "AccessDeviceResources", targeted: true, ok: 200, run: (t, d) => get(t, `/v2/users/alice/devices/${d}/temperature`) },
      { action: "ListDeviceResources", targeted: true, ok: 200, run: (t, d) => get(t, `/v2/users/alice/devices/${d}/api`) },
      { action: "GetDeviceStats", targeted: true, ok: 200, run: (t, d) => get(t, `/v1/users/alice/devices/${d}/stats`) },
      { action: "ReadDevice", targeted: true, ok: 200, run: (t, d) => get(t, `/v1/users/alice/devices/${d}`) },
      { action: "UpdateDevice", targeted: true, ok: 200, run: (t, d) => api(srv.url, "PUT", `/v1/users/alice/devices/${d}`, { token: t, json: { device_description: "edited" } }) },
      { action: "DeleteDevice", targeted: true, ok: 200, run: (t, d) => api(srv.url, "DELETE", `/v1/users/alice/devices/${d}`, { token: t }) },
      { action: "ListDeviceTokens", targeted: true, ok: 200, run: (t, d) => get(t, `/v1/users/alice/devices/${d}/tokens`) },
      {
        action: "DeleteDeviceToken", targeted: true, ok: 200, run: async (t, d) => {
          const dt = await api(srv.url, "POST", `/v1/users/alice/devices/${d}/tokens`, { token: alice, json: { token_name: "victim" } });
          return api(srv.url, "DELETE", `/v1/users/alice/devices/${d}/tokens/${dt.body.id}`, { token: t });
        },
      },
      { action: "CloseDeviceSession", targeted: true, ok: 200, run: (t, d) => api(srv.url, "DELETE", `/v1/users/alice/devices/${d}/session`, { token: t }) },
      { action: "ListDevices", targeted: false, ok: 200, run: (t) => get(t, "/v1/users/alice/devices") },
      { action: "ListDeviceSessions", targeted: false, ok: 200, run: (t) => get(t, "/v1/users/alice/sessions") },
      { action: "CreateDevice", targeted: false, ok: 201, run: (t) => api(srv.url, "POST", "/v1/users/alice/devices", { token: t, json: { device_id: `c${++fresh}`, device_description: "", device_credentials: "x" } }) },
    ];

    for (const c of cases) {
      it(`${c.action}: allowed → ${c.ok}; every other action → 403${c.targeted ? "; another device → 403" : ""}`, async () => {
        const device = await newDev(true);
        const other = await newDev(true);
        const { token } = await userToken({ Device: { [c.targeted ? device : "*"]: [c.action] } });
        for (const o of cases) {
          if (o === c) continue;
          const r = await o.run(token, device);
          expect(r.status, `${o.action} with a ${c.action} token`).to.equal(403);
          expect(r.body.error.code).to.equal("forbidden");
        }
        if (c.targeted) {
          const r = await c.run(token, other);
          expect(r.status, "another device").to.equal(403);
          expect(r.body.error.code).to.equal("forbidden");
        }
        if (c.action === "DeleteDevice") {
          const offline = await newDev(false);
          const { token: t2 } = await userToken({ Device: { [offline]: [c.action] } });
          const r = await c.run(t2, offline);
          expect(r.status, r.text).to.equal(c.ok);
          expect(await srv.relay.services.repos.devices.count({ _id: `alice/${offline}` })).to.equal(0);
        } else {
          const r = await c.run(token, device);
          expect(r.status, r.text).to.equal(c.ok);
        }
      });
    }

    it("CreateDeviceToken: even when allowed, a scoped token cannot mint (403)", async () => {
      const { token } = await userToken([{ action: "CreateDeviceToken", target: "*" }]);
      const r = await api(srv.url, "POST", "/v1/users/alice/devices/d1/tokens", { token, json: { token_name: "minted" } });
      expect(r.status).to.equal(403);
      expect(r.body.error.code).to.equal("forbidden");
      expect(await srv.relay.services.repos.deviceTokens.count({ name: "minted" })).to.equal(0);
    });

    it("ListDeviceTokens through a scoped token hides the token values", async () => {
      await api(srv.url, "POST", "/v1/users/alice/devices/d2/tokens", { token: alice, json: { token_name: "secret-one" } });
      const { token } = await userToken([{ action: "ListDeviceTokens", target: "d2" }]);
      const r = await get(token, "/v1/users/alice/devices/d2/tokens");
      expect(r.status).to.equal(200);
      expect(r.body.length).to.be.above(0);
      expect(r.body.every((t: { token: unknown; name: string }) => t.token === null && typeof t.name === "string")).to.equal(true);
    });
  });

  describe("resources, deny and no permission", () => {
    it("AccessDeviceResources limited to resources opens only those", async () => {
      const { token } = await userToken([{ action: "AccessDeviceResources", target: "d1", resources: ["temperature"] }]);
      const ok = await get(token, "/v2/users/alice/devices/d1/temperature");
      expect(ok.status).to.equal(200);
      expect(ok.body).to.deep.equal({ out: "d1:temperature" });
      for (const path of ["/v2/users/alice/devices/d1/humidity", "/v2/users/alice/devices/d2/temperature"]) {
        const r = await get(token, path);
        expect(r.status, path).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      }
      const post = await api(srv.url, "POST", "/v2/users/alice/devices/d1/relay", { token, json: { in: true } });
      expect(post.status).to.equal(403);
    });

    it("deny wins over allow, down to one resource", async () => {
      const { token } = await userToken(
        [{ action: "*", target: "*" }],
        [{ action: "AccessDeviceResources", target: "d1", resources: ["humidity"] }, { action: "ReadDevice", target: "d2" }],
      );
      expect((await get(token, "/v2/users/alice/devices/d1/temperature")).status).to.equal(200);
      const denied = await get(token, "/v2/users/alice/devices/d1/humidity");
      expect(denied.status).to.equal(403);
      expect(denied.body.error.code).to.equal("forbidden");
      expect((await get(token, "/v2/users/alice/devices/d2/humidity")).status).to.equal(200);
      expect((await get(token, "/v1/users/alice/devices/d1")).status).to.equal(200);
      expect((await get(token, "/v1/users/alice/devices/d2")).status).to.equal(403);
    });

    it("deny * on * shuts every door even with allow * on *", async () => {
      const { token } = await userToken([{ action: "*", target: "*" }], [{ action: "*", target: "*" }]);
      for (const path of ["/v1/users/alice/devices", "/v1/users/alice/devices/d1", "/v2/users/alice/devices/d1/temperature", "/v2/users/alice/devices/d1/api", "/v1/users/alice/devices/d1/stats"]) {
        const r = await get(token, path);
        expect(r.status, path).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      }
    });

    it("a token with no permission opens nothing", async () => {
      const { token } = await userToken([]);
      for (const path of ["/v1/users/alice/devices", "/v1/users/alice/devices/d1", "/v2/users/alice/devices/d1/temperature", "/v2/users/alice/devices/d1/api", "/v1/users/alice/devices/d1/stats", "/v1/users/alice/sessions", "/v1/users/alice/devices/d1/tokens"]) {
        const r = await get(token, path);
        expect(r.status, path).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      }
    });

    it("a user token never reaches another account (404 like a missing account or device)", async () => {
      const { token } = await userToken([{ action: "*", target: "*" }]);
      await newDevice(srv.url, bob, "bob", "bobdev");
      const r = await get(token, "/v2/users/bob/devices/bobdev/temperature");
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_not_found");
      const list = await get(token, "/v1/users/bob/devices");
      expect(list.status).to.equal(404);
      expect(list.body.error.code).to.equal("user_not_found");
    });
  });

  describe("changes take effect on the next request", () => {
    const path = "/v2/users/alice/devices/d1/temperature";

    it("disable → 401; enable → works again", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }]);
      expect((await get(t.token, path)).status).to.equal(200);
      await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { enabled: false } });
      const off = await get(t.token, path);
      expect(off.status).to.equal(401);
      expect(off.body.error.code).to.equal("unauthorized");
      await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { enabled: true } });
      expect((await get(t.token, path)).status).to.equal(200);
    });

    it("a token created disabled does not work", async () => {
      const t = await userToken([{ action: "*", target: "*" }], [], { enabled: false });
      const r = await get(t.token, path);
      expect(r.status).to.equal(401);
      expect(r.body.error.code).to.equal("unauthorized");
    });

    it("editing permissions narrows or widens at once", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }]);
      expect((await get(t.token, path)).status).to.equal(200);
      await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { allow: [{ action: "ReadDevice", target: "d1" }] } });
      expect((await get(t.token, path)).status).to.equal(403);
      expect((await get(t.token, "/v1/users/alice/devices/d1")).status).to.equal(200);
      await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { deny: [{ action: "ReadDevice", target: "*" }] } });
      expect((await get(t.token, "/v1/users/alice/devices/d1")).status).to.equal(403);
    });

    it("delete → 401", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }]);
      expect((await get(t.token, path)).status).to.equal(200);
      await api(srv.url, "DELETE", `/v1/users/alice/tokens/${t.id}`, { token: alice });
      const r = await get(t.token, path);
      expect(r.status).to.equal(401);
      expect(r.body.error.code).to.equal("unauthorized");
    });
  });

  describe("expiry", () => {
    const path = "/v2/users/alice/devices/d1/temperature";

    it("never expires unless an expiry is set", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }]);
      expect((await get(alice, `/v1/users/alice/tokens/${t.id}`)).body.expiration).to.equal(null);
      const p = await srv.relay.services.authenticator.authenticate(t.token, Date.now() + 50 * 365 * 86_400_000);
      expect(p.kind).to.equal("user_token");
      expect(p.expiresAt).to.equal(null);
    });

    it("PUT an expiration: shown, valid until then, refused from then on", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }]);
      const expMs = Date.now() + 120_000;
      const put = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { expiration: expMs } });
      expect(put.status).to.equal(200);
      const exp = Math.ceil(expMs / 1000) * 1000;
      expect(put.body.expiration).to.equal(exp);
      expect((await get(t.token, path)).status).to.equal(200);
      const auth = srv.relay.services.authenticator;
      expect((await auth.authenticate(t.token, exp - 1)).kind).to.equal("user_token");
      const err = await auth.authenticate(t.token, exp).then(() => null, (e: { status?: number; code?: string }) => e);
      expect(err?.status).to.equal(401);
      expect(err?.code).to.equal("unauthorized");
    });

    it("an expiration that has passed answers 401 on the next request; PUT expiration null revives it", async () => {
      const t = await userToken([{ action: "AccessDeviceResources", target: "d1" }], [], { expiration: Date.now() + 60_000 });
      expect((await get(t.token, path)).status).to.equal(200);
      // Time passes: move the stored expiry into the past (as another node's write would) and drop the cache entry.
      await srv.relay.services.repos.userTokens.updateOne({ _id: t.id }, { $set: { exp: Math.floor(Date.now() / 1000) - 1 } });
      srv.relay.services.authenticator.cache.invalidate(cacheKey.userToken(t.id));
      const r = await get(t.token, path);
      expect(r.status).to.equal(401);
      expect(r.body.error.code).to.equal("unauthorized");
      const past = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { expiration: Date.now() - 1000 } });
      expect(past.status).to.equal(400);
      expect(past.body.error.code).to.equal("invalid_request");
      const revive = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { expiration: null } });
      expect(revive.status).to.equal(200);
      expect(revive.body.expiration).to.equal(null);
      expect((await get(t.token, path)).status).to.equal(200);
    });
  });

  describe("scoped tokens cannot manage tokens", () => {
    it("a user token allowed * on * gets 403 on every token and account management route, even for itself", async () => {
      const t = await userToken([{ action: "*", target: "*" }]);
      const routes: Array<[string, string, unknown?]> = [
        ["GET", "/v1/users/alice/tokens"],
        ["POST", "/v1/users/alice/tokens", { name: "wider", allow: [{ action: "*", target: "*" }] }],
        ["GET", `/v1/users/alice/tokens/${t.id}`],
        ["PUT", `/v1/users/alice/tokens/${t.id}`, { deny: [] }],
        ["DELETE", `/v1/users/alice/tokens/${t.id}`],
        ["POST", "/v1/users/alice/devices/d1/tokens", { token_name: "wider" }],
        ["PUT", "/v1/users/alice/password", { password: "taken-over-123" }],
        ["POST", "/v1/users", { username: "eve", password: "eve-password-1" }],
      ];
      for (const [method, path, json] of routes) {
        const r = await api(srv.url, method, path, { token: t.token, json });
        expect(r.status, `${method} ${path}`).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      }
      expect(await srv.relay.services.repos.userTokens.count({ name: "wider" })).to.equal(0);
      expect(await srv.relay.services.repos.deviceTokens.count({ name: "wider" })).to.equal(0);
      expect((await get(alice, `/v1/users/alice/tokens/${t.id}`)).status).to.equal(200);
      await login(srv.url, "alice", "alice-password");
    });
  });
});
