import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";

function payload(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
}

/** Device tokens (issue 4, Thinger-compatible): one door, nothing else. */
describe("device tokens", () => {
  let srv: TestServer;
  let alice: string;
  let bob: string;
  let device: RawDevice;
  const base = "/v1/users/alice/devices/nodemcu/tokens";

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    alice = await newAccount(srv.url, admin.access_token, "alice");
    bob = await newAccount(srv.url, admin.access_token, "bob");
    await newDevice(srv.url, alice, "alice", "nodemcu");
    await newDevice(srv.url, alice, "alice", "other");
    await newDevice(srv.url, bob, "bob", "bobdev");
    device = await RawDevice.connect({
      wsUrl: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "nodemcu-secret",
      describe: { temperature: "output", relay: "input" },
    });
    device.onCall = (c) => (c.resource === "temperature" ? 21.5 : undefined);
  });
  after(async () => {
    device?.kill();
    await srv?.close();
  });

  const mint = async (json: Record<string, unknown>) => {
    const r = await api(srv.url, "POST", base, { token: alice, json });
    expect(r.status, r.text).to.equal(200);
    return r.body as { id: string; name: string; token: string };
  };

  describe("GET/POST/DELETE …/devices/{device}/tokens", () => {
    it("POST answers {id,name,token}; the token is a JWT with exactly {dev,usr,jti,iat}", async () => {
      const before = Math.floor(Date.now() / 1000);
      const t = await mint({ token_name: "plain" });
      expect(Object.keys(t).sort()).to.deep.equal(["id", "name", "token"]);
      expect(t.name).to.equal("plain");
      expect(t.id).to.match(/^[a-f0-9]{32}$/);
      const p = payload(t.token);
      expect(Object.keys(p).sort()).to.deep.equal(["dev", "iat", "jti", "usr"]);
      expect(p).to.include({ dev: "nodemcu", usr: "alice", jti: t.id });
      expect(p.iat).to.be.within(before, Math.ceil(Date.now() / 1000));
    });

    it("token_expiration (ms UTC) becomes exp in seconds; token_resources becomes res", async () => {
      const expMs = Date.now() + 3_600_000 + 123;
      const t = await mint({ token_name: "scoped", token_expiration: expMs, token_resources: ["temperature", "$ota/begin"] });
      const p = payload(t.token);
      expect(Object.keys(p).sort()).to.deep.equal(["dev", "exp", "iat", "jti", "res", "usr"]);
      expect(p.exp).to.equal(Math.ceil(expMs / 1000));
      expect(p.res).to.deep.equal(["temperature", "$ota/begin"]);
    });

    it("GET lists the device's tokens as {id,name,token}, the same tokens that were issued", async () => {
      const t = await mint({ token_name: "listed" });
      const r = await api(srv.url, "GET", base, { token: alice });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.include({ id: t.id, name: "listed", token: t.token });
      for (const x of r.body) expect(Object.keys(x).sort()).to.deep.equal(["id", "name", "token"]);
      const other = await api(srv.url, "GET", "/v1/users/alice/devices/other/tokens", { token: alice });
      expect(other.body).to.deep.equal([]);
    });

    it("400 invalid_request for a missing or empty name, a past or malformed expiry, non-string resources, extra fields", async () => {
      const count = await srv.relay.services.repos.deviceTokens.count({ user: "alice" });
      const bad: Array<Record<string, unknown>> = [
        {},
        { token_name: "" },
        { token_name: 7 },
        { token_name: "past", token_expiration: Date.now() - 1000 },
        { token_name: "past", token_expiration: 0 },
        { token_name: "text", token_expiration: "2999-01-01" },
        { token_name: "frac", token_expiration: Date.now() + 10_000.5 },
        { token_name: "res", token_resources: [1] },
        { token_name: "res", token_resources: ["temperature", null] },
        { token_name: "res", token_resources: "temperature" },
        { token_name: "res", token_resources: [{ name: "temperature" }] },
        { token_name: "res", token_resources: ["../relay"] },
        { token_name: "extra", token_scopes: "*" },
        { token_name: "extra", user: "bob" },
      ];
      for (const json of bad) {
        const r = await api(srv.url, "POST", base, { token: alice, json });
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code, JSON.stringify(json)).to.equal("invalid_request");
      }
      expect(await srv.relay.services.repos.deviceTokens.count({ user: "alice" })).to.equal(count);
    });

    it("404 device_not_found for tokens of a missing device", async () => {
      for (const [method, json] of [["GET", undefined], ["POST", { token_name: "x" }]] as const) {
        const r = await api(srv.url, method, "/v1/users/alice/devices/ghost/tokens", { token: alice, json });
        expect(r.status).to.equal(404);
        expect(r.body.error.code).to.equal("device_not_found");
      }
    });

    it("DELETE revokes at once: 200, then the token answers 401; a second delete or an unknown id is 404", async () => {
      const t = await mint({ token_name: "doomed" });
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: t.token })).status).to.equal(200);
      const del = await api(srv.url, "DELETE", `${base}/${t.id}`, { token: alice });
      expect(del.status).to.equal(200);
      expect(del.body).to.deep.equal({});
      const after = await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: t.token });
      expect(after.status).to.equal(401);
      expect(after.body.error.code).to.equal("unauthorized");
      const again = await api(srv.url, "DELETE", `${base}/${t.id}`, { token: alice });
      expect(again.status).to.equal(404);
      expect(again.body.error.code).to.equal("token_not_found");
      const junk = await api(srv.url, "DELETE", `${base}/not-an-id`, { token: alice });
      expect(junk.status).to.equal(404);
      expect(junk.body.error.code).to.equal("token_not_found");
      expect((await api(srv.url, "GET", base, { token: alice })).body.map((x: { id: string }) => x.id)).to.not.include(t.id);
    });

    it("a token id of another device cannot be deleted through this device", async () => {
      const t = await mint({ token_name: "mine" });
      const r = await api(srv.url, "DELETE", `/v1/users/alice/devices/other/tokens/${t.id}`, { token: alice });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("token_not_found");
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: t.token })).status).to.equal(200);
    });
  });

  describe("what a device token opens", () => {
    let full: string;
    let limited: string;
    before(async () => {
      full = (await mint({ token_name: "full" })).token;
      limited = (await mint({ token_name: "limited", token_resources: ["temperature"] })).token;
    });

    it("its device's /v2 resources, as Bearer and as ?authorization=", async () => {
      const r = await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: full });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: 21.5 });
      const q = await api(srv.url, "GET", `/v2/users/alice/devices/nodemcu/temperature?authorization=${full}`);
      expect(q.status).to.equal(200);
      expect(q.body).to.deep.equal({ out: 21.5 });
      const post = await api(srv.url, "POST", `/v2/users/alice/devices/nodemcu/relay?authorization=${full}`, { json: { in: true } });
      expect(post.status).to.equal(200);
      expect(device.calls.at(-1)).to.deep.include({ resource: "relay", in: true });
    });

    it("limited to res when present: other resources answer 403 forbidden without reaching the device", async () => {
      const ok = await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: limited });
      expect(ok.status).to.equal(200);
      const n = device.calls.length;
      const no = await api(srv.url, "POST", "/v2/users/alice/devices/nodemcu/relay", { token: limited, json: { in: true } });
      expect(no.status).to.equal(403);
      expect(no.body.error.code).to.equal("forbidden");
      const q = await api(srv.url, "GET", `/v2/users/alice/devices/nodemcu/relay?authorization=${limited}`);
      expect(q.status).to.equal(403);
      expect(device.calls.length).to.equal(n);
    });

    it("its device's /api and stats JSON (also with res)", async () => {
      for (const token of [full, limited]) {
        const a = await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/api", { token });
        expect(a.status).to.equal(200);
        expect(a.body).to.deep.equal({ temperature: { kind: "output" }, relay: { kind: "input" } });
        const s = await api(srv.url, "GET", `/v1/users/alice/devices/nodemcu/stats?authorization=${token}`);
        expect(s.status).to.equal(200);
        expect(s.body.connected).to.equal(true);
      }
    });

    it("another device of the same account: 403 forbidden on every door", async () => {
      for (const path of ["/v2/users/alice/devices/other/temperature", "/v2/users/alice/devices/other/api", "/v1/users/alice/devices/other/stats"]) {
        const r = await api(srv.url, "GET", path, { token: full });
        expect(r.status, path).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      }
    });

    it("another account's device answers like a missing one (404)", async () => {
      const r = await api(srv.url, "GET", "/v2/users/bob/devices/bobdev/temperature", { token: full });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_not_found");
    });

    const elsewhere: Array<[string, string, unknown?]> = [
      ["GET", "/v1/users/alice/devices"],
      ["POST", "/v1/users/alice/devices", { device_id: "planted", device_description: "", device_credentials: "x" }],
      ["GET", "/v1/users/alice/devices/nodemcu"],
      ["PUT", "/v1/users/alice/devices/nodemcu", { device_description: "changed" }],
      ["DELETE", "/v1/users/alice/devices/nodemcu"],
      ["GET", "/v1/users/alice/sessions"],
      ["DELETE", "/v1/users/alice/devices/nodemcu/session"],
      ["GET", "/v1/users/alice/devices/nodemcu/tokens"],
      ["POST", "/v1/users/alice/devices/nodemcu/tokens", { token_name: "wider" }],
      ["DELETE", "/v1/users/alice/devices/nodemcu/tokens/0123456789abcdef0123456789abcdef"],
      ["GET", "/v1/users/alice/tokens"],
      ["POST", "/v1/users/alice/tokens", { name: "x", allow: [{ action: "*", target: "*" }] }],
      ["PUT", "/v1/users/alice/password", { password: "new-password-123" }],
      ["POST", "/v1/users", { username: "eve", password: "eve-password-1" }],
    ];
    for (const [method, path, json] of elsewhere) {
      it(`anything else is 403 forbidden: ${method} ${path}`, async () => {
        const r = await api(srv.url, method, path, { token: full, json });
        expect(r.status).to.equal(403);
        expect(r.body.error.code).to.equal("forbidden");
      });
    }

    it("none of those requests changed anything", async () => {
      const view = await api(srv.url, "GET", "/v1/users/alice/devices/nodemcu", { token: alice });
      expect(view.body.description).to.equal("nodemcu test device");
      expect(await srv.relay.services.repos.devices.count({ device: "planted" })).to.equal(0);
      expect(await srv.relay.services.repos.deviceTokens.count({ name: "wider" })).to.equal(0);
      expect(await srv.relay.services.repos.users.count({ _id: "eve" })).to.equal(0);
      expect(srv.relay.services.hub.get("alice", "nodemcu")).to.not.equal(undefined);
    });

    it("expiry: valid until exp, refused from exp on; without an expiry it never expires", async () => {
      const expMs = Date.now() + 60_000;
      const t = await mint({ token_name: "expiring", token_expiration: expMs });
      const auth = srv.relay.services.authenticator;
      const exp = Math.ceil(expMs / 1000) * 1000;
      expect((await auth.authenticate(t.token, exp - 1000)).kind).to.equal("device_token");
      const err = await auth.authenticate(t.token, exp + 1000).then(() => null, (e: { code?: string; status?: number }) => e);
      expect(err?.status).to.equal(401);
      expect(err?.code).to.equal("unauthorized");
      expect((await auth.authenticate(full, Date.now() + 50 * 365 * 86_400_000)).kind).to.equal("device_token");
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: t.token })).status).to.equal(200);
    });
  });

  describe("scoped tokens and token management", () => {
    it("a user token allowed everything still cannot mint device tokens (403), and lists them without values", async () => {
      const ut = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "admin-ish", allow: [{ action: "*", target: "*" }] } });
      expect(ut.status).to.equal(200);
      const scoped = ut.body.token as string;
      const mintTry = await api(srv.url, "POST", base, { token: scoped, json: { token_name: "minted" } });
      expect(mintTry.status).to.equal(403);
      expect(mintTry.body.error.code).to.equal("forbidden");
      expect(await srv.relay.services.repos.deviceTokens.count({ name: "minted" })).to.equal(0);
      const list = await api(srv.url, "GET", base, { token: scoped });
      expect(list.status).to.equal(200);
      expect(list.body.length).to.be.above(0);
      for (const t of list.body) {
        expect(t.token).to.equal(null);
        expect(t.id).to.match(/^[a-f0-9]{32}$/);
      }
      const own = await api(srv.url, "GET", base, { token: alice });
      expect(own.body.every((t: { token: unknown }) => typeof t.token === "string")).to.equal(true);
    });

    it("another account's session cannot list, mint or delete this device's tokens (404 like a missing device)", async () => {
      const t = await mint({ token_name: "bobs-target" });
      for (const [method, path, json] of [
        ["GET", base, undefined],
        ["POST", base, { token_name: "x" }],
        ["DELETE", `${base}/${t.id}`, undefined],
      ] as const) {
        const r = await api(srv.url, method, path, { token: bob, json });
        expect(r.status).to.equal(404);
        expect(r.body.error.code).to.equal("device_not_found");
      }
      expect((await api(srv.url, "GET", "/v2/users/alice/devices/nodemcu/temperature", { token: t.token })).status).to.equal(200);
    });
  });
});
