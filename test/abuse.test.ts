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
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { WindowLimiter, type Clock } from "../server/auth/limiter.js";

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
});
