import { apiOnMongo } from "./helpers/mongo.js";
/**
 * Abuse resistance (issue 20): each finding of the black-box attack, reproduced. Memory figures are bounds
 * measured in this process with generous margins (docs/security.md "Abuse resistance"), never timings.
 */
import { expect } from "chai";
import { Agent, request } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { WebSocket } from "ws";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { runBefore } from "./helpers/interleave.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { sse } from "./helpers/sse.js";
import { WindowLimiter, type Clock } from "../server/auth/limiter.js";
import { hashToken } from "../server/oauth/service.js";
import { addressKey, clientAddress, parseTrustProxy, type TrustProxy } from "../server/auth/address.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

function get(port: number, path: string, headers: Record<string, string>, agent: Agent | false = false, method = "GET", body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Upgrade outcome: "open" (then closed by `hold` or at once), or the refusal status. */
function upgrade(url: string, localAddress?: string, hold?: WebSocket[]): Promise<number | "open"> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url}/v1/connect`, localAddress ? { localAddress } : {});
    ws.on("open", () => {
      if (hold) hold.push(ws);
      else ws.terminate();
      resolve("open");
    });
    ws.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.on("error", () => resolve(0));
  });
}

function fakeClock(start = 1_000_000): Clock & { t: number } {
  return { t: start, now() { return this.t; } };
}

describe("abuse resistance (issue 20)", function () {
  this.timeout(120_000);

  describe("1. limiter memory is bounded", () => {
    it("windows expire as they end: 10,000 keys, then one hit after the window → 1 key left", () => {
      const clock = fakeClock();
      const l = new WindowLimiter(5, 60_000, clock);
      for (let i = 0; i < 10_000; i++) l.hit(`ip:10.0.${i >> 8}.${i & 255}`);
      expect(l.size).to.equal(10_000);
      clock.t += 60_000;
      l.hit("ip:192.0.2.1");
      expect(l.size).to.equal(1);
    });

    it("keys are bounded in number and size: 2,000 keys of 32 KiB keep < 8 MiB of heap, at most maxKeys kept", () => {
      const l = new WindowLimiter(5, 60_000, fakeClock(), 1_000);
      const before = heapMiB();
      for (let i = 0; i < 2_000; i++) l.hit(`${i}:${"x".repeat(32 * 1024)}`);
      const grown = heapMiB() - before;
      expect(l.size).to.be.at.most(1_000);
      expect(grown, `heap grew ${grown.toFixed(1)} MiB`).to.be.below(8);
      // Exact limit still holds for hashed keys.
      const k = `k:${"y".repeat(1000)}`;
      for (let i = 0; i < 5; i++) expect(l.hit(k).allowed).to.equal(true);
      expect(l.hit(k).allowed).to.equal(false);
    });

    it("THINGRELAY_TRUST_PROXY=true: 5,000 requests with long distinct X-Forwarded-For values add ≤ 1 limiter key and < 16 MiB of heap", async () => {
      const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true" } });
      const agent = new Agent({ keepAlive: true, maxSockets: 16 });
      try {
        const limiter = srv.relay.services.apiLimiter;
        const keysBefore = limiter.size;
        const before = heapMiB();
        for (let b = 0; b < 5_000; b += 100) {
          await Promise.all(Array.from({ length: 100 }, (_, j) => get(srv.port, "/v1/me", { "X-Forwarded-For": `${b + j}-${"z".repeat(4000)}` }, agent)
            .then((r) => expect(r.status).to.equal(401))));
        }
        const grown = heapMiB() - before;
        console.log(`      5,000 junk X-Forwarded-For: limiter keys +${limiter.size - keysBefore}, heap +${grown.toFixed(1)} MiB`);
        expect(limiter.size - keysBefore).to.be.at.most(1);
        expect(grown).to.be.below(16);
      } finally {
        agent.destroy();
        await srv.close();
      }
    });
  });

  describe("2. trusted-proxy semantics", () => {
    it("clientAddress walks X-Forwarded-For from the right over trusted hops or proxies; malformed entries stop the walk", () => {
      const hops1 = parseTrustProxy("true") as TrustProxy;
      expect(clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.7", hops1)).to.equal("198.51.100.7");
      expect(clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.7", false)).to.equal("127.0.0.1");
      expect(clientAddress("::ffff:127.0.0.1", undefined, hops1)).to.equal("127.0.0.1");
      expect(clientAddress("127.0.0.1", "6.6.6.6, not-an-ip", hops1)).to.equal("127.0.0.1");
      expect(clientAddress("127.0.0.1", "x".repeat(5000), hops1)).to.equal("127.0.0.1");
      expect(clientAddress("127.0.0.1", ["6.6.6.6", "198.51.100.7"], hops1)).to.equal("198.51.100.7");
      expect(clientAddress("127.0.0.1", "198.51.100.7", parseTrustProxy("3") as TrustProxy)).to.equal("198.51.100.7");
      const list = parseTrustProxy("127.0.0.1, 10.0.0.0/8") as TrustProxy;
      expect(clientAddress("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.2.3.4, 10.9.9.9", list)).to.equal("198.51.100.7");
      expect(clientAddress("192.0.2.1", "6.6.6.6", list)).to.equal("192.0.2.1");
      expect(clientAddress("127.0.0.1", "10.1.1.1", list)).to.equal("10.1.1.1");
      expect(addressKey("2001:db8:1:2::a")).to.equal(addressKey("2001:0db8:0001:0002:ffff:0:0:1"));
      expect(addressKey("2001:db8:1:2::a")).to.equal("2001:db8:1:2::/64");
      expect(addressKey("::1")).to.equal("0:0:0:0::/64");
      expect(addressKey("2001:db8::")).to.equal("2001:db8:0:0::/64");
      expect(addressKey("198.51.100.7")).to.equal("198.51.100.7");
    });

    it("THINGRELAY_TRUST_PROXY=true: the address the proxy appended is the client; a rotating leftmost entry changes nothing (429 on the 6th)", async () => {
      const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true", THINGRELAY_RATE_LIMIT: "5" } });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 6; i++) statuses.push((await get(srv.port, "/v1/me", { "X-Forwarded-For": `10.9.0.${i}, 198.51.100.7` })).status);
        expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 429]);
        // Another client behind the same proxy is not throttled.
        expect((await get(srv.port, "/v1/me", { "X-Forwarded-For": "10.9.0.1, 198.51.100.8" })).status).to.equal(401);
        const line = srv.logs.filter((l) => l.includes('"url":"/v1/me"')).at(-1) ?? "";
        expect(JSON.parse(line).ip).to.equal("198.51.100.8");
      } finally {
        await srv.close();
      }
    });

    it("45 wrong passwords with a rotating leftmost X-Forwarded-For → 429 from the 21st on", async () => {
      const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true" } });
      try {
        const statuses: number[] = [];
        for (let i = 0; i < 45; i++) {
          const r = await api(srv.url, "POST", "/oauth/token", {
            form: { grant_type: "password", username: `nobody${i}`, password: "wrong-password" },
            headers: { "X-Forwarded-For": `10.8.${i}.1, 198.51.100.9` },
          });
          statuses.push(r.status);
        }
        expect(statuses.slice(0, 20).every((s) => s === 401)).to.equal(true);
        expect(statuses.slice(20).every((s) => s === 429), statuses.join(",")).to.equal(true);
      } finally {
        await srv.close();
      }
    });

    it("300 wrong device credentials with a rotating leftmost X-Forwarded-For → at most 20 checked, then 429", async () => {
      const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true" } });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "dev1");
        let refused = 0;
        for (let i = 0; i < 300; i++) {
          const r = await RawDevice.connect({
            wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: `wrong-${i}`,
            ws: { headers: { "X-Forwarded-For": `10.7.${i >> 8}.${i & 255}, 198.51.100.10` } },
          }).then(() => "open", (e: { status?: number }) => e.status ?? "closed");
          if (r === 429) refused++;
        }
        const checked = srv.logs.filter((l) => l.includes("device authentication failed")).length;
        expect(checked).to.equal(20);
        expect(refused).to.equal(280);
      } finally {
        await srv.close();
      }
    });

    it("a hop count and a proxy list take the address the trusted proxies saw", async () => {
      for (const trust of ["2", "127.0.0.1,10.0.0.0/8"]) {
        const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: trust, THINGRELAY_RATE_LIMIT: "2" } });
        try {
          const s: number[] = [];
          for (let i = 0; i < 3; i++) s.push((await get(srv.port, "/v1/me", { "X-Forwarded-For": `203.0.113.${i}, 198.51.100.20, 10.1.2.3` })).status);
          expect(s, trust).to.deep.equal([401, 401, 429]);
          expect((await get(srv.port, "/v1/me", { "X-Forwarded-For": "198.51.100.21, 10.1.2.3" })).status).to.equal(401);
        } finally {
          await srv.close();
        }
      }
    });
  });

  describe("3. device-credential throttle under bursts; pending sockets per address", () => {
    it("a parallel burst of 249 wrong credentials from one address: at most 20 checked, the rest 429", async () => {
      const srv = await startServer({ env: { THINGRELAY_MAX_PENDING_PER_ADDRESS: "1000" } });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "dev1");
        const results = await Promise.all(Array.from({ length: 249 }, (_, i) => RawDevice.connect({
          wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: `wrong-${i}`,
        }).then(() => "open", (e: { status?: number; close?: { code: number } }) => e.status ?? e.close?.code ?? "error")));
        const checked = srv.logs.filter((l) => l.includes("device authentication failed")).length;
        expect(checked).to.be.at.most(20);
        expect(results.filter((r) => r === 4001).length).to.equal(checked);
        expect(results.filter((r) => r === 429).length).to.equal(249 - checked);
      } finally {
        await srv.close();
      }
    });

    it("THINGRELAY_DEVICE_AUTH_FAILURES sets the per-address budget: a burst of 40 wrong credentials gets 5 checked, 35 refused 429", async () => {
      const srv = await startServer({ env: { THINGRELAY_MAX_PENDING_PER_ADDRESS: "1000", THINGRELAY_DEVICE_AUTH_FAILURES: "5" } });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "dev1");
        const results = await Promise.all(Array.from({ length: 40 }, (_, i) => RawDevice.connect({
          wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: `wrong-${i}`,
        }).then(() => "open", (e: { status?: number; close?: { code: number } }) => e.status ?? e.close?.code ?? "error")));
        const checked = srv.logs.filter((l) => l.includes("device authentication failed")).length;
        expect(checked).to.equal(5);
        expect(results.filter((r) => r === 4001).length).to.equal(5);
        expect(results.filter((r) => r === 429).length).to.equal(35);
      } finally {
        await srv.close();
      }
    });

    it("four addresses opening 250 idle sockets each cannot starve another device", async () => {
      const srv = await startServer({ env: { THINGRELAY_AUTH_DEADLINE_MS: "20000" } });
      const held: WebSocket[] = [];
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const token = await newAccount(srv.url, admin.access_token, "alice");
        await newDevice(srv.url, token, "alice", "dev1");
        const attempts = await Promise.all([2, 3, 4, 5].flatMap((a) => Array.from({ length: 250 }, () => upgrade(srv.wsUrl, `127.0.0.${a}`, held))));
        console.log(`      1,000 idle upgrades from 4 addresses: ${held.length} held, ${attempts.filter((a) => a === 503).length} refused 503`);
        expect(held.length).to.be.at.most(40);
        const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "dev1", credentials: "dev1-secret", ws: { localAddress: "127.0.0.9" } });
        expect(d.frames[0]!.type).to.equal("connected");
        d.kill();
      } finally {
        for (const ws of held) ws.terminate();
        await srv.close();
      }
    });

    it("refusals on the upgrade path answer the JSON error shape with the security headers", async () => {
      const srv = await startServer();
      try {
        const r = await get(srv.port, "/v1/nowhere", { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==" });
        expect(r.status).to.equal(404);
        expect(JSON.parse(r.text)).to.deep.equal({ error: { code: "not_found", message: "no such route" } });
        expect(r.headers["x-content-type-options"]).to.equal("nosniff");
        expect(r.headers["content-type"]).to.match(/^application\/json/);
      } finally {
        await srv.close();
      }
    });
  });

  describe("6. paths are one case", () => {
    it("/V1/… and /OAUTH/… are not routes (404): they cannot skip the per-address limit, no-store or the token body limit", async () => {
      const srv = await startServer({ env: { THINGRELAY_RATE_LIMIT: "1000" } });
      try {
        const admin = await login(srv.url, ADMIN.user, ADMIN.password);
        const me = await get(srv.port, "/V1/me", { Authorization: `Bearer ${admin.access_token}` });
        expect(me.status).to.equal(404);
        expect(JSON.parse(me.text).error.code).to.equal("not_found");
        const big = JSON.stringify({ grant_type: "password", username: "admin", password: ADMIN.password, pad: "p".repeat(100 * 1024) });
        const tok = await get(srv.port, "/OAUTH/TOKEN", { "Content-Type": "application/json" }, false, "POST", big);
        expect(tok.status).to.be.oneOf([404, 413]);
        const ok = await get(srv.port, "/v1/me", { Authorization: `Bearer ${admin.access_token}` });
        expect(ok.status).to.equal(200);
        expect(ok.headers["cache-control"]).to.equal("no-store");
      } finally {
        await srv.close();
      }
    });
  });

  describe("4. per-account quotas", () => {
    let srv: TestServer;
    let admin: string;
    before(async () => {
      srv = await startServer({ env: { THINGRELAY_MAX_DEVICES_PER_ACCOUNT: "3", THINGRELAY_MAX_TOKENS_PER_ACCOUNT: "3", THINGRELAY_MAX_SESSIONS_PER_USER: "3" } });
      admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    });
    after(async () => srv?.close());

    it("THINGRELAY_MAX_DEVICES_PER_ACCOUNT=3: a parallel burst of 10 creates exactly 3; the rest 403 quota_exceeded naming the limit", async () => {
      const token = await newAccount(srv.url, admin, "quota_dev");
      const rs = await Promise.all(Array.from({ length: 10 }, (_, i) => api(srv.url, "POST", "/v1/users/quota_dev/devices", {
        token, json: { device_id: `d${i}`, device_credentials: "secret-123" },
      })));
      expect(rs.filter((r) => r.status === 201).length).to.equal(3);
      const refused = rs.filter((r) => r.status !== 201);
      expect(refused.map((r) => r.status)).to.deep.equal(Array(7).fill(403));
      expect(refused[0]!.body.error.code).to.equal("quota_exceeded");
      expect(refused[0]!.body.error.message).to.match(/at most 3 devices.*THINGRELAY_MAX_DEVICES_PER_ACCOUNT/);
      expect(await srv.relay.services.repos.devices.count({ user: "quota_dev" })).to.equal(3);
    });

    it("THINGRELAY_MAX_TOKENS_PER_ACCOUNT=3 counts device and user tokens together", async () => {
      const token = await newAccount(srv.url, admin, "quota_tok");
      await newDevice(srv.url, token, "quota_tok", "d");
      for (let i = 0; i < 2; i++) {
        expect((await api(srv.url, "POST", "/v1/users/quota_tok/devices/d/tokens", { token, json: { token_name: `t${i}` } })).status).to.be.oneOf([200, 201]);
      }
      expect((await api(srv.url, "POST", "/v1/users/quota_tok/tokens", { token, json: { name: "u0", allow: [{ action: "ListDevices", target: "*" }] } })).status).to.be.oneOf([200, 201]);
      const over = await api(srv.url, "POST", "/v1/users/quota_tok/tokens", { token, json: { name: "u1", allow: [{ action: "ListDevices", target: "*" }] } });
      expect(over.status).to.equal(403);
      expect(over.body.error.code).to.equal("quota_exceeded");
      expect(over.body.error.message).to.match(/at most 3 device and user tokens/);
      const overDev = await api(srv.url, "POST", "/v1/users/quota_tok/devices/d/tokens", { token, json: { token_name: "t9" } });
      expect([overDev.status, overDev.body.error.code]).to.deep.equal([403, "quota_exceeded"]);
    });

    it("THINGRELAY_MAX_SESSIONS_PER_USER=3: a 5th sign-in leaves 3 live sessions, the two oldest revoked", async () => {
      await newAccount(srv.url, admin, "quota_ses");
      const sessions = [];
      for (let i = 0; i < 5; i++) sessions.push(await login(srv.url, "quota_ses", "quota_ses-password"));
      expect(await srv.relay.services.repos.families.count({ user: "quota_ses", revoked: false })).to.equal(3);
      const status = async (s: { access_token: string }) => (await api(srv.url, "GET", "/v1/me", { token: s.access_token })).status;
      expect(await Promise.all(sessions.map(status))).to.deep.equal([401, 401, 200, 200, 200]);
      const refresh = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: sessions[0]!.refresh_token } });
      expect(refresh.status).to.equal(401);
    });

    it("THINGRELAY_MAX_SESSIONS_PER_USER=3: 4 parallel sign-ins that all see each other's sessions leave 3 live, not fewer", async () => {
      await newAccount(srv.url, admin, "quota_par");
      const families = srv.relay.services.repos.families;
      const find = families.find;
      // Every sign-in has created its family before any of them counts the live ones (the order load can give).
      let arrived = 0;
      let allArrived!: () => void;
      const barrier = new Promise<void>((resolve) => (allArrived = resolve));
      families.find = async function (this: typeof families, ...args: Parameters<typeof find>) {
        const q = args[0] as { user?: string; revoked?: boolean };
        if (q.user === "quota_par" && q.revoked === false) {
          if (++arrived === 4) allArrived();
          await barrier;
        }
        return find.apply(this, args);
      };
      let sessions;
      try {
        sessions = await Promise.all(Array.from({ length: 4 }, () => login(srv.url, "quota_par", "quota_par-password")));
      } finally {
        families.find = find;
      }
      expect(arrived).to.equal(4);
      expect(await families.count({ user: "quota_par", revoked: false })).to.equal(3);
      const status = async (s: { access_token: string }) => (await api(srv.url, "GET", "/v1/me", { token: s.access_token })).status;
      expect((await Promise.all(sessions.map(status))).sort()).to.deep.equal([200, 200, 200, 401]);
    });

    it("rotated refresh tokens are pruned: 50 rotations keep ≤ 6 tokens in the family; a reuse of a kept one still revokes it", async () => {
      await newAccount(srv.url, admin, "rotator");
      let s = await login(srv.url, "rotator", "rotator-password");
      const rotated: string[] = [];
      for (let i = 0; i < 50; i++) {
        const r = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: s.refresh_token } });
        expect(r.status).to.equal(200);
        rotated.push(s.refresh_token);
        s = r.body;
      }
      const repos = srv.relay.services.repos;
      const family = (await repos.refreshTokens.findOne({ _id: hashToken(s.refresh_token) }))!.family;
      expect(await repos.refreshTokens.count({ family })).to.equal(6);
      const reuse = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: rotated.at(-2)! } });
      expect(reuse.status).to.equal(401);
      expect((await api(srv.url, "GET", "/v1/me", { token: s.access_token })).status).to.equal(401);
      expect(await repos.refreshTokens.count({ family })).to.equal(0);
    });
  });

  describe("5. locks cannot be reset by junk", () => {
    it("100,000 junk usernames from a blocked address add no keys (heap) and do not unlock a locked account", async () => {
      // A window longer than the test can take on a slow store, so only the junk could lift the lock.
      const srv = await startServer({ bruteForce: { perAccountAndClient: 5, perClient: 20, perAccount: 3, windowMs: 3_600_000 } });
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        await newAccount(srv.url, admin, "victim");
        const oauth = srv.relay.services.oauth;
        const tryLogin = (u: string, p: string, ip: string) => oauth.passwordGrant(u, p, ip).then(() => 200, (e: { status?: number }) => e.status ?? 0);
        for (let i = 0; i < 3; i++) expect(await tryLogin("victim", "wrong-password", `10.1.0.${i}`)).to.equal(401);
        expect(await tryLogin("victim", "victim-password", "10.1.1.1")).to.equal(429);
        for (let i = 0; i < 20; i++) expect(await tryLogin(`junk${i}`, "x", "10.2.0.1")).to.equal(401);
        expect(await tryLogin("junk_first", "x", "10.2.0.1")).to.equal(429); // its one "throttled" log line
        const before = heapMiB();
        for (let i = 0; i < 100_000; i++) {
          const r = await tryLogin(`junk_${i}`, "x", "10.2.0.1");
          if (r !== 429) throw new Error(`junk ${i}: ${r}`);
        }
        // No key per junk name (~2 × 100,000 limiter entries before the fix: ~25 MiB).
        const grown = heapMiB() - before;
        console.log(`      100,000 junk names from a blocked address: heap +${grown.toFixed(1)} MiB`);
        expect(grown).to.be.below(6);
        expect(await tryLogin("victim", "victim-password", "10.1.1.2")).to.equal(429);
      } finally {
        await srv.close();
      }
    });

    it("the per-account lock lives in the store: a second node sharing it sees the lock", async () => {
      const srv = await startServer({ bruteForce: { perAccountAndClient: 5, perClient: 20, perAccount: 3, windowMs: 60_000 } });
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        await newAccount(srv.url, admin, "shared");
        for (let i = 0; i < 4; i++) await srv.relay.services.oauth.passwordGrant("shared", "wrong-password", `10.3.0.${i}`).catch(() => undefined);
        const doc = await srv.relay.services.repos.users.findOne({ _id: "shared" });
        expect(doc).to.deep.include({ loginFailCount: 3 });
        // A second app over the same store (as a second node) refuses the right password.
        const { createThingrelay } = await import("../server/app.js");
        const other = createThingrelay({
          config: srv.relay.services.config, store: srv.store, logger: srv.relay.services.logger, secret: "another-secret-that-is-at-least-32-bytes!",
          bruteForce: { perAccountAndClient: 5, perClient: 20, perAccount: 3, windowMs: 60_000 },
        });
        try {
          const r = await other.services.oauth.passwordGrant("shared", "shared-password", "10.4.0.1").then(() => 200, (e: { status?: number }) => e.status);
          expect(r).to.equal(429);
        } finally {
          await other.close();
        }
      } finally {
        await srv.close();
      }
    });
  });

  describe("7. smaller findings", () => {
    it("21 simultaneous correct sign-ins from one address all succeed; wrong ones still stop at the limit", async function () {
      // The per-account failure count lives in the store ($inc on sign-in, $inc -1 when it succeeds). FerretDB (the
      // API suite's MongoDB pass) rewrites the whole document on every update, so 21 overlapping increments and
      // decrements can lose some and leave the count high (a flake seen in CI); MongoDB applies $inc atomically and
      // the embedded pass asserts this test. Skipped on FerretDB, with this reason.
      if (apiOnMongo()) this.skip();
      // A slower hash (scrypt N=2^14), so the sign-ins really overlap.
      const srv = await startServer({ env: { THINGRELAY_PASSWORD_COST: "14" } });
      try {
        const rs = await Promise.all(Array.from({ length: 21 }, () => api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: ADMIN.user, password: ADMIN.password } })));
        expect(rs.map((r) => r.status)).to.deep.equal(Array(21).fill(200));
        const wrong = await Promise.all(Array.from({ length: 30 }, (_, i) => api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: `someone${i}`, password: "nope-nope" } })));
        expect(wrong.filter((r) => r.status === 401).length).to.equal(20);
        expect(wrong.filter((r) => r.status === 429).length).to.equal(10);
        expect(srv.logs.filter((l) => l.includes("login_throttled")).length).to.equal(1);
      } finally {
        await srv.close();
      }
    });

    it("a password typed into the username field is never logged", async () => {
      const srv = await startServer();
      try {
        const r = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "Tr0ub4dor&3-horse", password: "x" } });
        expect(r.status).to.equal(401);
        expect(srv.logs.join("")).not.to.include("Tr0ub4dor");
        expect(srv.logs.join("")).to.include("login_failed");
      } finally {
        await srv.close();
      }
    });

    it("IPv6 clients are throttled per /64", async () => {
      const srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true", THINGRELAY_RATE_LIMIT: "2" } });
      try {
        const s: number[] = [];
        for (const a of ["2001:db8:1:2::a", "2001:db8:1:2:ffff::b", "2001:db8:1:2:0:0:0:c"]) s.push((await get(srv.port, "/v1/me", { "X-Forwarded-For": a })).status);
        expect(s).to.deep.equal([401, 401, 429]);
        expect((await get(srv.port, "/v1/me", { "X-Forwarded-For": "2001:db8:1:3::a" })).status).to.equal(401);
      } finally {
        await srv.close();
      }
    });

    it("an admin disables an account: sign-in, refresh, every token, open streams and device sessions refused at once; enabling restores sign-in", async () => {
      const srv = await startServer();
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        const token = await newAccount(srv.url, admin, "bob");
        const session = await login(srv.url, "bob", "bob-password");
        await newDevice(srv.url, token, "bob", "d");
        const dt = (await api(srv.url, "POST", "/v1/users/bob/devices/d/tokens", { token, json: { token_name: "t" } })).body.token as string;
        const dev = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "bob", device: "d", credentials: "d-secret" });
        const stream = await sse(`${srv.url}/v1/users/bob/devices/d/stats?authorization=${dt}`);
        expect(stream.status).to.equal(200);
        expect((await api(srv.url, "PUT", "/v1/users/bob", { token, json: { enabled: false } })).status).to.equal(403);
        const off = await api(srv.url, "PUT", "/v1/users/bob", { token: admin, json: { enabled: false } });
        expect([off.status, off.body]).to.deep.equal([200, { username: "bob", enabled: false }]);
        expect((await dev.closed).code).to.equal(4001);
        const end = await stream.next((e) => e.event === "end");
        expect(JSON.parse(end.data)).to.deep.equal({ reason: "token_revoked" });
        for (const t of [token, dt]) expect((await api(srv.url, "GET", "/v1/me", { token: t })).status).to.equal(401);
        expect((await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "bob", password: "bob-password" } })).status).to.equal(401);
        expect((await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: session.refresh_token } })).status).to.equal(401);
        const again = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "bob", device: "d", credentials: "d-secret" }).then(() => "open", (e: { close?: { code: number } }) => e.close?.code);
        expect(again).to.equal(4001);
        expect((await api(srv.url, "PUT", "/v1/users/bob", { token: admin, json: { enabled: "no" } })).status).to.equal(400);
        expect((await api(srv.url, "PUT", "/v1/users/ghost", { token: admin, json: { enabled: false } })).status).to.equal(404);
        expect((await api(srv.url, "PUT", "/v1/users/bob", { token: admin, json: { enabled: true } })).status).to.equal(200);
        expect((await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "bob", password: "bob-password" } })).status).to.equal(200);
        expect((await api(srv.url, "GET", "/v1/me", { token: dt })).status).to.equal(200);
      } finally {
        await srv.close();
      }
    });

    it("a password change with revoke_tokens: true revokes every device and user token of the account", async () => {
      const srv = await startServer();
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        const token = await newAccount(srv.url, admin, "carl");
        await newDevice(srv.url, token, "carl", "d");
        const dt = (await api(srv.url, "POST", "/v1/users/carl/devices/d/tokens", { token, json: { token_name: "t" } })).body.token as string;
        const ut = (await api(srv.url, "POST", "/v1/users/carl/tokens", { token, json: { name: "u", allow: [{ action: "ListDevices", target: "*" }] } })).body.token as string;
        const bad = await api(srv.url, "PUT", "/v1/users/carl/password", { token, json: { current_password: "carl-password", password: "carl-password-2", revoke_tokens: "yes" } });
        expect(bad.status).to.equal(400);
        const r = await api(srv.url, "PUT", "/v1/users/carl/password", { token, json: { current_password: "carl-password", password: "carl-password-2", revoke_tokens: true } });
        expect(r.status).to.equal(200);
        for (const t of [dt, ut]) expect((await api(srv.url, "GET", "/v1/me", { token: t })).status).to.equal(401);
        expect(await srv.relay.services.repos.deviceTokens.count({ user: "carl" })).to.equal(0);
        expect(await srv.relay.services.repos.userTokens.count({ user: "carl" })).to.equal(0);
      } finally {
        await srv.close();
      }
    });

    it("a token made by a session while its password is changed with revoke_tokens: true is taken back (401), not kept", async () => {
      const srv = await startServer();
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        await newAccount(srv.url, admin, "cora");
        const repos = srv.relay.services.repos;
        /**
         * Signs in with `from`, then makes a token with `path`/`json` while a change to `to` with revoke_tokens runs
         * to its end just after the request passed its checks, before its token is stored.
         */
        const makeAcross = async (from: string, to: string, collection: typeof repos.userTokens | typeof repos.deviceTokens, path: string, json: object) => {
          const token = (await login(srv.url, "cora", from)).access_token;
          const change = runBefore(collection, "insertOne",
            () => api(srv.url, "PUT", "/v1/users/cora/password", { token, json: { current_password: from, password: to, revoke_tokens: true } }));
          try {
            const r = await api(srv.url, "POST", path, { token, json });
            expect(change.ran().status).to.equal(200);
            return r;
          } finally {
            change.restore();
          }
        };
        await newDevice(srv.url, (await login(srv.url, "cora", "cora-password")).access_token, "cora", "d");
        const user = await makeAcross("cora-password", "cora-password-2", repos.userTokens, "/v1/users/cora/tokens", { name: "u", allow: [{ action: "ListDevices", target: "*" }] });
        expect([user.status, user.body.error?.code]).to.deep.equal([401, "unauthorized"]);
        expect(await repos.userTokens.count({ user: "cora" })).to.equal(0);
        const device = await makeAcross("cora-password-2", "cora-password-3", repos.deviceTokens, "/v1/users/cora/devices/d/tokens", { token_name: "t" });
        expect([device.status, device.body.error?.code]).to.deep.equal([401, "unauthorized"]);
        expect(await repos.deviceTokens.count({ user: "cora" })).to.equal(0);
      } finally {
        await srv.close();
      }
    });

    it("THINGRELAY_METRICS_TOKEN protects /metrics", async () => {
      const srv = await startServer({ env: { THINGRELAY_METRICS_TOKEN: "scraper-token-0123456789" } });
      try {
        const none = await api(srv.url, "GET", "/metrics");
        expect([none.status, none.body.error.code]).to.deep.equal([401, "unauthorized"]);
        expect((await api(srv.url, "GET", "/metrics", { token: "scraper-token-012345678X" })).status).to.equal(401);
        const ok = await api(srv.url, "GET", "/metrics", { token: "scraper-token-0123456789" });
        expect(ok.status).to.equal(200);
        expect(ok.text).to.include("thingrelay_connected_devices");
      } finally {
        await srv.close();
      }
    });

    it("one device token holds at most half of the account's SSE slots", async () => {
      const srv = await startServer({ env: { THINGRELAY_MAX_STREAMS: "4" } });
      const open: Array<{ close(): void }> = [];
      try {
        const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
        const token = await newAccount(srv.url, admin, "dana");
        await newDevice(srv.url, token, "dana", "d");
        const dt = (await api(srv.url, "POST", "/v1/users/dana/devices/d/tokens", { token, json: { token_name: "t" } })).body.token as string;
        const url = `${srv.url}/v1/users/dana/devices/d/stats`;
        const statuses: number[] = [];
        for (let i = 0; i < 3; i++) {
          const c = await sse(url, { Authorization: `Bearer ${dt}` });
          open.push(c);
          statuses.push(c.status);
        }
        expect(statuses).to.deep.equal([200, 200, 429]);
        const mine = await sse(url, { Authorization: `Bearer ${token}` });
        open.push(mine);
        expect(mine.status).to.equal(200);
      } finally {
        for (const c of open) c.close();
        await srv.close();
      }
    });
  });
});
