import { expect } from "chai";
import fc from "fast-check";
import { request } from "node:http";
import { FlattenedSign, SignJWT, UnsecuredJWT, base64url, decodeJwt, decodeProtectedHeader, generateKeyPair, type JWTPayload } from "jose";
import { ACCESS_TOKEN_TTL_S, InvalidTokenError, TokenSigner } from "../server/auth/jwt.js";
import { startServer, ADMIN, TEST_SECRET, type TestServer } from "./helpers/server.js";
import { api, login, type ApiResponse } from "./helpers/api.js";

const KEY = new TextEncoder().encode(TEST_SECRET);
const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 200);

async function signWith(payload: JWTPayload, o: { alg?: string; key?: Uint8Array; typ?: string | null } = {}): Promise<string> {
  const header: { alg: string; typ?: string } = { alg: o.alg ?? "HS256" };
  if (o.typ !== null) header.typ = o.typ ?? "JWT";
  return await new SignJWT(payload).setProtectedHeader(header).sign(o.key ?? KEY);
}

/** Replaces one character in the middle of segment `seg` (0 header, 1 payload, 2 signature). */
function flip(token: string, seg: number): string {
  const parts = token.split(".");
  const s = parts[seg]!;
  const i = Math.floor(s.length / 2);
  parts[seg] = s.slice(0, i) + (s[i] === "A" ? "B" : "A") + s.slice(i + 1);
  return parts.join(".");
}

describe("jwt: TokenSigner", () => {
  const signer = new TokenSigner(TEST_SECRET);

  it("refuses a secret under 32 bytes", () => {
    expect(() => new TokenSigner("x".repeat(31))).to.throw(RangeError, /32 bytes/);
  });

  it("access tokens: HS256, typ JWT, payload exactly {usr,fam,iat,exp} with exp - iat = 7200", async () => {
    const t = await signer.signAccess("alice", "fam-1", 1_700_000_000);
    expect(decodeProtectedHeader(t)).to.deep.equal({ alg: "HS256", typ: "JWT" });
    expect(decodeJwt(t)).to.deep.equal({ usr: "alice", fam: "fam-1", iat: 1_700_000_000, exp: 1_700_000_000 + 7200 });
    expect(ACCESS_TOKEN_TTL_S).to.equal(7200);
    expect(await signer.verify(t, 1_700_000_000_000)).to.deep.equal({ kind: "access", usr: "alice", fam: "fam-1", iat: 1_700_000_000, exp: 1_700_007_200 });
  });

  it("tells the three kinds apart", async () => {
    const now = 1_700_000_000;
    const dev = await signer.signDeviceToken({ usr: "alice", dev: "d1", jti: "j1", iat: now, res: ["temp"] });
    const usr = await signer.signUserToken({ usr: "alice", jti: "j2", iat: now });
    expect(await signer.verify(dev, now * 1000)).to.deep.equal({ kind: "device", usr: "alice", dev: "d1", jti: "j1", iat: now, res: ["temp"] });
    expect(await signer.verify(usr, now * 1000)).to.deep.equal({ kind: "user", usr: "alice", jti: "j2", iat: now });
  });

  it("property: an access token is valid iff exp > now (no tolerance on exp)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }), fc.integer({ min: -300, max: 300 }), async (nowMs, delta) => {
        const exp = Math.floor(nowMs / 1000) + delta;
        const token = await signer.signAccess("alice", "fam", exp - ACCESS_TOKEN_TTL_S);
        const valid = await signer.verify(token, nowMs).then(() => true, (e: unknown) => {
          expect(e).to.be.instanceOf(InvalidTokenError);
          return false;
        });
        expect(valid, `exp=${exp} nowMs=${nowMs}`).to.equal(exp * 1000 > nowMs);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("property: a token is valid iff iat is at most 60 s in the future (any kind)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
        fc.integer({ min: -120, max: 180 }),
        fc.constantFrom("access", "device", "user"),
        async (nowMs, delta, kind) => {
          const iat = Math.floor(nowMs / 1000) + delta;
          const token = kind === "access" ? await signer.signAccess("alice", "fam", iat)
            : kind === "device" ? await signer.signDeviceToken({ usr: "alice", dev: "d", jti: "j", iat })
            : await signer.signUserToken({ usr: "alice", jti: "j", iat });
          const valid = await signer.verify(token, nowMs).then(() => true, () => false);
          expect(valid, `${kind} iat=${iat} nowMs=${nowMs}`).to.equal(iat * 1000 <= nowMs + 60_000);
        },
      ),
      { numRuns: FUZZ_RUNS },
    );
  });

  it("a signature with the spare bits of its last base64url character changed is refused", async () => {
    const valid = await signer.signAccess("alice", "fam", 1_700_000_000);
    const last = valid.at(-1)!;
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // The 43rd character carries 4 signature bits and 2 spare bits: its three siblings decode to the same bytes.
    const base = alphabet.indexOf(last) & ~3;
    const twins = [0, 1, 2, 3].map((k) => alphabet[base + k]!).filter((c) => c !== last);
    for (const c of twins) {
      const twin = valid.slice(0, -1) + c;
      expect(Buffer.from(twin.split(".")[2]!, "base64url")).to.deep.equal(Buffer.from(valid.split(".")[2]!, "base64url"));
      const err = await signer.verify(twin, 1_700_000_000_000).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(InvalidTokenError);
    }
    expect((await signer.verify(valid, 1_700_000_000_000)).usr).to.equal("alice");
  });

  it("property: arbitrary strings never verify and never throw anything but InvalidTokenError", async () => {
    const valid = await signer.signAccess("alice", "fam", 1_700_000_000);
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.nat({ max: valid.length - 1 }).chain((i) =>
        fc.string({ minLength: 1, maxLength: 3 }).map((s) => valid.slice(0, i) + s + valid.slice(i + 1)))), async (s) => {
        fc.pre(s !== valid);
        const err = await signer.verify(s, 1_700_000_000_000).then(() => null, (e: unknown) => e);
        expect(err, JSON.stringify(s)).to.be.instanceOf(InvalidTokenError);
      }),
      { numRuns: FUZZ_RUNS },
    );
  });
});

describe("jwt: bearer authentication over HTTP", () => {
  let srv: TestServer;
  let access: string;
  let refresh: string;
  let claims: { usr: string; fam: string; iat: number; exp: number };
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    srv = await startServer();
    ({ access_token: access, refresh_token: refresh } = await login(srv.url, ADMIN.user, ADMIN.password));
    claims = decodeJwt(access) as typeof claims;
  });
  after(async () => {
    await srv?.close();
  });

  const me = (headers: Record<string, string> = {}, query = "") => api(srv.url, "GET", `/v1/me${query}`, { headers });
  const bearer = (t: string) => me({ Authorization: `Bearer ${t}` });

  function expectInvalidToken(r: ApiResponse): void {
    expect(r.status, r.text).to.equal(401);
    expect(r.body.error.code).to.equal("unauthorized");
    expect(r.body.error.message).to.be.a("string");
    expect(r.headers.get("www-authenticate")).to.match(/^Bearer realm="thingrelay", error="invalid_token"$/);
  }

  it("control: a token crafted here with the server's key and claims is accepted (so the rejections below test one fault each)", async () => {
    const t = await signWith({ usr: claims.usr, fam: claims.fam, iat: now(), exp: now() + 600 });
    const r = await bearer(t);
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.include({ user: "admin", token_kind: "session", admin: true });
  });

  it("no credentials: 401 with a bare Bearer challenge (no error attribute)", async () => {
    const r = await me();
    expect(r.status).to.equal(401);
    expect(r.body.error.code).to.equal("unauthorized");
    expect(r.headers.get("www-authenticate")).to.equal('Bearer realm="thingrelay"');
  });

  it("alg none is refused", async () => {
    const t = new UnsecuredJWT({ usr: claims.usr, fam: claims.fam }).setIssuedAt(now()).setExpirationTime(now() + 600).encode();
    expect(decodeProtectedHeader(t).alg).to.equal("none");
    expectInvalidToken(await bearer(t));
    expectInvalidToken(await me({}, `?authorization=${t}`));
  });

  it("HS512 with the right key is refused (algorithm pinned to HS256)", async () => {
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now(), exp: now() + 600 }, { alg: "HS512" })));
  });

  it("an RS256 token is refused", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const t = await new SignJWT({ usr: claims.usr, fam: claims.fam }).setProtectedHeader({ alg: "RS256", typ: "JWT" })
      .setIssuedAt(now()).setExpirationTime(now() + 600).sign(privateKey);
    expectInvalidToken(await bearer(t));
  });

  it("one changed character in the header, payload or signature is refused", async () => {
    for (const seg of [0, 1, 2]) expectInvalidToken(await bearer(flip(access, seg)));
    // The untouched token still works.
    expect((await bearer(access)).status).to.equal(200);
  });

  it("a payload swapped for another user's, keeping the signature, is refused", async () => {
    const [h, , s] = access.split(".");
    const forged = base64url.encode(JSON.stringify({ ...claims, usr: "mallory" }));
    expectInvalidToken(await bearer(`${h}.${forged}.${s}`));
  });

  it("a token signed with another key is refused", async () => {
    const other = new TextEncoder().encode("another-secret-that-is-at-least-32-bytes!");
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now(), exp: now() + 600 }, { key: other })));
  });

  it("an expired access token is refused", async () => {
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now() - 7300, exp: now() - 100 })));
  });

  it("an access token without exp is refused", async () => {
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now() })));
  });

  it("iat an hour in the future is refused; 30 s of clock skew is tolerated", async () => {
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now() + 3600, exp: now() + 7200 })));
    expect((await bearer(await signWith({ usr: claims.usr, fam: claims.fam, iat: now() + 30, exp: now() + 7200 }))).status).to.equal(200);
  });

  it("a token without typ JWT, or another typ, is refused", async () => {
    const p = { usr: claims.usr, fam: claims.fam, iat: now(), exp: now() + 600 };
    expectInvalidToken(await bearer(await signWith(p, { typ: null })));
    expectInvalidToken(await bearer(await signWith(p, { typ: "at+jwt" })));
  });

  it("the JWS JSON serialization is refused, in the header and in the query", async () => {
    const jws = await new FlattenedSign(new TextEncoder().encode(JSON.stringify({ usr: claims.usr, fam: claims.fam, iat: now(), exp: now() + 600 })))
      .setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(KEY);
    const json = JSON.stringify(jws);
    expectInvalidToken(await bearer(json));
    expectInvalidToken(await me({}, `?authorization=${encodeURIComponent(json)}`));
  });

  it("a token carrying two kind markers is refused", async () => {
    const base = { usr: claims.usr, iat: now(), exp: now() + 600, jti: "j1" };
    expectInvalidToken(await bearer(await signWith({ ...base, fam: claims.fam, dev: "d1" })));
    expectInvalidToken(await bearer(await signWith({ ...base, fam: claims.fam, tok: 1 })));
    expectInvalidToken(await bearer(await signWith({ ...base, dev: "d1", tok: 1 })));
  });

  it("valid signature but unknown user, unknown family or another user's family is refused", async () => {
    expectInvalidToken(await bearer(await signWith({ usr: "ghost", fam: claims.fam, iat: now(), exp: now() + 600 })));
    expectInvalidToken(await bearer(await signWith({ usr: claims.usr, fam: "no-such-family", iat: now(), exp: now() + 600 })));
    const r = await api(srv.url, "POST", "/v1/users", { token: access, json: { username: "bob", password: "bob-password" } });
    expect(r.status).to.equal(201);
    expectInvalidToken(await bearer(await signWith({ usr: "bob", fam: claims.fam, iat: now(), exp: now() + 600 })));
    expectInvalidToken(await bearer(await signWith({ usr: "../etc", fam: claims.fam, iat: now(), exp: now() + 600 })));
  });

  it("a refresh token sent as a bearer token is refused", async () => {
    expectInvalidToken(await bearer(refresh));
    expectInvalidToken(await me({}, `?authorization=${refresh}`));
  });

  it("the scheme is case-insensitive: bearer and BEARER are accepted", async () => {
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const r = await me({ Authorization: `${scheme} ${access}` });
      expect(r.status, scheme).to.equal(200);
      expect(r.body.user).to.equal("admin");
    }
  });

  it("?authorization= works like the header", async () => {
    const r = await me({}, `?authorization=${access}`);
    expect(r.status).to.equal(200);
    expect(r.body.user).to.equal("admin");
  });

  it("Basic, an empty Bearer, two tokens and an empty query value answer 401", async () => {
    for (const h of [`Basic ${Buffer.from("admin:admin-password-1").toString("base64")}`, "Bearer ", "Bearer", `Bearer ${access} ${access}`, `Token ${access}`]) {
      expectInvalidToken(await me({ Authorization: h }));
    }
    expectInvalidToken(await me({}, "?authorization="));
  });

  it("header and query together, or the query parameter twice, answer 400 invalid_request", async () => {
    const both = await me({ Authorization: `Bearer ${access}` }, `?authorization=${access}`);
    expect(both.status).to.equal(400);
    expect(both.body.error.code).to.equal("invalid_request");
    const twice = await me({}, `?authorization=${access}&authorization=${access}`);
    expect(twice.status).to.equal(400);
    expect(twice.body.error.code).to.equal("invalid_request");
  });

  it("a 10 KB token answers 401, never 500, in the header and in the query", async () => {
    const big = `${access.split(".")[0]}.${"A".repeat(10 * 1024)}.${access.split(".")[2]}`;
    expectInvalidToken(await bearer(big));
    expectInvalidToken(await me({}, `?authorization=${big}`));
    expectInvalidToken(await bearer("x".repeat(10 * 1024)));
  });

  it("property: random Authorization headers never answer 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 200 }).map((s) => `Bearer ${s}`),
          fc.stringMatching(/^[A-Za-z0-9\-._~+/]{0,300}=*$/).map((s) => `Bearer ${s}`),
          fc.string({ maxLength: 100 }),
        ),
        async (h) => {
          // Header values must be valid ByteStrings without CR/LF for fetch; skip others.
          fc.pre(/^[\x20-\x7e]*$/.test(h));
          const r = await me({ Authorization: h });
          expect([400, 401], `${h} -> ${r.status} ${r.text}`).to.include(r.status);
          expect(["unauthorized", "invalid_request"]).to.include(r.body.error.code);
        },
      ),
      { numRuns: Math.min(FUZZ_RUNS, 100) },
    );
  });

  it("no authorization query value (or other secret) ever reaches a log line", async () => {
    const t2 = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    const variants = [
      `/v1/me?authorization=${t2}`,
      `/v1/me?x=1&authorization=${t2}`,
      `/v1/me?%61uthorization=${t2}`,
      `/v1/me?authorization=${t2}&authorization=${t2}`,
      `/v1/me?authorization=${encodeURIComponent(t2)}`,
      `/no/such/route?authorization=${t2}`,
      `/v2/users/admin/devices/nope/temp?authorization=${t2}`,
    ];
    const statuses: number[] = [];
    for (const path of variants) statuses.push((await api(srv.url, "GET", path)).status);
    expect(statuses).to.deep.equal([200, 200, 200, 400, 200, 404, 404]);
    // Also through a raw request whose path is not normalised by fetch.
    const raw = await new Promise<number>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port: srv.port, path: `/v1/me?authorization=${t2}#frag`, method: "GET" }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode!));
      });
      req.on("error", reject);
      req.end();
    });
    expect(raw).to.be.oneOf([200, 401]);
    const logs = srv.logs.join("");
    expect(logs).to.include("/v1/me?");
    for (const secret of [t2, t2.split(".")[2]!, encodeURIComponent(t2), ADMIN.password]) expect(logs).not.to.include(secret);
  });
});
