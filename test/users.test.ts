import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, type ApiResponse } from "./helpers/api.js";
import { UsersService } from "../server/users/service.js";
import { PasswordHasher } from "../server/auth/passwords.js";
import { RevocationCache } from "../server/auth/authenticator.js";
import { createLogger } from "../server/log.js";
import { openNedbStore } from "../server/store/nedb.js";
import { Repositories } from "../server/store/repos.js";
import type { Store } from "../server/store/types.js";

function expectError(r: ApiResponse, status: number, code: string): void {
  expect(r.status, r.text).to.equal(status);
  expect(Object.keys(r.body)).to.deep.equal(["error"]);
  expect(r.body.error.code).to.equal(code);
  expect(r.body.error.message).to.be.a("string");
}

describe("users: POST /v1/users", () => {
  let srv: TestServer;
  let admin: string;
  let userCount: () => Promise<number>;

  before(async () => {
    srv = await startServer();
    admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    userCount = () => srv.relay.services.repos.users.count({});
  });
  after(async () => {
    await srv?.close();
  });

  /** `token: null` sends no token. */
  const create = (body: unknown, token: string | null = admin) => api(srv.url, "POST", "/v1/users", { ...(token ? { token } : {}), json: body });

  it("the admin creates a user: 201 {username}; the user logs in, is not an admin, and the password is stored hashed", async () => {
    const r = await create({ username: "alice", password: "alice-password" });
    expect(r.status).to.equal(201);
    expect(r.body).to.deep.equal({ username: "alice" });
    const t = await login(srv.url, "alice", "alice-password");
    const me = await api(srv.url, "GET", "/v1/me", { token: t.access_token });
    expect(me.body).to.deep.include({ user: "alice", admin: false, token_kind: "session" });
    const doc = (await srv.relay.services.repos.users.findOne({ _id: "alice" }))!;
    expect(doc.passwordHash).to.match(/^scrypt\$10\$8\$1\$/);
    expect(doc.passwordHash).not.to.include("alice-password");
    expect(doc.admin).to.equal(false);
  });

  it("accepts usernames of 1 and 32 characters from [a-zA-Z0-9_]", async () => {
    for (const u of ["b", "A_z_0_9", "x".repeat(32)]) expect((await create({ username: u, password: "password-123" })).status, u).to.equal(201);
  });

  it("no token: 401 unauthorized with a Bearer challenge", async () => {
    const before = await userCount();
    const r = await create({ username: "nobody1", password: "password-123" }, null);
    expectError(r, 401, "unauthorized");
    expect(r.headers.get("www-authenticate")).to.match(/^Bearer /);
    expect(await userCount()).to.equal(before);
  });

  it("a non-admin session: 403 forbidden", async () => {
    await create({ username: "plain", password: "plain-password" });
    const t = (await login(srv.url, "plain", "plain-password")).access_token;
    const before = await userCount();
    expectError(await create({ username: "nobody2", password: "password-123" }, t), 403, "forbidden");
    expect(await userCount()).to.equal(before);
  });

  it("the admin's scoped user token (not a session): 403 forbidden", async () => {
    const tok = await api(srv.url, "POST", "/v1/users/admin/tokens", { token: admin, json: { name: "ci", allow: [{ action: "*", target: "*" }] } });
    expect(tok.status, tok.text).to.be.oneOf([200, 201]);
    expectError(await create({ username: "nobody3", password: "password-123" }, tok.body.token), 403, "forbidden");
  });

  it("bad usernames: 400 invalid_request", async () => {
    const before = await userCount();
    for (const u of ["", "x".repeat(33), "with space", "dash-name", "dot.name", "../etc", "ñandú", "admin\n", "a/b", 42, null, true, ["alice"]]) {
      expectError(await create({ username: u, password: "password-123" }), 400, "invalid_request");
    }
    expect(await userCount()).to.equal(before);
  });

  it("bad passwords (missing, too short, too long, not a string): 400 invalid_request", async () => {
    const before = await userCount();
    for (const body of [{ username: "pw1" }, { username: "pw2", password: "short" }, { username: "pw3", password: "x".repeat(1025) }, { username: "pw4", password: 12345678 }]) {
      expectError(await create(body), 400, "invalid_request");
    }
    expect(await userCount()).to.equal(before);
  });

  it("extra or hostile fields (role, admin, __proto__, operators): 400 and no user created", async () => {
    const before = await userCount();
    const bodies: string[] = [
      JSON.stringify({ username: "mallory", password: "password-123", role: "admin" }),
      JSON.stringify({ username: "mallory", password: "password-123", admin: true }),
      '{"username":"mallory","password":"password-123","__proto__":{"admin":true}}',
      '{"username":{"$ne":null},"password":"password-123"}',
      '{"username":"mallory","password":{"$gt":""}}',
      JSON.stringify({ username: "mallory", password: "password-123", _id: "root" }),
      JSON.stringify({ username: "mallory", password: "password-123", passwordHash: "scrypt$10$8$1$x$y" }),
    ];
    for (const raw of bodies) {
      const r = await api(srv.url, "POST", "/v1/users", { token: admin, raw, headers: { "Content-Type": "application/json" } });
      // The JSON parser (co-body → bourne) refuses a `__proto__` key; since QA F8 that is invalid_request too
      // (it is valid JSON, refused on purpose), as is every other hostile field.
      expectError(r, 400, "invalid_request");
    }
    // The same through a form body: the API speaks JSON only, so a form is refused before any field is read.
    const f = await api(srv.url, "POST", "/v1/users", { token: admin, form: "username=mallory&password=password-123&__proto__[admin]=true&role=admin" });
    expectError(f, 415, "unsupported_media_type");
    expect(await userCount()).to.equal(before);
    expect(await srv.relay.services.repos.users.findOne({ _id: "mallory" })).to.equal(null);
    expect(({} as Record<string, unknown>).admin).to.equal(undefined);
  });

  it("a body that is not a JSON object: 400; another media type: 415", async () => {
    for (const raw of ["[]", '"alice"', "null"]) {
      const r = await api(srv.url, "POST", "/v1/users", { token: admin, raw, headers: { "Content-Type": "application/json" } });
      expect(r.status, raw).to.equal(400);
      expect(["invalid_request", "invalid_json"]).to.include(r.body.error.code);
    }
    expectError(await api(srv.url, "POST", "/v1/users", { token: admin }), 400, "invalid_request");
    expectError(await api(srv.url, "POST", "/v1/users", { token: admin, raw: "username=x&password=password-123", headers: { "Content-Type": "text/plain" } }), 415, "unsupported_media_type");
  });

  it("an existing name: 409 conflict, the existing account unchanged", async () => {
    const before = (await srv.relay.services.repos.users.findOne({ _id: "alice" }))!.passwordHash;
    expectError(await create({ username: "alice", password: "other-password" }), 409, "conflict");
    expectError(await create({ username: ADMIN.user, password: "other-password" }), 409, "conflict");
    expect((await srv.relay.services.repos.users.findOne({ _id: "alice" }))!.passwordHash).to.equal(before);
    expect((await login(srv.url, "alice", "alice-password")).access_token).to.be.a("string");
  });

  it("parallel creation of one name: exactly one 201, the rest 409", async () => {
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => create({ username: "racey", password: `password-${i}xx` })));
    expect(results.filter((r) => r.status === 201)).to.have.length(1);
    for (const r of results.filter((x) => x.status !== 201)) expectError(r, 409, "conflict");
    expect(await srv.relay.services.repos.users.count({ _id: "racey" })).to.equal(1);
  });
});

describe("users: admin bootstrap (UsersService.ensureAdmin)", () => {
  let store: Store;
  let dir: string;
  let repos: Repositories;
  let users: UsersService;
  const logger = createLogger("silent");
  const passwords = new PasswordHasher(10);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-users-"));
    store = await openNedbStore(dir);
    repos = new Repositories(store);
    users = new UsersService(repos, passwords, new RevocationCache());
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("configured admin: created as an admin once; nothing generated", async () => {
    expect(await users.ensureAdmin("root", "root-password", logger)).to.equal(null);
    const doc = (await repos.users.findOne({ _id: "root" }))!;
    expect(doc.admin).to.equal(true);
    expect(await passwords.verify("root-password", doc.passwordHash)).to.equal(true);
    expect(await users.ensureAdmin("root", "root-password", logger)).to.equal(null);
    expect(await repos.users.count({})).to.equal(1);
  });

  it("configured admin naming an existing plain user: promoted, password untouched", async () => {
    await users.create("root", "old-password");
    const before = (await repos.users.findOne({ _id: "root" }))!.passwordHash;
    expect(await users.ensureAdmin("root", "new-password", logger)).to.equal(null);
    expect(await repos.users.findOne({ _id: "root" })).to.deep.include({ admin: true, passwordHash: before });
  });

  it("nothing configured, no users: generates an admin with a random ≥ 128-bit password, once", async () => {
    const made = await users.ensureAdmin(undefined, undefined, logger);
    expect(made).to.not.equal(null);
    expect(made!.user).to.equal("admin");
    expect(Buffer.from(made!.password, "base64url").length).to.be.at.least(16);
    const doc = (await repos.users.findOne({ _id: "admin" }))!;
    expect(doc.admin).to.equal(true);
    expect(await passwords.verify(made!.password, doc.passwordHash)).to.equal(true);
    expect(await users.ensureAdmin(undefined, undefined, logger)).to.equal(null);
    const other = await new UsersService(repos, passwords, new RevocationCache()).ensureAdmin(undefined, undefined, logger);
    expect(other).to.equal(null);
  });

  it("two nodes bootstrapping one empty store at once: one admin, one generated password, no crash", async () => {
    const other = new UsersService(repos, passwords, new RevocationCache());
    const results = await Promise.all([users.ensureAdmin(undefined, undefined, logger), other.ensureAdmin(undefined, undefined, logger)]);
    const made = results.filter((r) => r !== null);
    expect(made).to.have.length(1);
    expect(await repos.users.count({})).to.equal(1);
    expect(await passwords.verify(made[0]!.password, (await repos.users.findOne({ _id: "admin" }))!.passwordHash)).to.equal(true);
  });

  it("two nodes ensuring one configured admin at once: both succeed, one account", async () => {
    const other = new UsersService(repos, passwords, new RevocationCache());
    expect(await Promise.all([users.ensureAdmin("root", "root-password", logger), other.ensureAdmin("root", "root-password", logger)])).to.deep.equal([null, null]);
    expect(await repos.users.find({})).to.have.length(1);
    expect((await repos.users.findOne({ _id: "root" }))!.admin).to.equal(true);
  });

  it("nothing configured but users exist: no admin is generated", async () => {
    await users.create("alice", "alice-password");
    expect(await users.ensureAdmin(undefined, undefined, logger)).to.equal(null);
    expect(await repos.users.findOne({ _id: "admin" })).to.equal(null);
  });
});
