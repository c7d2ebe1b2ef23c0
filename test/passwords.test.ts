import { expect } from "chai";
import { scryptSync } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CredentialHasher, PasswordHasher } from "../server/auth/passwords.js";
import { TokenSigner } from "../server/auth/jwt.js";
import { RevocationCache } from "../server/auth/authenticator.js";
import { OAuthService } from "../server/oauth/service.js";
import { createLogger } from "../server/log.js";
import { openNedbStore } from "../server/store/nedb.js";
import { Repositories } from "../server/store/repos.js";
import type { Store } from "../server/store/types.js";
import { AppError } from "../server/errors.js";
import { startServer, ADMIN, TEST_SECRET } from "./helpers/server.js";
import { api, login } from "./helpers/api.js";
import { runBefore } from "./helpers/interleave.js";

function parse(stored: string) {
  const [alg, logN, r, p, salt, key] = stored.split("$");
  return { alg, logN: Number(logN), r: Number(r), p: Number(p), salt: Buffer.from(salt!, "base64"), key: Buffer.from(key!, "base64") };
}

describe("passwords: scrypt hashes", () => {
  it("default cost meets the OWASP floor: N=2^17, r=8, p=1, 16-byte salt, and the hash really uses them", async function () {
    this.timeout(60_000);
    const hasher = new PasswordHasher();
    expect(hasher.logN).to.equal(17);
    const stored = await hasher.hash("correct horse battery staple");
    const h = parse(stored);
    expect(h.alg).to.equal("scrypt");
    expect(h.logN).to.be.at.least(17);
    expect(h.r).to.be.at.least(8);
    expect(h.p).to.be.at.least(1);
    expect(h.salt.length).to.equal(16);
    expect(h.key.length).to.equal(32);
    // Recompute independently: the stored parameters are the ones the key was derived with.
    const again = scryptSync("correct horse battery staple", h.salt, 32, { N: 2 ** h.logN, r: h.r, p: h.p, maxmem: 256 * 1024 * 1024 });
    expect(again.equals(h.key)).to.equal(true);
    expect(await hasher.verify("correct horse battery staple", stored)).to.equal(true);
    expect(await hasher.verify("correct horse battery stapler", stored)).to.equal(false);
  });

  it("salts every hash: one password hashed twice gives two different strings, both verifying", async () => {
    const hasher = new PasswordHasher(10);
    const [a, b] = [await hasher.hash("same password"), await hasher.hash("same password")];
    expect(a).to.not.equal(b);
    expect(parse(a).salt.equals(parse(b).salt)).to.equal(false);
    expect(await hasher.verify("same password", a)).to.equal(true);
    expect(await hasher.verify("same password", b)).to.equal(true);
  });

  it("refuses a cost outside 10..20 at construction", () => {
    for (const bad of [9, 21, 12.5, Number.NaN]) expect(() => new PasswordHasher(bad), String(bad)).to.throw(RangeError, /"logN"/);
  });

  it("needsRehash is true for hashes made at a lower cost (or unreadable) and false otherwise", async () => {
    const low = await new PasswordHasher(10).hash("pw-12345678");
    expect(new PasswordHasher(11).needsRehash(low)).to.equal(true);
    expect(new PasswordHasher(10).needsRehash(low)).to.equal(false);
    const high = await new PasswordHasher(12).hash("pw-12345678");
    expect(new PasswordHasher(11).needsRehash(high)).to.equal(false);
    expect(new PasswordHasher(11).needsRehash("garbage")).to.equal(true);
  });

  it("a hash made at a lower cost still verifies under a higher-cost hasher", async () => {
    const low = await new PasswordHasher(10).hash("pw-12345678");
    expect(await new PasswordHasher(12).verify("pw-12345678", low)).to.equal(true);
  });

  it("malformed or hostile stored strings verify false instead of throwing (no 500, no huge allocation)", async () => {
    const hasher = new PasswordHasher(10);
    const good = parse(await hasher.hash("pw-12345678"));
    const salt = good.salt.toString("base64");
    const key = good.key.toString("base64");
    for (const stored of [
      "", "garbage", "bcrypt$10$x", `scrypt$abc$8$1$${salt}$${key}`, `scrypt$40$8$1$${salt}$${key}`, `scrypt$10$0$1$${salt}$${key}`,
      `scrypt$10$8$99$${salt}$${key}`, `scrypt$10$8$1$${salt}$`, `scrypt$10$8$1$$${key}`, `scrypt$10$8$1$${salt}$${key}$extra`,
    ]) {
      expect(await hasher.verify("pw-12345678", stored), stored).to.equal(false);
    }
  });

  it("verifyDummy spends one real verification and is always false", async () => {
    let verifies = 0;
    class Counting extends PasswordHasher {
      override async verify(password: string, stored: string): Promise<boolean> {
        verifies += 1;
        return await super.verify(password, stored);
      }
    }
    const hasher = new Counting(10);
    expect(await hasher.verifyDummy("anything")).to.equal(false);
    expect(await hasher.verifyDummy("anything")).to.equal(false);
    expect(verifies).to.equal(2);
  });
});

describe("passwords: device credential hashes", () => {
  const hasher = new CredentialHasher(TEST_SECRET);

  it("verifies the right credentials only, with a per-device salt", () => {
    const a = hasher.hash("s3cret");
    const b = hasher.hash("s3cret");
    expect(a).to.not.equal(b);
    expect(a).to.match(/^hmac-sha256\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/);
    expect(hasher.verify("s3cret", a)).to.equal(true);
    expect(hasher.verify("s3cret", b)).to.equal(true);
    expect(hasher.verify("s3crex", a)).to.equal(false);
    expect(hasher.verify("", a)).to.equal(false);
  });

  it("is keyed by the server secret: a store dump alone cannot check guesses", () => {
    const stored = hasher.hash("s3cret");
    expect(new CredentialHasher("another-secret-that-is-32-bytes-long!!").verify("s3cret", stored)).to.equal(false);
  });

  it("malformed stored strings (wrong length, wrong shape) verify false without throwing", () => {
    const stored = hasher.hash("s3cret");
    const [, salt, mac] = stored.split("$");
    for (const bad of ["", "x", `hmac-sha256$${salt}`, `hmac-sha256$${salt}$${mac!.slice(0, 10)}`, `sha1$${salt}$${mac}`]) {
      expect(hasher.verify("s3cret", bad), bad).to.equal(false);
    }
  });
});

describe("passwords: login path", () => {
  let store: Store;
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-pw-"));
    store = await openNedbStore(dir);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("an unknown user costs one dummy verification, like a wrong password, and both answer the same error", async () => {
    const calls: string[] = [];
    class Spy extends PasswordHasher {
      override async verify(password: string, stored: string): Promise<boolean> {
        calls.push("verify");
        return await super.verify(password, stored);
      }
      override async verifyDummy(password: string): Promise<false> {
        calls.push("dummy");
        return await super.verifyDummy(password);
      }
    }
    const passwords = new Spy(10);
    const repos = new Repositories(store);
    await repos.users.insertOne({ _id: "alice", username: "alice", passwordHash: await passwords.hash("alice-password"), admin: false, createdAt: 0, passwordChangedAt: 0 });
    const oauth = new OAuthService(repos, passwords, new TokenSigner(TEST_SECRET), new RevocationCache(), createLogger("silent"));
    const errOf = async (u: string, pw: string) => {
      try {
        await oauth.passwordGrant(u, pw, "127.0.0.1");
      } catch (e) {
        return e as AppError;
      }
      throw new Error("grant succeeded");
    };
    calls.length = 0;
    const unknown = await errOf("nobody", "whatever-pw");
    expect(calls).to.deep.equal(["dummy", "verify"]);
    calls.length = 0;
    const wrong = await errOf("alice", "whatever-pw");
    expect(calls).to.deep.equal(["verify"]);
    calls.length = 0;
    const badName = await errOf("not a valid name!", "whatever-pw");
    expect(calls).to.deep.equal(["dummy", "verify"]);
    for (const e of [unknown, wrong, badName]) {
      expect(e).to.be.instanceOf(AppError);
      expect([e.code, e.status, e.message, e.headers]).to.deep.equal(["invalid_grant", 401, "invalid username or password", {}]);
    }
  });

  it("rehashes a stored password at the next login once the configured cost rose", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-rehash-"));
    try {
      const low = await startServer({ dataDir });
      let before: string;
      try {
        const admin = await login(low.url, ADMIN.user, ADMIN.password);
        expect((await api(low.url, "POST", "/v1/users", { token: admin.access_token, json: { username: "carol", password: "carol-password" } })).status).to.equal(201);
        before = (await low.relay.services.repos.users.findOne({ _id: "carol" }))!.passwordHash;
        expect(parse(before).logN).to.equal(10);
      } finally {
        await low.close();
      }
      const high = await startServer({ dataDir, env: { THINGRELAY_PASSWORD_COST: "11" } });
      try {
        const r = await api(high.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "carol", password: "carol-password" } });
        expect(r.status).to.equal(200);
        const after = (await high.relay.services.repos.users.findOne({ _id: "carol" }))!.passwordHash;
        expect(after).to.not.equal(before);
        expect(parse(after)).to.deep.include({ alg: "scrypt", logN: 11, r: 8, p: 1 });
        expect(parse(after).salt.length).to.equal(16);
        // The rehashed password still logs in; a wrong one still fails and changes nothing.
        expect((await login(high.url, "carol", "carol-password")).access_token).to.be.a("string");
        const bad = await api(high.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "carol", password: "nope-nope" } });
        expect(bad.status).to.equal(401);
        expect((await high.relay.services.repos.users.findOne({ _id: "carol" }))!.passwordHash).to.equal(after);
      } finally {
        await high.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("a rehash at sign-in never puts back the old password over one changed while it was checked", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-rehash-"));
    try {
      const low = await startServer({ dataDir });
      try {
        const admin = await login(low.url, ADMIN.user, ADMIN.password);
        expect((await api(low.url, "POST", "/v1/users", { token: admin.access_token, json: { username: "dora", password: "dora-password" } })).status).to.equal(201);
      } finally {
        await low.close();
      }
      const high = await startServer({ dataDir, env: { THINGRELAY_PASSWORD_COST: "11" } });
      try {
        const admin = await login(high.url, ADMIN.user, ADMIN.password);
        // The reset lands after the sign-in checked the old password, before it stores that password's new hash.
        const reset = runBefore(high.relay.services.repos.users, "updateOne",
          () => api(high.url, "PUT", "/v1/users/dora/password", { token: admin.access_token, json: { password: "dora-new-password" } }),
          (q: { _id?: string }, u: { $set?: Record<string, unknown> }) => q._id === "dora" && u.$set?.passwordHash !== undefined);
        let r;
        try {
          r = await api(high.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "dora", password: "dora-password" } });
        } finally {
          reset.restore();
        }
        expect(reset.ran().status).to.equal(200);
        expect(r.status).to.equal(401);
        expect(r.body.error).to.deep.equal({ code: "invalid_grant", message: "invalid username or password" });
        expect((await login(high.url, "dora", "dora-new-password")).access_token).to.be.a("string");
        const old = await api(high.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "dora", password: "dora-password" } });
        expect(old.status).to.equal(401);
      } finally {
        await high.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
