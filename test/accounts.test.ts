import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice, type ApiResponse } from "./helpers/api.js";
import { runBefore } from "./helpers/interleave.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { sse, closeAllSse } from "./helpers/sse.js";
import { COLLECTIONS } from "../server/store/types.js";

/** Every document of every collection of the store, as JSON text. */
async function dump(srv: TestServer): Promise<Array<{ collection: string; json: string }>> {
  const out: Array<{ collection: string; json: string }> = [];
  for (const name of COLLECTIONS) {
    for (const doc of await srv.store.collection(name).find({})) out.push({ collection: name, json: JSON.stringify(doc) });
  }
  return out;
}

describe("accounts: administration, export (issue 12 points 5 and 7)", () => {
  let srv: TestServer;
  let admin: string;
  let bob: string;
  before(async () => {
    srv = await startServer();
    admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    bob = await newAccount(srv.url, admin, "bob_acct");
  });
  after(() => srv.close());
  afterEach(closeAllSse);

  describe("GET /v1/users and /v1/users/{user}", () => {
    it("an administrator lists every account, never a password hash", async () => {
      const r = await api(srv.url, "GET", "/v1/users", { token: admin });
      expect(r.status).to.equal(200);
      expect(r.body).to.be.an("array");
      const names = r.body.map((u: { username: string }) => u.username);
      expect(names).to.include.members([ADMIN.user, "bob_acct"]);
      expect(r.headers.get("x-total-count")).to.equal(String(r.body.length));
      const b = r.body.find((u: { username: string }) => u.username === "bob_acct");
      expect(Object.keys(b).sort()).to.deep.equal(["admin", "created_ts", "enabled", "password_changed_ts", "username"]);
      expect(b.admin).to.equal(false);
      expect(r.text).to.not.match(/scrypt|passwordHash|\$/);
    });

    it("a user who is not an administrator may not list accounts (403)", async () => {
      const r = await api(srv.url, "GET", "/v1/users", { token: bob });
      expect(r.status).to.equal(403);
      expect(r.body.error.code).to.equal("forbidden");
    });

    it("a user reads their own account; another user's answers 404 like a missing one", async () => {
      const self = await api(srv.url, "GET", "/v1/users/bob_acct", { token: bob });
      expect(self.status).to.equal(200);
      expect(self.body).to.deep.include({ username: "bob_acct", admin: false });
      const other = await api(srv.url, "GET", `/v1/users/${ADMIN.user}`, { token: bob });
      const missing = await api(srv.url, "GET", "/v1/users/nobody_here", { token: bob });
      expect(other.status).to.equal(404);
      expect(other.body).to.deep.equal(missing.body);
      expect(other.body.error.code).to.equal("user_not_found");
    });

    it("an administrator reads any account; a missing one is 404 user_not_found", async () => {
      expect((await api(srv.url, "GET", "/v1/users/bob_acct", { token: admin })).body.username).to.equal("bob_acct");
      const r = await api(srv.url, "GET", "/v1/users/nobody_here", { token: admin });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("user_not_found");
    });

    it("GET /v1/users pages with Link and X-Total-Count, and projects ?fields=", async () => {
      for (const n of ["pg_a", "pg_b", "pg_c"]) await newAccount(srv.url, admin, n);
      const all = (await api(srv.url, "GET", "/v1/users", { token: admin })).body as Array<{ username: string }>;
      const r = await api(srv.url, "GET", "/v1/users?limit=2&page=2&fields=username", { token: admin });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal(all.slice(2, 4).map((u) => ({ username: u.username })));
      expect(r.headers.get("x-total-count")).to.equal(String(all.length));
      const last = Math.ceil(all.length / 2);
      const link = r.headers.get("link")!;
      expect(link).to.include('</v1/users?fields=username&page=1&limit=2>; rel="first"');
      expect(link).to.include('</v1/users?fields=username&page=1&limit=2>; rel="prev"');
      if (last > 2) expect(link).to.include('</v1/users?fields=username&page=3&limit=2>; rel="next"');
      expect(link).to.include(`</v1/users?fields=username&page=${last}&limit=2>; rel="last"`);
    });
  });

  describe("QA F5/F10: enabled, names in any case, an administrator's password reset", () => {
    it("an administrator sees `enabled` in the list and the account, false once disabled", async () => {
      await newAccount(srv.url, admin, "dis_acct");
      const one = async () => (await api(srv.url, "GET", "/v1/users/dis_acct", { token: admin })).body;
      expect((await one()).enabled).to.equal(true);
      expect((await api(srv.url, "PUT", "/v1/users/dis_acct", { token: admin, json: { enabled: false } })).status).to.equal(200);
      expect((await one()).enabled).to.equal(false);
      const list = await api(srv.url, "GET", "/v1/users?fields=username,enabled", { token: admin });
      expect(list.body).to.deep.include({ username: "dis_acct", enabled: false });
      expect(list.body).to.deep.include({ username: "bob_acct", enabled: true });
    });

    it("names are unique regardless of case: the 409 names the stored account, which the account routes find in any case", async () => {
      expect((await api(srv.url, "POST", "/v1/users", { token: admin, json: { username: "Case_Acct", password: "case-password" } })).status).to.equal(201);
      const dup = await api(srv.url, "POST", "/v1/users", { token: admin, json: { username: "case_acct", password: "case-password" } });
      expect(dup.status).to.equal(409);
      expect(dup.body.error.message).to.include('"Case_Acct"');
      const r = await api(srv.url, "GET", "/v1/users/case_acct", { token: admin });
      expect(r.status).to.equal(200);
      expect(r.body.username).to.equal("Case_Acct");
      expect((await api(srv.url, "PUT", "/v1/users/CASE_ACCT", { token: admin, json: { enabled: true } })).body).to.deep.equal({ username: "Case_Acct", enabled: true });
      expect((await api(srv.url, "DELETE", "/v1/users/case_ACCT", { token: admin })).status).to.equal(200);
      expect((await api(srv.url, "GET", "/v1/users/Case_Acct", { token: admin })).status).to.equal(404);
    });

    it("an administrator resets another account's password without current_password; its sessions end; the user cannot do that to others", async () => {
      await newAccount(srv.url, admin, "forgot_acct", "forgotten-pass");
      const old = await login(srv.url, "forgot_acct", "forgotten-pass");
      const r = await api(srv.url, "PUT", "/v1/users/forgot_acct/password", { token: admin, json: { password: "brand-new-pass" } });
      expect(r.status, r.text).to.equal(200);
      expect((await api(srv.url, "GET", "/v1/users/forgot_acct", { token: old.access_token })).status).to.equal(401);
      expect((await login(srv.url, "forgot_acct", "brand-new-pass")).access_token).to.be.a("string");
      const other = await api(srv.url, "PUT", "/v1/users/bob_acct/password", { token: (await login(srv.url, "forgot_acct", "brand-new-pass")).access_token, json: { password: "hijacked-pass" } });
      expect(other.status).to.equal(404);
      expect((await api(srv.url, "PUT", "/v1/users/nobody_here/password", { token: admin, json: { password: "brand-new-pass" } })).status).to.equal(404);
    });
  });

  describe("DELETE /v1/users/{user}", () => {
    it("only an administrator deletes accounts, and not their own", async () => {
      const r = await api(srv.url, "DELETE", "/v1/users/bob_acct", { token: bob });
      expect(r.status).to.equal(403);
      const self = await api(srv.url, "DELETE", `/v1/users/${ADMIN.user}`, { token: admin });
      expect(self.status).to.equal(409);
      expect(self.body.error.code).to.equal("conflict");
      const missing = await api(srv.url, "DELETE", "/v1/users/nobody_here", { token: admin });
      expect(missing.status).to.equal(404);
      expect(missing.body.error.code).to.equal("user_not_found");
    });

    it("cascades: nothing of the user is left in any collection, its device session is closed (4004), its stream ends, its tokens are refused", async () => {
      const user = "zed_doomed";
      const zed = await newAccount(srv.url, admin, user);
      await login(srv.url, user, `${user}-password`); // a second refresh family
      await newDevice(srv.url, zed, user, "lamp", "lamp-secret");
      await newDevice(srv.url, zed, user, "spare", "spare-secret");
      const dt = await api(srv.url, "POST", `/v1/users/${user}/devices/lamp/tokens`, { token: zed, json: { token_name: "dash" } });
      expect(dt.status, dt.text).to.equal(200);
      const ut = await api(srv.url, "POST", `/v1/users/${user}/tokens`, { token: zed, json: { name: "script" } });
      expect(ut.status, ut.text).to.equal(200);
      const prop = await api(srv.url, "PUT", `/v3/users/${user}/devices/spare/properties/setpoint`, { token: zed, json: { value: 21 } });
      expect(prop.status, prop.text).to.equal(200);
      const queued = await api(srv.url, "POST", `/v2/users/${user}/devices/spare/relay`, {
        token: zed, json: { in: true }, headers: { Prefer: "respond-async", "Idempotency-Key": "doomed-1" },
      });
      expect(queued.status, queued.text).to.equal(202);
      const dev = await RawDevice.connect({ wsUrl: srv.wsUrl, user, device: "lamp", credentials: "lamp-secret", describe: { level: "output" } });
      const stream = await sse(`${srv.url}/v1/users/${user}/events`, { Authorization: `Bearer ${zed}` });
      expect(stream.status).to.equal(200);
      expect((await dump(srv)).some((d) => d.json.includes(user))).to.equal(true);

      const r = await api(srv.url, "DELETE", `/v1/users/${user}`, { token: admin });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.deep.equal({});

      expect((await dev.closed).code).to.equal(4004);
      await stream.ended;
      const left = (await dump(srv)).filter((d) => d.json.includes(user));
      expect(left, JSON.stringify(left)).to.deep.equal([]);
      for (const token of [zed, dt.body.token as string, ut.body.token as string]) {
        const me = await api(srv.url, "GET", "/v1/me", { token });
        expect(me.status).to.equal(401);
        expect(me.body.error.code).to.equal("unauthorized");
      }
      expect((await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: user, password: `${user}-password` } })).status).to.equal(401);
      expect((await api(srv.url, "GET", `/v1/users/${user}`, { token: admin })).status).to.equal(404);
      expect(srv.relay.services.hub.list(user)).to.deep.equal([]);
      // The name is free again, and the new account starts empty.
      const again = await newAccount(srv.url, admin, user);
      expect((await api(srv.url, "GET", `/v1/users/${user}/devices`, { token: again })).body).to.deep.equal([]);
    });
  });

  describe("what an account is given while it is deleted", () => {
    /**
     * Creates account `name`, then makes `write` with its session while the account's deletion lands between the
     * route's checks and the write's insert into `collection`; answers the write's response.
     */
    async function writeAcrossDeletion(name: string, collection: "devices" | "userTokens" | "dashboards", write: (token: string) => Promise<ApiResponse>) {
      const token = await newAccount(srv.url, admin, name);
      const del = runBefore(srv.relay.services.repos[collection], "insertOne",
        () => api(srv.url, "DELETE", `/v1/users/${name}`, { token: admin }), (doc: { user?: string }) => doc.user === name);
      try {
        const r = await write(token);
        expect(del.ran().status).to.equal(200);
        return r;
      } finally {
        del.restore();
      }
    }
    /** Re-creates the account and answers what of the deleted one it finds in `collection`. */
    async function leftFor(name: string, collection: "devices" | "user_tokens" | "dashboards") {
      await newAccount(srv.url, admin, name, "another-password");
      return srv.store.collection(collection).find({ user: name });
    }

    it("a device created meanwhile answers 404 and is not left (with its credentials) for an account re-created with the name", async () => {
      const r = await writeAcrossDeletion("gone_dev", "devices",
        (token) => api(srv.url, "POST", "/v1/users/gone_dev/devices", { token, json: { device_id: "d1", device_description: "", device_credentials: "c1" } }));
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("user_not_found");
      expect(await leftFor("gone_dev", "devices")).to.deep.equal([]);
    });

    it("a user token created meanwhile answers 404 and does not work for an account re-created with the name", async () => {
      const r = await writeAcrossDeletion("gone_tok", "userTokens",
        (token) => api(srv.url, "POST", "/v1/users/gone_tok/tokens", { token, json: { name: "t", allow: [{ action: "*", target: "*" }] } }));
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("user_not_found");
      expect(await leftFor("gone_tok", "user_tokens")).to.deep.equal([]);
    });

    it("a dashboard created meanwhile answers 404 and is not shown to an account re-created with the name", async () => {
      const r = await writeAcrossDeletion("gone_dash", "dashboards",
        (token) => api(srv.url, "POST", "/v1/users/gone_dash/dashboards", { token, json: { id: "home", name: "Home" } }));
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("dashboard_not_found");
      expect(await leftFor("gone_dash", "dashboards")).to.deep.equal([]);
    });
  });

  describe("GET /v1/users/{user}/export", () => {
    it("the whole account as one document, with no secret or hash of the store in it", async () => {
      const user = "exp_user";
      const tok = await newAccount(srv.url, admin, user);
      await newDevice(srv.url, tok, user, "sensor", "sensor-credentials");
      const dt = await api(srv.url, "POST", `/v1/users/${user}/devices/sensor/tokens`, { token: tok, json: { token_name: "ro", token_resources: ["temp"] } });
      const ut = await api(srv.url, "POST", `/v1/users/${user}/tokens`, { token: tok, json: { name: "script" } });
      const prop = await api(srv.url, "PUT", `/v3/users/${user}/devices/sensor/properties/config`, { token: tok, json: { value: { mode: "eco" } } });
      expect(prop.status, prop.text).to.equal(200);
      const r = await api(srv.url, "GET", `/v1/users/${user}/export`, { token: tok });
      expect(r.status, r.text).to.equal(200);
      expect(r.body).to.include({ format: "thingrelay-account-export", version: 1 });
      expect(r.body.user).to.deep.include({ username: user, admin: false });
      expect(r.body.devices).to.have.length(1);
      expect(r.body.devices[0]).to.deep.include({ device: "sensor", description: "sensor test device", type: "Generic" });
      expect(r.body.device_tokens).to.deep.equal([{ id: dt.body.id, device: "sensor", name: "ro", resources: ["temp"], created_ts: r.body.device_tokens[0].created_ts, expiration: null }]);
      expect(r.body.user_tokens).to.have.length(1);
      expect(r.body.user_tokens[0]).to.include({ id: ut.body.id, name: "script", enabled: true });
      expect(r.body).to.not.have.property("refresh_families");
      expect(r.body.properties).to.deep.equal([{ device: "sensor", property: "config", value: { mode: "eco" }, updated_ts: prop.body.updated_ts }]);
      expect(r.body.calls).to.deep.equal([]);
      expect(r.body).to.not.have.property("idempotency_keys");

      // Every secret the store holds for this account, and every token value the API gave out.
      const secrets = [tok, dt.body.token as string, ut.body.token as string, "sensor-credentials", `${user}-password`];
      for (const { json } of await dump(srv)) {
        const doc = JSON.parse(json) as Record<string, unknown>;
        if (JSON.stringify(doc).includes(user)) {
          for (const k of ["passwordHash", "credentialsHash"]) if (typeof doc[k] === "string") secrets.push(doc[k]);
          if (doc.family !== undefined) secrets.push(doc._id as string, doc.family as string); // refresh token hash, family id
          if (doc.revoked !== undefined) secrets.push(doc._id as string); // a refresh family
        }
      }
      expect(secrets.length).to.be.greaterThan(6);
      for (const secret of secrets) expect(r.text, "export leaks a secret").to.not.include(secret);
    });

    it("an administrator exports any account; another user gets 404; the account's device token gets 403", async () => {
      expect((await api(srv.url, "GET", "/v1/users/bob_acct/export", { token: admin })).status).to.equal(200);
      const owner = (await login(srv.url, "exp_user", "exp_user-password")).access_token;
      const dt = await api(srv.url, "POST", "/v1/users/exp_user/devices/sensor/tokens", { token: owner, json: { token_name: "scoped" } });
      const scoped = await api(srv.url, "GET", "/v1/users/exp_user/export", { token: dt.body.token });
      expect(scoped.status).to.equal(403);
      expect(scoped.body.error.code).to.equal("forbidden");
      const other = await api(srv.url, "GET", "/v1/users/exp_user/export", { token: bob });
      expect(other.status).to.equal(404);
      expect(other.body.error.code).to.equal("user_not_found");
    });
  });
});
