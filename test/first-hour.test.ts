import { expect } from "chai";
import { decodeJwt } from "jose";
import { startServer, ADMIN, TEST_SECRET, type TestServer } from "./helpers/server.js";
import { api, login, newAccount } from "./helpers/api.js";
import { TokenSigner } from "../server/auth/jwt.js";

/** Issue 12 point 8: the smaller things a new user meets in the first hour. */
describe("first-hour fixes (issue 12 point 8)", () => {
  let srv: TestServer;
  let admin: string;
  before(async () => {
    srv = await startServer();
    admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
  });
  after(() => srv.close());

  describe("/oauth/token/ and /oauth/revoke/ with a trailing slash", () => {
    it("POST /oauth/token/ reads the form body like /oauth/token", async () => {
      const r = await api(srv.url, "POST", "/oauth/token/", { form: { grant_type: "password", username: ADMIN.user, password: ADMIN.password } });
      expect(r.status, r.text).to.equal(200);
      expect(r.body.token_type).to.equal("bearer");
      expect(r.body.access_token).to.be.a("string");
    });

    it("POST /oauth/revoke/ reads the form body and revokes the refresh token", async () => {
      const t = await login(srv.url, ADMIN.user, ADMIN.password);
      const r = await api(srv.url, "POST", "/oauth/revoke/", { form: { token: t.refresh_token } });
      expect(r.status, r.text).to.equal(200);
      const again = await api(srv.url, "POST", "/oauth/token/", { form: { grant_type: "refresh_token", refresh_token: t.refresh_token } });
      expect(again.status).to.equal(401);
      expect(again.body.error.message).to.equal("invalid refresh token");
    });

    it("an oversized form body on /oauth/token/ answers 413 stating the limit", async () => {
      const r = await api(srv.url, "POST", "/oauth/token/", { form: `grant_type=password&username=${"x".repeat(9000)}` });
      expect(r.status).to.equal(413);
      expect(r.body).to.deep.equal({ error: { code: "payload_too_large", message: "request body larger than the limit of 8192 bytes" } });
    });
  });

  describe("401 says which case applies", () => {
    const me = (headers: Record<string, string>, path = "/v1/me") => api(srv.url, "GET", path, { headers });

    it("no token: missing", async () => {
      const r = await me({});
      expect(r.status).to.equal(401);
      expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "missing token" } });
      expect(r.headers.get("www-authenticate")).to.equal('Bearer realm="thingrelay"');
    });

    it("not a Bearer header: malformed header", async () => {
      const r = await me({ Authorization: "Basic YWxpY2U6c2VjcmV0" });
      expect(r.status).to.equal(401);
      expect(r.body.error).to.deep.equal({ code: "unauthorized", message: "authorization header must be: Bearer <token>" });
    });

    it("garbage or a token signed with another key: malformed or invalid, nothing more", async () => {
      for (const token of ["not-a-jwt", await new TokenSigner("another-secret-that-is-at-least-32-bytes!!").signAccess(ADMIN.user, "f", Math.floor(Date.now() / 1000))]) {
        const r = await me({ Authorization: `Bearer ${token}` });
        expect(r.status).to.equal(401);
        expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "malformed or invalid token" } });
      }
    });

    it("an expired token we signed: expired", async () => {
      const fam = String(decodeJwt(admin).fam);
      const old = await new TokenSigner(TEST_SECRET).signAccess(ADMIN.user, fam, Math.floor(Date.now() / 1000) - 8000);
      const r = await me({ Authorization: `Bearer ${old}` });
      expect(r.status).to.equal(401);
      expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "token expired" } });
    });

    it("a signed-out session and a deleted user token: revoked; a disabled user token: disabled", async () => {
      const t = await login(srv.url, ADMIN.user, ADMIN.password);
      expect((await api(srv.url, "POST", "/oauth/revoke", { form: { token: t.refresh_token } })).status).to.equal(200);
      let r = await me({ Authorization: `Bearer ${t.access_token}` });
      expect(r.status).to.equal(401);
      expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "token revoked" } });

      const created = await api(srv.url, "POST", `/v1/users/${ADMIN.user}/tokens`, { token: admin, json: { name: "t" } });
      expect(created.status, created.text).to.equal(200);
      expect((await api(srv.url, "PUT", `/v1/users/${ADMIN.user}/tokens/${created.body.id}`, { token: admin, json: { enabled: false } })).status).to.equal(200);
      r = await me({ Authorization: `Bearer ${created.body.token}` });
      expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "token disabled" } });
      expect((await api(srv.url, "DELETE", `/v1/users/${ADMIN.user}/tokens/${created.body.id}`, { token: admin })).status).to.equal(200);
      r = await me({ Authorization: `Bearer ${created.body.token}` });
      expect(r.body).to.deep.equal({ error: { code: "unauthorized", message: "token revoked" } });
    });
  });

  describe("413 states the limit", () => {
    it("a JSON body over THINGRELAY_JSON_LIMIT", async () => {
      const r = await api(srv.url, "POST", `/v1/users/${ADMIN.user}/devices`, { token: admin, raw: JSON.stringify({ device_id: "x", device_description: "y".repeat(300 * 1024) }), headers: { "Content-Type": "application/json" } });
      expect(r.status).to.equal(413);
      expect(r.body).to.deep.equal({ error: { code: "payload_too_large", message: `request body larger than the limit of ${256 * 1024} bytes` } });
    });
  });

  describe("create device with Thinger's newer field names", () => {
    let bob: string;
    before(async () => {
      bob = await newAccount(srv.url, admin, "bob_fh");
    });

    it("{device, credentials, description, type} creates the device", async () => {
      const r = await api(srv.url, "POST", "/v1/users/bob_fh/devices", { token: bob, json: { device: "newer", credentials: "newer-secret", description: "from the new console", type: "Generic" } });
      expect(r.status, r.text).to.equal(201);
      expect(r.body).to.deep.include({ device: "newer", description: "from the new console", type: "Generic" });
      const got = await api(srv.url, "GET", "/v1/users/bob_fh/devices/newer", { token: bob });
      expect(got.body.description).to.equal("from the new console");
    });

    it("name stands in for a missing description", async () => {
      const r = await api(srv.url, "POST", "/v1/users/bob_fh/devices", { token: bob, json: { device: "named", credentials: "s3cret", name: "Kitchen" } });
      expect(r.status, r.text).to.equal(201);
      expect(r.body.description).to.equal("Kitchen");
    });

    it("the newer shape without credentials names the field", async () => {
      const r = await api(srv.url, "POST", "/v1/users/bob_fh/devices", { token: bob, json: { device: "nocreds" } });
      expect(r.status).to.equal(400);
      expect(r.body.error).to.deep.equal({ code: "invalid_request", message: '"credentials" (or "device_credentials") is required and must be a string' });
      expect((await api(srv.url, "GET", "/v1/users/bob_fh/devices/nocreds", { token: bob })).status).to.equal(404);
    });

    it("a bad value names the field as sent (newer names on create and update), not its classic twin", async () => {
      const cases: Array<[string, string, unknown, string]> = [
        ["POST", "/v1/users/bob_fh/devices", { device: "bad-id", credentials: "s3cret" }, '"device" '],
        ["POST", "/v1/users/bob_fh/devices", { device: "badcreds", credentials: 5 }, '"credentials" '],
        ["POST", "/v1/users/bob_fh/devices", { device: "baddesc", credentials: "s3cret", description: 5 }, '"description" '],
        ["POST", "/v1/users/bob_fh/devices", { device: "badname", credentials: "s3cret", name: 5 }, '"name" '],
        ["POST", "/v1/users/bob_fh/devices", { device: "badtype", credentials: "s3cret", type: 5 }, '"type" '],
        ["PUT", "/v1/users/bob_fh/devices/newer", { description: null }, '"description" '],
        ["PUT", "/v1/users/bob_fh/devices/newer", { name: 5 }, '"name" '],
        ["PUT", "/v1/users/bob_fh/devices/newer", { credentials: "" }, '"credentials" '],
        ["PUT", "/v1/users/bob_fh/devices/newer", { device_credentials: "" }, '"device_credentials" '],
        ["POST", "/v1/users/bob_fh/devices", { device_id: "classic", device_credentials: "s3cret", device_type: 5 }, '"device_type" '],
      ];
      for (const [method, path, json, field] of cases) {
        const r = await api(srv.url, method, path, { token: bob, json });
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
        expect(r.body.error.message, JSON.stringify(json)).to.satisfy((m: string) => m.startsWith(field));
      }
    });

    it("mixing both shapes answers 400 naming the expected fields, and creates nothing", async () => {
      const r = await api(srv.url, "POST", "/v1/users/bob_fh/devices", { token: bob, json: { device_id: "mixed", credentials: "s3cret" } });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
      expect(r.body.error.message).to.include("device_id, device_credentials, device_description, device_type").and.include("device, credentials, description, type, name");
      expect((await api(srv.url, "GET", "/v1/users/bob_fh/devices/mixed", { token: bob })).status).to.equal(404);
    });
  });
});
