import { expect } from "chai";
import { request, type IncomingHttpHeaders } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { startServer, ADMIN, TEST_SECRET, type TestServer } from "./helpers/server.js";
import { api, login, type ApiResponse } from "./helpers/api.js";
import { OAuthService, REFRESH_TOKEN_TTL_MS, hashToken } from "../server/oauth/service.js";
import { PasswordHasher } from "../server/auth/passwords.js";
import { TokenSigner } from "../server/auth/jwt.js";
import { RevocationCache } from "../server/auth/authenticator.js";
import { createLogger } from "../server/log.js";
import { openNedbStore } from "../server/store/nedb.js";
import { Repositories } from "../server/store/repos.js";
import type { Store } from "../server/store/types.js";
import { AppError } from "../server/errors.js";
import { WindowLimiter } from "../server/auth/limiter.js";

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
}

/**
 * A request through node:http, which (unlike fetch) can pick the source address, so tests can be "another
 * client" on 127.0.0.2, and can send a chunked body with no Content-Length.
 */
function raw(port: number, method: string, path: string, o: { body?: string | Buffer; type?: string; localAddress?: string; chunked?: boolean } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (o.type) headers["Content-Type"] = o.type;
    if (o.body !== undefined && !o.chunked) headers["Content-Length"] = String(Buffer.byteLength(o.body));
    if (o.chunked) headers["Transfer-Encoding"] = "chunked";
    const req = request({ host: "127.0.0.1", port, method, path, headers, ...(o.localAddress ? { localAddress: o.localAddress } : {}) }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, body });
      });
    });
    req.on("error", reject);
    if (o.body !== undefined) {
      if (o.chunked) {
        // Several chunks, so the server cannot learn the size up front.
        const b = Buffer.from(o.body);
        for (let i = 0; i < b.length; i += 1024) req.write(b.subarray(i, i + 1024));
      } else {
        req.write(o.body);
      }
    }
    req.end();
  });
}

const form = (o: Record<string, string>) => new URLSearchParams(o).toString();
const passwordForm = (username: string, password: string) => form({ grant_type: "password", username, password });

function expectError(r: ApiResponse | RawResponse, status: number, code: string, message?: string): void {
  expect(r.status, r.text).to.equal(status);
  expect(Object.keys(r.body)).to.deep.equal(["error"]);
  expect(r.body.error.code).to.equal(code);
  if (message !== undefined) expect(r.body.error.message).to.equal(message);
}

describe("oauth: POST /oauth/token", () => {
  let srv: TestServer;
  let adminToken: string;

  before(async () => {
    srv = await startServer();
    adminToken = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    for (const u of ["alice", "bob", "carol", "dave", "erin"]) {
      const r = await api(srv.url, "POST", "/v1/users", { token: adminToken, json: { username: u, password: `${u}-password` } });
      expect(r.status).to.equal(201);
    }
  });
  after(async () => {
    await srv?.close();
  });

  const token = (o: Parameters<typeof api>[3]) => api(srv.url, "POST", "/oauth/token", o);
  const me = (t: string) => api(srv.url, "GET", "/v1/me", { token: t });
  const refreshWith = (rt: string) => token({ form: { grant_type: "refresh_token", refresh_token: rt } });

  describe("password grant", () => {
    it("200 with exactly Thinger's body, no-store and no-cache", async () => {
      const r = await token({ form: { grant_type: "password", username: "alice", password: "alice-password" } });
      expect(r.status).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
      expect(r.body).to.deep.include({ expires_in: 7200, scope: null, token_type: "bearer" });
      expect(r.body.access_token).to.be.a("string");
      // ≥ 256 random bits, base64url
      expect(r.body.refresh_token).to.match(/^[A-Za-z0-9_-]{43,}$/);
      expect(r.headers.get("cache-control")).to.equal("no-store");
      expect(r.headers.get("pragma")).to.equal("no-cache");
      expect(r.headers.get("content-type")).to.match(/^application\/json/);
    });

    it("the access JWT payload is {usr,fam,iat,exp} with exp - iat = 7200 (fam = refresh family, for revocation)", async () => {
      const r = await token({ form: { grant_type: "password", username: "alice", password: "alice-password" } });
      const claims = decodeJwt(r.body.access_token);
      expect(Object.keys(claims).sort()).to.deep.equal(["exp", "fam", "iat", "usr"]);
      expect(claims.usr).to.equal("alice");
      expect(claims.exp! - claims.iat!).to.equal(7200);
      expect(Math.abs(claims.iat! - Date.now() / 1000)).to.be.below(120);
      const fam = await srv.relay.services.repos.families.findOne({ _id: claims.fam as string });
      expect(fam).to.deep.include({ user: "alice", revoked: false });
      // The refresh token is stored only as a hash, in the same family.
      expect(await srv.relay.services.repos.refreshTokens.findOne({ _id: r.body.refresh_token })).to.equal(null);
      expect(await srv.relay.services.repos.refreshTokens.findOne({ _id: hashToken(r.body.refresh_token) })).to.deep.include({ family: claims.fam, user: "alice", used: false });
    });

    it("accepts a JSON body as well as a form", async () => {
      const r = await token({ json: { grant_type: "password", username: "alice", password: "alice-password" } });
      expect(r.status).to.equal(200);
      expect(r.body.token_type).to.equal("bearer");
      expect((await me(r.body.access_token)).body.user).to.equal("alice");
    });

    it("the access token authenticates the user", async () => {
      const r = await token({ form: { grant_type: "password", username: "bob", password: "bob-password" } });
      const m = await me(r.body.access_token);
      expect(m.status).to.equal(200);
      expect(m.body).to.deep.include({ user: "bob", token_kind: "session", admin: false });
    });

    it("wrong password and unknown user: the same 401 invalid_grant body and headers", async () => {
      const wrong = await token({ form: { grant_type: "password", username: "alice", password: "not-her-password" } });
      const unknown = await token({ form: { grant_type: "password", username: "nobody_here", password: "not-her-password" } });
      const badName = await token({ form: { grant_type: "password", username: "no such name", password: "x" } });
      for (const r of [wrong, unknown, badName]) {
        expect(r.status).to.equal(401);
        expect(r.body).to.deep.equal({ error: { code: "invalid_grant", message: "invalid username or password" } });
      }
      const headerSet = (r: ApiResponse) => [...r.headers.keys()].filter((k) => !["date", "x-request-id"].includes(k)).sort().map((k) => `${k}: ${r.headers.get(k)}`);
      expect(headerSet(unknown)).to.deep.equal(headerSet(wrong));
      expect(unknown.text).to.equal(wrong.text);
    });

    it("a missing username or password is 400 invalid_request", async () => {
      expectError(await token({ form: { grant_type: "password", username: "alice" } }), 400, "invalid_request");
      expectError(await token({ form: { grant_type: "password", password: "x" } }), 400, "invalid_request");
    });

    it("a non-string username (JSON object, NoSQL operator) is 400 invalid_request, never a match", async () => {
      expectError(await token({ json: { grant_type: "password", username: { $ne: null }, password: "alice-password" } }), 400, "invalid_request");
      expectError(await token({ json: { grant_type: "password", username: "alice", password: { $ne: null } } }), 400, "invalid_request");
      expectError(await token({ form: "grant_type=password&username[$ne]=x&password=alice-password" }), 400, "invalid_request");
    });
  });

  describe("request validation", () => {
    it("missing or empty grant_type: 400 invalid_request", async () => {
      expectError(await token({ form: { username: "alice", password: "alice-password" } }), 400, "invalid_request");
      expectError(await token({ form: { grant_type: "" } }), 400, "invalid_request");
      expectError(await token({ json: {} }), 400, "invalid_request");
    });

    it("a repeated parameter: 400 invalid_request (RFC 6749 §3.2)", async () => {
      expectError(await token({ form: "grant_type=password&grant_type=password&username=alice&password=alice-password" }), 400, "invalid_request");
      expectError(await token({ form: "grant_type=password&username=alice&username=bob&password=alice-password" }), 400, "invalid_request");
      expectError(await token({ form: "grant_type=password&username=alice&password=alice-password&password=alice-password" }), 400, "invalid_request");
    });

    it("grant_type[]=x and grant_type as a non-string: 400 invalid_request", async () => {
      expectError(await token({ form: "grant_type[]=password&username=alice&password=alice-password" }), 400, "invalid_request");
      expectError(await token({ form: "grant_type[a]=password&username=alice&password=alice-password" }), 400, "invalid_request");
      expectError(await token({ json: { grant_type: ["password"], username: "alice", password: "alice-password" } }), 400, "invalid_request");
      expectError(await token({ json: { grant_type: 1 } }), 400, "invalid_request");
    });

    it("a JSON body that is not an object: 400", async () => {
      for (const body of ["[]", '"password"', "null", "42"]) {
        const r = await token({ raw: body, headers: { "Content-Type": "application/json" } });
        expect(r.status, body).to.equal(400);
        expect(["invalid_request", "invalid_json"]).to.include(r.body.error.code);
      }
    });

    it("unknown grant types (client_credentials, foo, authorization_code): 400 unsupported_grant_type", async () => {
      for (const g of ["client_credentials", "foo", "authorization_code", "PASSWORD"]) {
        expectError(await token({ form: { grant_type: g, username: "alice", password: "alice-password" } }), 400, "unsupported_grant_type");
      }
    });

    it("GET (or PUT, DELETE) /oauth/token and /oauth/revoke: 405 with Allow: POST", async () => {
      for (const path of ["/oauth/token", "/oauth/revoke"]) {
        for (const method of ["GET", "PUT", "DELETE"]) {
          const r = await api(srv.url, method, path);
          expectError(r, 405, "method_not_allowed");
          expect(r.headers.get("allow"), `${method} ${path}`).to.equal("POST");
        }
      }
    });

    it("text/plain (or no content type): 415 unsupported_media_type", async () => {
      const body = passwordForm("alice", "alice-password");
      expectError(await token({ raw: body, headers: { "Content-Type": "text/plain" } }), 415, "unsupported_media_type");
      expectError(await raw(srv.port, "POST", "/oauth/token", { body }), 415, "unsupported_media_type");
    });

    it("a body over 8 KB: 413 for form and JSON, with Content-Length or chunked", async () => {
      const pad = "x".repeat(9 * 1024);
      const f = form({ grant_type: "password", username: "alice", password: "alice-password", pad });
      const j = JSON.stringify({ grant_type: "password", username: "alice", password: "alice-password", pad });
      expectError(await token({ form: f }), 413, "payload_too_large");
      expectError(await token({ raw: j, headers: { "Content-Type": "application/json" } }), 413, "payload_too_large");
      expectError(await raw(srv.port, "POST", "/oauth/token", { body: f, type: "application/x-www-form-urlencoded", chunked: true }), 413, "payload_too_large");
      expectError(await raw(srv.port, "POST", "/oauth/token", { body: j, type: "application/json", chunked: true }), 413, "payload_too_large");
      // A body just under the limit is fine.
      const small = form({ grant_type: "password", username: "alice", password: "alice-password", pad: "x".repeat(7 * 1024) });
      expect((await token({ form: small })).status).to.equal(200);
    });

    it("malformed JSON: 400 invalid_json", async () => {
      expectError(await token({ raw: '{"grant_type":', headers: { "Content-Type": "application/json" } }), 400, "invalid_json");
    });
  });

  describe("refresh grant", () => {
    it("rotates: a new refresh and access token in the same family; the new ones work", async () => {
      const first = await login(srv.url, "carol", "carol-password");
      const r = await refreshWith(first.refresh_token);
      expect(r.status).to.equal(200);
      expect(Object.keys(r.body).sort()).to.deep.equal(["access_token", "expires_in", "refresh_token", "scope", "token_type"]);
      expect(r.body).to.deep.include({ expires_in: 7200, scope: null, token_type: "bearer" });
      expect(r.headers.get("cache-control")).to.equal("no-store");
      expect(r.headers.get("pragma")).to.equal("no-cache");
      expect(r.body.refresh_token).to.not.equal(first.refresh_token);
      expect(decodeJwt(r.body.access_token).fam).to.equal(decodeJwt(first.access_token).fam);
      expect(decodeJwt(r.body.access_token).usr).to.equal("carol");
      expect((await me(r.body.access_token)).status).to.equal(200);
      // The rotated-out access token stays valid until its own expiry (it was not reused, nothing was revoked).
      expect((await me(first.access_token)).status).to.equal(200);
      const next = await refreshWith(r.body.refresh_token);
      expect(next.status).to.equal(200);
    });

    it("also accepts JSON", async () => {
      const first = await login(srv.url, "carol", "carol-password");
      const r = await token({ json: { grant_type: "refresh_token", refresh_token: first.refresh_token } });
      expect(r.status).to.equal(200);
      expect(r.body.token_type).to.equal("bearer");
    });

    it("an unknown refresh token, an access token, or an empty one: 401 invalid refresh token", async () => {
      const t = await login(srv.url, "carol", "carol-password");
      for (const rt of ["garbage", t.access_token, "x".repeat(300), `${t.refresh_token}x`]) {
        expectError(await refreshWith(rt), 401, "invalid_grant", "invalid refresh token");
      }
      expectError(await token({ form: { grant_type: "refresh_token" } }), 400, "invalid_request");
      // None of these disturbed the real family.
      expect((await refreshWith(t.refresh_token)).status).to.equal(200);
    });

    it("reusing a rotated refresh token revokes the family: newest refresh token and every access token of it answer 401", async () => {
      const a = await login(srv.url, "dave", "dave-password");
      const other = await login(srv.url, "dave", "dave-password"); // another session (family) of the same user
      const b = (await refreshWith(a.refresh_token)).body;
      const c = (await refreshWith(b.refresh_token)).body;
      expect((await me(c.access_token)).status).to.equal(200);
      // Replay of the first (rotated) token: refused, and the family dies.
      expectError(await refreshWith(a.refresh_token), 401, "invalid_grant", "invalid refresh token");
      expectError(await refreshWith(c.refresh_token), 401, "invalid_grant", "invalid refresh token");
      for (const t of [a.access_token, b.access_token, c.access_token]) {
        const r = await me(t);
        expectError(r, 401, "unauthorized");
        expect(r.headers.get("www-authenticate")).to.match(/error="invalid_token"/);
      }
      const fam = await srv.relay.services.repos.families.findOne({ _id: decodeJwt(a.access_token).fam as string });
      expect(fam).to.deep.include({ revoked: true, revokedReason: "refresh token reuse" });
      // The user's other session is untouched.
      expect((await me(other.access_token)).status).to.equal(200);
      expect((await refreshWith(other.refresh_token)).status).to.equal(200);
    });

    it("10 parallel refreshes with one token: exactly one 200, the rest 401 invalid refresh token", async () => {
      const t = await login(srv.url, "erin", "erin-password");
      const results = await Promise.all(Array.from({ length: 10 }, () => refreshWith(t.refresh_token)));
      const ok = results.filter((r) => r.status === 200);
      expect(ok).to.have.length(1);
      for (const r of results.filter((x) => x.status !== 200)) expectError(r, 401, "invalid_grant", "invalid refresh token");
      // The losers are replays of a used token: by the reuse rule the family is revoked, winner included.
      expectError(await refreshWith(ok[0]!.body.refresh_token), 401, "invalid_grant", "invalid refresh token");
      expect((await me(ok[0]!.body.access_token)).status).to.equal(401);
    });

    it("a replay that revokes the family between the winner's claim and its answer leaves the winner its 200", async () => {
      const t = await login(srv.url, "erin", "erin-password");
      const repos = srv.relay.services.repos;
      const consume = repos.consumeRefreshToken;
      let replay: ApiResponse | undefined;
      // The interleaving that parallel refreshes produce under load, made certain: the winner has claimed the token,
      // and a replay of it runs to its end (it sees the token used and revokes the family) before the winner goes on.
      repos.consumeRefreshToken = async function (this: typeof repos, ...args: Parameters<typeof consume>) {
        repos.consumeRefreshToken = consume;
        const doc = await consume.apply(this, args);
        replay = await refreshWith(t.refresh_token);
        return doc;
      };
      try {
        const winner = await refreshWith(t.refresh_token);
        expect(winner.status).to.equal(200);
        expectError(replay!, 401, "invalid_grant", "invalid refresh token");
        // The family is revoked all the same: the winner's fresh tokens are dead.
        expectError(await refreshWith(winner.body.refresh_token), 401, "invalid_grant", "invalid refresh token");
        expect((await me(winner.body.access_token)).status).to.equal(401);
        const fam = await repos.families.findOne({ _id: decodeJwt(t.access_token).fam as string });
        expect(fam).to.deep.include({ revoked: true, revokedReason: "refresh token reuse" });
      } finally {
        repos.consumeRefreshToken = consume;
      }
    });
  });

  describe("password change and revocation", () => {
    it("PUT /v1/users/{user}/password kills every refresh token and access token of the account", async () => {
      const s1 = await login(srv.url, "bob", "bob-password");
      const s2 = await login(srv.url, "bob", "bob-password");
      const aliceSession = await login(srv.url, "alice", "alice-password");
      const r = await api(srv.url, "PUT", "/v1/users/bob/password", { token: s1.access_token, json: { current_password: "bob-password", password: "bob-new-password" } });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({});
      for (const s of [s1, s2]) {
        expectError(await me(s.access_token), 401, "unauthorized");
        expectError(await refreshWith(s.refresh_token), 401, "invalid_grant", "invalid refresh token");
      }
      expectError(await token({ form: { grant_type: "password", username: "bob", password: "bob-password" } }), 401, "invalid_grant", "invalid username or password");
      const fresh = await login(srv.url, "bob", "bob-new-password");
      expect((await me(fresh.access_token)).body.user).to.equal("bob");
      // Other accounts keep their sessions.
      expect((await me(aliceSession.access_token)).status).to.equal(200);
    });

    /**
     * A sign-in whose password check overlaps a change of the account: `change` runs to its end after the grant
     * checked the password and before it creates the refresh family (the order a slow scrypt gives under load).
     */
    async function signInAcross(user: string, password: string, change: () => Promise<ApiResponse>): Promise<{ grant: ApiResponse; changed: ApiResponse }> {
      const families = srv.relay.services.repos.families;
      const insert = families.insertOne;
      let changed: ApiResponse | undefined;
      families.insertOne = async function (this: typeof families, ...args: Parameters<typeof insert>) {
        families.insertOne = insert;
        changed = await change();
        return insert.apply(this, args);
      };
      try {
        const grant = await token({ form: { grant_type: "password", username: user, password } });
        return { grant, changed: changed! };
      } finally {
        families.insertOne = insert;
      }
    }

    it("a sign-in with the old password that overlaps a password change gets no session that outlives the change", async () => {
      expect((await api(srv.url, "POST", "/v1/users", { token: adminToken, json: { username: "frank", password: "frank-password" } })).status).to.equal(201);
      const { grant, changed } = await signInAcross("frank", "frank-password",
        () => api(srv.url, "PUT", "/v1/users/frank/password", { token: adminToken, json: { password: "frank-new-password" } }));
      expect(changed.status).to.equal(200);
      expectError(grant, 401, "invalid_grant", "invalid username or password");
      expect(await srv.relay.services.repos.families.find({ user: "frank", revoked: false })).to.deep.equal([]);
      expect(await srv.relay.services.repos.refreshTokens.count({ user: "frank" })).to.equal(0);
      expect((await me((await login(srv.url, "frank", "frank-new-password")).access_token)).body.user).to.equal("frank");
    });

    it("a sign-in that overlaps the account being disabled gets no session (none left to revive on re-enable)", async () => {
      expect((await api(srv.url, "POST", "/v1/users", { token: adminToken, json: { username: "gina", password: "gina-password" } })).status).to.equal(201);
      const { grant, changed } = await signInAcross("gina", "gina-password",
        () => api(srv.url, "PUT", "/v1/users/gina", { token: adminToken, json: { enabled: false } }));
      expect(changed.status).to.equal(200);
      expectError(grant, 401, "invalid_grant", "this account is disabled");
      expect((await api(srv.url, "PUT", "/v1/users/gina", { token: adminToken, json: { enabled: true } })).status).to.equal(200);
      expect(await srv.relay.services.repos.families.find({ user: "gina", revoked: false })).to.deep.equal([]);
      expect(await srv.relay.services.repos.refreshTokens.count({ user: "gina" })).to.equal(0);
    });

    it("a sign-in that overlaps the account's deletion leaves no session for an account re-created with that name", async () => {
      expect((await api(srv.url, "POST", "/v1/users", { token: adminToken, json: { username: "hank", password: "hank-password" } })).status).to.equal(201);
      const { grant, changed } = await signInAcross("hank", "hank-password", () => api(srv.url, "DELETE", "/v1/users/hank", { token: adminToken }));
      expect(changed.status).to.equal(200);
      expectError(grant, 401, "invalid_grant", "invalid username or password");
      expect((await api(srv.url, "POST", "/v1/users", { token: adminToken, json: { username: "hank", password: "other-password" } })).status).to.equal(201);
      expect(await srv.relay.services.repos.families.find({ user: "hank" })).to.deep.equal([]);
      expect(await srv.relay.services.repos.refreshTokens.count({ user: "hank" })).to.equal(0);
    });

    it("password change: another account's path is 404, a short password 400, extra fields 400", async () => {
      const alice = await login(srv.url, "alice", "alice-password");
      expectError(await api(srv.url, "PUT", "/v1/users/bob/password", { token: alice.access_token, json: { password: "hijacked-password" } }), 404, "user_not_found");
      expectError(await api(srv.url, "PUT", "/v1/users/alice/password", { token: alice.access_token, json: { password: "short" } }), 400, "invalid_request");
      expectError(await api(srv.url, "PUT", "/v1/users/alice/password", { token: alice.access_token, json: { password: "long-enough-pw", admin: true } }), 400, "invalid_request");
      expectError(await api(srv.url, "PUT", "/v1/users/alice/password", { json: { password: "long-enough-pw" } }), 401, "unauthorized");
      expect((await me(alice.access_token)).status).to.equal(200);
    });

    it("password change needs the current password: missing 400, wrong 403, and nothing changes", async () => {
      const alice = await login(srv.url, "alice", "alice-password");
      const path = "/v1/users/alice/password";
      expectError(await api(srv.url, "PUT", path, { token: alice.access_token, json: { password: "taken-over-pw" } }), 400, "invalid_request");
      expectError(await api(srv.url, "PUT", path, { token: alice.access_token, json: { current_password: "guess-guess", password: "taken-over-pw" } }), 403, "forbidden");
      expect((await me(alice.access_token)).status).to.equal(200);
      await login(srv.url, "alice", "alice-password");
      expectError(await token({ form: { grant_type: "password", username: "alice", password: "taken-over-pw" } }), 401, "invalid_grant", "invalid username or password");
    });

    it("POST /oauth/revoke with a refresh token revokes its family (refresh and access tokens)", async () => {
      const s = await login(srv.url, "alice", "alice-password");
      const r = await api(srv.url, "POST", "/oauth/revoke", { form: { token: s.refresh_token } });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({});
      expectError(await refreshWith(s.refresh_token), 401, "invalid_grant", "invalid refresh token");
      expectError(await me(s.access_token), 401, "unauthorized");
    });

    it("POST /oauth/revoke of a rotated-out refresh token still revokes the family", async () => {
      const s = await login(srv.url, "alice", "alice-password");
      const next = (await refreshWith(s.refresh_token)).body;
      expect((await api(srv.url, "POST", "/oauth/revoke", { json: { token: s.refresh_token } })).status).to.equal(200);
      expectError(await refreshWith(next.refresh_token), 401, "invalid_grant", "invalid refresh token");
      expectError(await me(next.access_token), 401, "unauthorized");
    });

    it("POST /oauth/revoke of garbage answers 200 (RFC 7009 §2.2); a missing token is 400", async () => {
      for (const t of ["garbage", "x".repeat(1000), "eyJhbGciOiJub25lIn0.e30."]) {
        const r = await api(srv.url, "POST", "/oauth/revoke", { form: { token: t } });
        expect(r.status, t).to.equal(200);
        expect(r.body).to.deep.equal({});
      }
      expectError(await api(srv.url, "POST", "/oauth/revoke", { form: {} }), 400, "invalid_request");
      expectError(await api(srv.url, "POST", "/oauth/revoke", { form: "token=a&token=b" }), 400, "invalid_request");
    });
  });

  describe("logs", () => {
    it("no password, refresh token or access token appears in any log line", () => {
    const logs = srv.logs.join("");
    expect(logs).to.include("/oauth/token");
    for (const secret of ["alice-password", "bob-password", "bob-new-password", "carol-password", "not-her-password", ADMIN.password, "eyJhbGciOiJIUzI1NiIs"]) {
      expect(logs, secret).not.to.include(secret);
    }
    });
  });
});

describe("oauth: brute-force protection on the password grant", () => {
  let srv: TestServer;
  const limits = { perAccountAndClient: 3, perClient: 8, perAccount: 6, windowMs: 60_000 };

  before(async () => {
    srv = await startServer({ bruteForce: limits });
    const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    for (const u of ["victim", "racer", "spray1"]) {
      expect((await api(srv.url, "POST", "/v1/users", { token: admin, json: { username: u, password: `${u}-password` } })).status).to.equal(201);
    }
  });
  after(async () => {
    await srv?.close();
  });

  const attempt = (username: string, password: string, localAddress: string) =>
    raw(srv.port, "POST", "/oauth/token", { body: passwordForm(username, password), type: "application/x-www-form-urlencoded", localAddress });

  it("after N failures for one account from one address: 429 with Retry-After, even with the right password; the real user elsewhere still gets 200", async () => {
    for (let i = 0; i < limits.perAccountAndClient; i++) {
      expectError(await attempt("victim", `guess-${i}`, "127.0.0.1"), 401, "invalid_grant", "invalid username or password");
    }
    const blocked = await attempt("victim", "guess-x", "127.0.0.1");
    expectError(blocked, 429, "too_many_requests");
    const retry = Number(blocked.headers["retry-after"]);
    expect(Number.isInteger(retry)).to.equal(true);
    expect(retry).to.be.within(1, limits.windowMs / 1000);
    expectError(await attempt("victim", "victim-password", "127.0.0.1"), 429, "too_many_requests");
    // The real user, from another address.
    const ok = await attempt("victim", "victim-password", "127.0.0.2");
    expect(ok.status, ok.text).to.equal(200);
    expect(ok.body.token_type).to.equal("bearer");
  });

  it("an address that failed on one account is not locked out of another account", async () => {
    const r = await attempt("spray1", "spray1-password", "127.0.0.1");
    expect(r.status, r.text).to.equal(200);
  });

  it("failures across many addresses lock the account for new addresses, not for addresses it logged in from", async () => {
    // victim has 3 failures (from 127.0.0.1) counted against the account; add 3 more from other addresses.
    for (const addr of ["127.0.0.3", "127.0.0.4", "127.0.0.5"]) expectError(await attempt("victim", "wrong-pw", addr), 401, "invalid_grant");
    expectError(await attempt("victim", "victim-password", "127.0.0.6"), 429, "too_many_requests");
    // 127.0.0.2 logged in successfully before: exempt from the account-wide lock.
    expect((await attempt("victim", "victim-password", "127.0.0.2")).status).to.equal(200);
  });

  it("one address spraying many accounts is throttled (per client)", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < limits.perClient + 2; i++) statuses.push((await attempt(`nobody${i}`, "pw-guess", "127.0.0.7")).status);
    expect(statuses.slice(0, limits.perClient)).to.deep.equal(Array(limits.perClient).fill(401));
    expect(statuses.slice(limits.perClient)).to.deep.equal([429, 429]);
  });

  it("429 and 401 bodies do not reveal whether the account exists", async () => {
    const unknown = await attempt("ghost", "pw", "127.0.0.8");
    const wrong = await attempt("racer", "pw", "127.0.0.8");
    expect(unknown.text).to.equal(wrong.text);
    for (let i = 0; i < 3; i++) {
      await attempt("ghost", "pw", "127.0.0.8");
      await attempt("racer", "pw", "127.0.0.8");
    }
    const u429 = await attempt("ghost", "pw", "127.0.0.8");
    const w429 = await attempt("racer", "pw", "127.0.0.8");
    expect(u429.status).to.equal(429);
    expect(u429.text).to.equal(w429.text);
  });

  it("parallel guesses cannot exceed the limit (attempts are counted before the hash is checked)", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => attempt("racer", `parallel-${i}`, "127.0.0.9")));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 401).length, JSON.stringify(statuses)).to.be.at.most(limits.perAccountAndClient);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).to.deep.equal([]);
  });
});

describe("oauth: OAuthService with an injected clock", () => {
  let store: Store;
  let dir: string;
  let repos: Repositories;
  let clock: { t: number; now(): number };
  let oauth: OAuthService;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-oauth-"));
    store = await openNedbStore(dir);
    repos = new Repositories(store);
    const passwords = new PasswordHasher(10);
    await repos.users.insertOne({ _id: "alice", username: "alice", passwordHash: await passwords.hash("alice-password"), admin: false, createdAt: 0, passwordChangedAt: 0 });
    clock = { t: Date.now(), now() {
      return this.t;
    } };
    oauth = new OAuthService(repos, passwords, new TokenSigner(TEST_SECRET), new RevocationCache(), createLogger("silent"),
      { perAccountAndClient: 2, perClient: 100, perAccount: 100, windowMs: 60_000 }, clock);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const errOf = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      return e as AppError;
    }
    throw new Error("expected a failure");
  };

  it("the lock lifts when the window has passed, and Retry-After counts down to it", async () => {
    await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"));
    await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"));
    const locked = await errOf(oauth.passwordGrant("alice", "alice-password", "10.0.0.1"));
    expect([locked.code, locked.headers["Retry-After"]]).to.deep.equal(["too_many_requests", "60"]);
    clock.t += 45_000;
    expect((await errOf(oauth.passwordGrant("alice", "alice-password", "10.0.0.1"))).headers["Retry-After"]).to.equal("15");
    clock.t += 15_000;
    expect((await oauth.passwordGrant("alice", "alice-password", "10.0.0.1")).token_type).to.equal("bearer");
  });

  it("a successful login clears the failures of that account and address", async () => {
    await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"));
    await oauth.passwordGrant("alice", "alice-password", "10.0.0.1");
    await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"));
    expect((await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"))).code).to.equal("invalid_grant");
    expect((await errOf(oauth.passwordGrant("alice", "bad", "10.0.0.1"))).code).to.equal("too_many_requests");
  });

  it("parallel guesses: attempts are counted before the (slow) hash check, so no more than the limit get checked", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let checked = 0;
    class Slow extends PasswordHasher {
      override async verify(password: string, stored: string): Promise<boolean> {
        checked += 1;
        await gate;
        return await super.verify(password, stored);
      }
    }
    const slow = new OAuthService(repos, new Slow(10), new TokenSigner(TEST_SECRET), new RevocationCache(), createLogger("silent"),
      { perAccountAndClient: 2, perClient: 100, perAccount: 100, windowMs: 60_000 }, clock);
    const pending = Array.from({ length: 10 }, (_, i) => errOf(slow.passwordGrant("alice", `guess-${i}`, "10.0.0.1")));
    await new Promise((r) => setImmediate(r));
    release();
    const codes = (await Promise.all(pending)).map((e) => e.code);
    expect(codes.filter((c) => c === "invalid_grant")).to.have.length(2);
    expect(codes.filter((c) => c === "too_many_requests")).to.have.length(8);
    expect(checked).to.equal(2);
  });

  it("throttled attempts do not count: a locked address cannot push an account into its account-wide lock", async () => {
    const svc = new OAuthService(repos, new PasswordHasher(10), new TokenSigner(TEST_SECRET), new RevocationCache(), createLogger("silent"),
      { perAccountAndClient: 2, perClient: 100, perAccount: 4, windowMs: 60_000 }, clock);
    for (let i = 0; i < 2; i++) expect((await errOf(svc.passwordGrant("alice", "bad", "10.0.0.1"))).code).to.equal("invalid_grant");
    for (let i = 0; i < 10; i++) expect((await errOf(svc.passwordGrant("alice", "bad", "10.0.0.1"))).code).to.equal("too_many_requests");
    // Only 2 real failures counted against the account: a new address may still try (and log in).
    expect((await svc.passwordGrant("alice", "alice-password", "10.0.0.2")).token_type).to.equal("bearer");
  });

  it("successful logins do not use up the per-address or per-account budget", async () => {
    const svc = new OAuthService(repos, new PasswordHasher(10), new TokenSigner(TEST_SECRET), new RevocationCache(), createLogger("silent"),
      { perAccountAndClient: 2, perClient: 2, perAccount: 2, windowMs: 60_000 }, clock);
    for (let i = 0; i < 5; i++) expect((await svc.passwordGrant("alice", "alice-password", "10.0.0.1")).token_type).to.equal("bearer");
    for (let i = 0; i < 5; i++) expect((await svc.passwordGrant("alice", "alice-password", `10.0.1.${i}`)).token_type).to.equal("bearer");
  });

  it("a refresh token expires after ~60 days", async () => {
    const t = await oauth.passwordGrant("alice", "alice-password", "10.0.0.1");
    clock.t += REFRESH_TOKEN_TTL_MS - 1000;
    const t2 = await oauth.refreshGrant(t.refresh_token);
    clock.t += REFRESH_TOKEN_TTL_MS;
    const e = await errOf(oauth.refreshGrant(t2.refresh_token));
    expect([e.code, e.status, e.message]).to.deep.equal(["invalid_grant", 401, "invalid refresh token"]);
  });

  it("access tokens are stamped with the service clock", async () => {
    const t = await oauth.passwordGrant("alice", "alice-password", "10.0.0.1");
    const c = decodeJwt(t.access_token);
    expect(c.iat).to.equal(Math.floor(clock.t / 1000));
    expect(c.exp).to.equal(Math.floor(clock.t / 1000) + 7200);
  });
});

describe("oauth: WindowLimiter", () => {
  const clockAt = (t: number) => ({ t, now() {
    return this.t;
  } });

  it("allows `limit` hits per window, then refuses with the seconds left", () => {
    const clock = clockAt(0);
    const l = new WindowLimiter(2, 10_000, clock);
    expect([l.hit("k").allowed, l.hit("k").allowed, l.hit("k")]).to.deep.equal([true, true, { allowed: false, retryAfterS: 10 }]);
    expect(l.peek("k")).to.deep.equal({ allowed: false, retryAfterS: 10 });
    expect(l.hit("other").allowed).to.equal(true);
    clock.t = 9_001;
    expect(l.hit("k")).to.deep.equal({ allowed: false, retryAfterS: 1 });
    clock.t = 10_000;
    expect(l.hit("k").allowed).to.equal(true);
  });

  it("release gives back one hit of the current window only", () => {
    const clock = clockAt(0);
    const l = new WindowLimiter(1, 1_000, clock);
    l.hit("k");
    l.release("k");
    expect(l.hit("k").allowed).to.equal(true);
    expect(l.hit("k").allowed).to.equal(false);
    l.release("k");
    l.release("k");
    l.release("k"); // never below zero
    expect(l.hit("k").allowed).to.equal(true);
    expect(l.hit("k").allowed).to.equal(false);
    l.release("unknown");
    expect(l.size).to.equal(1);
  });

  it("reset forgets a key", () => {
    const l = new WindowLimiter(1, 60_000, clockAt(0));
    l.hit("k");
    expect(l.hit("k").allowed).to.equal(false);
    l.reset("k");
    expect(l.hit("k").allowed).to.equal(true);
  });

  it("stays bounded under a flood of distinct keys", () => {
    const clock = clockAt(0);
    const l = new WindowLimiter(5, 60_000, clock, 100);
    for (let i = 0; i < 1_000; i++) l.hit(`k${i}`);
    expect(l.size).to.be.at.most(100);
    // Expired windows are swept first.
    clock.t = 60_000;
    l.hit("fresh");
    expect(l.size).to.be.at.most(100);
  });

  it("checks its options at construction", () => {
    expect(() => new WindowLimiter(0, 1000)).to.throw(RangeError, /"limit"/);
    expect(() => new WindowLimiter(1.5, 1000)).to.throw(RangeError, /"limit"/);
    expect(() => new WindowLimiter(1, 0)).to.throw(RangeError, /"windowMs"/);
  });
});

describe("oauth: store failures on the token endpoint", () => {
  let srv: TestServer;
  let inner: Store;
  let dir: string;
  const fault: { err: Error | null } = { err: null };

  /** Wraps every collection method so it throws `fault.err` while that is set. */
  function faulty(store: Store): Store {
    return {
      kind: store.kind,
      ping: () => store.ping(),
      close: () => store.close(),
      collection(name) {
        const c = store.collection(name) as unknown as Record<string, unknown>;
        return new Proxy(c, {
          get(target, prop) {
            const v = target[prop as string];
            if (typeof v !== "function") return v;
            return async (...args: unknown[]) => {
              if (fault.err) throw fault.err;
              return await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
            };
          },
        }) as never;
      },
    };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-faulty-"));
    inner = await openNedbStore(dir);
    srv = await startServer({ store: faulty(inner), bruteForce: { perAccountAndClient: 1, perClient: 100, perAccount: 100, windowMs: 60_000 } });
  });
  afterEach(() => {
    fault.err = null;
  });
  after(async () => {
    await srv?.close();
    await inner?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const grant = (password: string) => api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: ADMIN.user, password } });

  it("an unexpected error answers 500 internal_error with no internals, and is logged", async () => {
    fault.err = new Error("disk on fire at /var/lib/secret-path");
    const r = await grant(ADMIN.password);
    expect(r.status).to.equal(500);
    expect(r.body).to.deep.equal({ error: { code: "internal_error", message: "internal server error" } });
    expect(r.text).not.to.include("secret-path");
    expect(r.text).not.to.match(/\bat\s/);
    expect(srv.logs.join("")).to.include("unhandled error");
    expect(srv.logs.join("")).not.to.include(ADMIN.password);
  });

  it("an unreachable store answers 503 service_unavailable with Retry-After", async () => {
    const { StoreUnavailableError } = await import("../server/store/types.js");
    fault.err = new StoreUnavailableError();
    const r = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: "whatever" } });
    expect(r.status).to.equal(503);
    expect(r.body.error.code).to.equal("service_unavailable");
    expect(r.headers.get("retry-after")).to.match(/^\d+$/);
  });

  it("attempts that failed on the store side do not count toward the brute-force limit", async () => {
    fault.err = new Error("transient");
    for (let i = 0; i < 3; i++) expect((await grant("wrong-password")).status).to.equal(500);
    fault.err = null;
    // The limit is 1 failure: a real wrong password is still answered 401, then the next one 429.
    expect((await grant("wrong-password")).status).to.equal(401);
    expect((await grant("wrong-password")).status).to.equal(429);
  });
});
