/**
 * Limits and headers: body limits (413), header limits (431 on the real server process), JSON depth,
 * media types (415), rate limits per token and per client address on the API and the relay (429 +
 * Retry-After), the cap on unauthenticated device sockets (503) and on open streams (429), security
 * headers on every answer, CORS off by default and on for listed origins, and error bodies that never
 * carry stacks or versions.
 */
import { expect } from "chai";
import { connect, type Socket } from "node:net";
import { startMain, stopAllMains, type MainProcess } from "../helpers/process.js";
import { sse, closeAllSse } from "../helpers/sse.js";
import { tried } from "./figures.js";
import {
  ADMIN, account, answerProblem, faultyStore, frame, loginAs, postJson, raw, rawUpgrade, startHard, type HardServer, type RawWs,
} from "./harness.js";
import { streamsClosedTo } from "../helpers/streams.js";

const form = (body: string) => ({ "Content-Type": "application/x-www-form-urlencoded", "Content-Length": String(Buffer.byteLength(body)) });

describe("hardening: limits and headers", function () {
  this.timeout(60_000);
  let srv: HardServer;
  let alice: string;

  before(async () => {
    srv = await startHard({ env: { THINGRELAY_RATE_LIMIT: "1000000" } });
    const admin = (await loginAs(srv.port, ADMIN.user, ADMIN.password)).access_token;
    alice = await account(srv.port, admin, "alice", ["d1"]);
  });
  after(() => srv?.close());

  describe("request bodies", () => {
    const big = (n: number) => `grant_type=password&username=alice&password=${"p".repeat(n)}`;

    it("token endpoint: a form body over 8 KB → 413 payload_too_large (Content-Length and chunked)", async () => {
      const body = big(9000);
      const sized = await raw(srv.port, { method: "POST", path: "/oauth/token", body, headers: form(body) });
      const chunked = await raw(srv.port, { method: "POST", path: "/oauth/token", body, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      for (const r of [sized, chunked]) {
        expect(r.status).to.equal(413);
        expect(r.body.error.code).to.equal("payload_too_large");
      }
    });

    it("token endpoint: a JSON body over 8 KB → 413, also chunked (no 256 KiB buffering before auth)", async () => {
      const body = JSON.stringify({ grant_type: "password", username: "alice", password: "p".repeat(20_000) });
      const chunked = await raw(srv.port, { method: "POST", path: "/oauth/token", body, headers: { "Content-Type": "application/json" } });
      expect(chunked.status).to.equal(413);
      expect(chunked.body.error.code).to.equal("payload_too_large");
      const huge = await raw(srv.port, { method: "POST", path: "/oauth/revoke", body: JSON.stringify({ token: "t".repeat(200_000) }), headers: { "Content-Type": "application/json" } });
      expect(huge.status).to.equal(413);
    });

    it("API: a JSON body over 256 KiB → 413 (Content-Length and chunked); just under passes the parser", async () => {
      const over = JSON.stringify({ in: "x".repeat(256 * 1024) });
      const a = await postJson(srv.port, "/v2/users/alice/devices/d1/temp", JSON.parse(over), alice);
      const b = await raw(srv.port, { method: "POST", path: "/v1/users/alice/devices", body: over, headers: { Authorization: `Bearer ${alice}`, "Content-Type": "application/json" } });
      for (const r of [a, b]) {
        expect(r.status).to.equal(413);
        expect(r.body.error.code).to.equal("payload_too_large");
      }
      const under = await postJson(srv.port, "/v2/users/alice/devices/d1/temp", { in: "x".repeat(200 * 1024) }, alice);
      expect(under.status).to.equal(404);
      expect(under.body.error.code).to.equal("device_offline");
    });

    it("bad JSON → 400 invalid_json; other media types → 415, sized or chunked, on REST, token and relay routes", async () => {
      const bad = await raw(srv.port, { method: "POST", path: "/v1/users/alice/devices", body: '{"device_id":', headers: { Authorization: `Bearer ${alice}`, "Content-Type": "application/json", "Content-Length": "13" } });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal("invalid_json");
      for (const path of ["/v1/users/alice/devices", "/oauth/token"]) {
        for (const chunked of [false, true]) {
          const body = "device_id=x";
          const r = await raw(srv.port, { method: "POST", path, body, headers: { Authorization: `Bearer ${alice}`, "Content-Type": "text/plain", ...(chunked ? {} : { "Content-Length": String(body.length) }) } });
          expect(r.status, `${path} chunked=${chunked}`).to.equal(415);
          expect(r.body.error.code).to.equal("unsupported_media_type");
        }
      }
      for (const chunked of [false, true]) {
        const relay = await raw(srv.port, { method: "POST", path: "/v2/users/alice/devices/d1/temp", body: "1", headers: { Authorization: `Bearer ${alice}`, "Content-Type": "text/plain", ...(chunked ? {} : { "Content-Length": "1" }) } });
        expect(relay.status, `relay chunked=${chunked}`).to.equal(415);
      }
    });

    it("a[__proto__]=b&a[length]=1e8 on the token endpoint → 400 at once, no pollution", async () => {
      const body = "a[__proto__]=b&a[length]=100000000&grant_type=password";
      const t0 = performance.now();
      const r = await raw(srv.port, { method: "POST", path: "/oauth/token", body, headers: form(body) });
      const ms = performance.now() - t0;
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
      expect(({} as Record<string, unknown>).length).to.equal(undefined);
      process.stdout.write(`      figures: qs prototype/length body answered 400 in ${ms.toFixed(1)} ms\n`);
    });

    it("JSON nested deeper than 32 → 400 invalid_request; 32 levels pass the depth check", async () => {
      const nest = (n: number) => JSON.parse("[".repeat(n) + "]".repeat(n)) as unknown;
      const deep = await postJson(srv.port, "/v2/users/alice/devices/d1/temp", { in: nest(40) }, alice);
      expect(deep.status).to.equal(400);
      expect(deep.body.error).to.deep.equal({ code: "invalid_request", message: "JSON nested deeper than 32" });
      const ok = await postJson(srv.port, "/v2/users/alice/devices/d1/temp", { in: nest(30) }, alice);
      expect(ok.body.error.code).to.equal("device_offline");
      const veryDeep = "[".repeat(100_000) + "]".repeat(100_000);
      const r = await raw(srv.port, { method: "POST", path: "/v2/users/alice/devices/d1/temp", body: veryDeep, headers: { Authorization: `Bearer ${alice}`, "Content-Type": "application/json", "Content-Length": String(veryDeep.length) } });
      expect(r.status).to.equal(400);
    });
  });

  describe("rate limits (THINGRELAY_RATE_LIMIT=5 per minute)", () => {
    let s: HardServer;
    let tok: string;
    before(async () => {
      s = await startHard({ env: { THINGRELAY_RATE_LIMIT: "5" } });
      // Setup traffic from its own address, so the budgets under test start empty.
      const admin = (await loginAs(s.port, ADMIN.user, ADMIN.password, "127.0.9.1")).access_token;
      const c = await raw(s.port, { method: "POST", path: "/v1/users", localAddress: "127.0.9.2", body: JSON.stringify({ username: "bob", password: "bob-password" }), headers: { Authorization: `Bearer ${admin}`, "Content-Type": "application/json" } });
      expect(c.status).to.equal(201);
      tok = (await loginAs(s.port, "bob", "bob-password", "127.0.9.3")).access_token;
    });
    after(() => s?.close());

    for (const [label, path] of [["API", "/v1/me"], ["relay", "/v2/users/bob/devices/nodev/temp"]] as const) {
      it(`${label}: per client address — the 6th call from one address → 429 + Retry-After, X-Forwarded-For changes nothing, another address passes`, async () => {
        const addr = label === "API" ? "127.0.1.1" : "127.0.1.2";
        const statuses: number[] = [];
        let last;
        for (let i = 0; i < 6; i++) {
          last = await raw(s.port, { path, localAddress: addr, headers: { "X-Forwarded-For": `10.0.0.${i}` } });
          statuses.push(last.status);
        }
        expect(statuses).to.deep.equal([401, 401, 401, 401, 401, 429]);
        expect(last!.body.error.code).to.equal("too_many_requests");
        expect(Number(last!.headers["retry-after"])).to.be.within(1, 60);
        const other = await raw(s.port, { path, localAddress: label === "API" ? "127.0.2.1" : "127.0.2.2" });
        expect(other.status).to.equal(401);
        tried("rate_limit", 7);
      });

      it(`${label}: per token — one token from six addresses → the 6th → 429 + Retry-After`, async () => {
        const statuses: number[] = [];
        let last;
        for (let i = 0; i < 6; i++) {
          last = await raw(s.port, { path, localAddress: `127.0.${label === "API" ? 3 : 4}.${i + 1}`, headers: { Authorization: `Bearer ${tok}` } });
          statuses.push(last.status);
        }
        const okStatus = label === "API" ? 200 : 404;
        expect(statuses).to.deep.equal([okStatus, okStatus, okStatus, okStatus, okStatus, 429]);
        expect(last!.body.error).to.deep.equal({ code: "too_many_requests", message: "rate limit exceeded for this token" });
        expect(Number(last!.headers["retry-after"])).to.be.within(1, 60);
        tried("rate_limit", 6);
        // The API and the relay share one budget per token: reset it for the next case by using a new token.
        tok = (await loginAs(s.port, "bob", "bob-password", "127.0.9.4")).access_token;
      });
    }
  });

  describe("caps on unauthenticated sockets and open streams", () => {
    let s: HardServer;
    let tok: string;
    const held: RawWs[] = [];
    before(async () => {
      s = await startHard({ env: { THINGRELAY_MAX_PENDING_SOCKETS: "3", THINGRELAY_MAX_STREAMS: "2", THINGRELAY_AUTH_DEADLINE_MS: "10000" } });
      const admin = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
      tok = await account(s.port, admin, "carol", ["d"]);
    });
    after(async () => {
      for (const w of held) w.socket.destroy();
      closeAllSse();
      await s?.close();
    });

    it("THINGRELAY_MAX_PENDING_SOCKETS=3: a 4th unauthenticated socket → 503 on upgrade; a slot frees when one authenticates", async () => {
      // Distinct source addresses: one address alone may hold only a quarter of the slots (checked below).
      for (let i = 0; i < 3; i++) held.push(await rawUpgrade(s.port, { localAddress: `127.0.0.${11 + i}` }));
      const refused = await rawUpgrade(s.port, { localAddress: "127.0.0.14" }).then(() => 101, (e: { status?: number }) => e.status);
      expect(refused).to.equal(503);
      held[0]!.send(frame({ opcode: 1, payload: JSON.stringify({ type: "connect", user: "carol", device: "d", credentials: "d-secret" }) }));
      await held[0]!.text((t) => t.includes('"connected"'));
      const fourth = await rawUpgrade(s.port, { localAddress: "127.0.0.14" });
      held.push(fourth);
      tried("socket_cap", 5);
    });

    it("THINGRELAY_MAX_STREAMS=2: a 3rd SSE stream of the account → 429 too_many_streams + Retry-After; closing one frees it", async () => {
      const url = `${s.url}/v1/users/carol/devices/d/stats`;
      const a = await sse(url, { Authorization: `Bearer ${tok}` });
      const b = await sse(url, { Authorization: `Bearer ${tok}` });
      expect([a.status, b.status]).to.deep.equal([200, 200]);
      const c = await sse(url, { Authorization: `Bearer ${tok}` });
      expect(c.status).to.equal(429);
      expect(c.body.error.code).to.equal("too_many_streams");
      expect(c.headers.get("retry-after")).to.match(/^\d+$/);
      // The server sees the abort a moment after the client: its `closed` event says the slot is free.
      const freed = streamsClosedTo(s.relay.services.streams, 1);
      a.close();
      await a.ended;
      await freed;
      const d = await sse(url, { Authorization: `Bearer ${tok}` });
      expect(d.status).to.equal(200);
      tried("stream_cap", 4);
    });
  });

  describe("streams under abrupt disconnects", () => {
    it("1,000 SSE streams opened and dropped abruptly leak no slot, listener or gauge", async function () {
      this.timeout(60_000);
      const s = await startHard({ env: { THINGRELAY_MAX_STREAMS: "64", THINGRELAY_RATE_LIMIT: "1000000" } });
      try {
        const admin = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
        const t = await account(s.port, admin, "dave", ["d"]);
        const hub = s.relay.services.hub;
        const events = ["online", "offline", "traffic", "data", "describe"] as const;
        const listeners = () => events.map((e) => hub.listenerCount(e)).join(",");
        const before = listeners();
        const paths = ["/v1/users/dave/devices/d/stats", "/v1/users/dave/events"];
        let opened = 0;
        for (let i = 0; i < 1000; i += 25) {
          const batch = await Promise.all(Array.from({ length: 25 }, (_, j) =>
            raw(s.port, { path: paths[(i + j) % 2]!, headers: { Authorization: `Bearer ${t}`, Accept: "text/event-stream" } })));
          for (const r of batch) {
            expect(r.status).to.be.oneOf([200, 429]);
            if (r.status === 200) opened++;
          }
        }
        tried("sse", 1000);
        // Aborts reach the server a moment after the client: wait for its last `closed` event.
        await streamsClosedTo(s.relay.services.streams, 0, 30_000);
        const m = (await raw(s.port, { path: "/metrics" })).text;
        const gauge = [...m.matchAll(/^thingrelay_open_streams\{[^}]*\} (\d+)$/gm)].reduce((n, x) => n + Number(x[1]), 0);
        expect(gauge).to.equal(0);
        const after = listeners();
        expect(after).to.equal(before);
        // Every slot is free again: the cap allows a full set of new streams.
        const again = await Promise.all(Array.from({ length: 64 }, () => raw(s.port, { path: paths[0]!, headers: { Authorization: `Bearer ${t}`, Accept: "text/event-stream" } })));
        expect(again.every((r) => r.status === 200)).to.equal(true);
        process.stdout.write(`      figures: SSE abrupt disconnects 1000 (opened ${opened}), open-stream gauge after 0, hub listeners (online,offline,traffic,data,describe) before ${before} after ${after}\n`);
      } finally {
        await s.close();
      }
    });
  });

  describe("password grant timing", () => {
    it("unknown user and wrong password: identical answers, comparable time (one scrypt either way)", async function () {
      this.timeout(60_000);
      // Cost 14 (not the test default 10) so the hash dominates; 17 in production.
      const s = await startHard({ env: { THINGRELAY_PASSWORD_COST: "14" }, bruteForce: { perAccountAndClient: 1e9, perClient: 1e9, perAccount: 1e9, windowMs: 60_000 } });
      try {
        const admin = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
        await account(s.port, admin, "erin");
        const time = async (user: string) => {
          const body = `grant_type=password&username=${user}&password=not-the-password`;
          const t0 = performance.now();
          const r = await raw(s.port, { method: "POST", path: "/oauth/token", body, headers: form(body) });
          return { ms: performance.now() - t0, r };
        };
        const unknown: number[] = [];
        const wrong: number[] = [];
        let bodies = new Set<string>();
        for (let i = 0; i < 10; i++) {
          const a = await time("nobody_here");
          const b = await time("erin");
          unknown.push(a.ms);
          wrong.push(b.ms);
          bodies = new Set([...bodies, `${a.r.status} ${a.r.text}`, `${b.r.status} ${b.r.text}`]);
        }
        expect([...bodies]).to.deep.equal(['401 {"error":{"code":"invalid_grant","message":"invalid username or password"}}']);
        const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
        const mu = median(unknown);
        const mw = median(wrong);
        // Loose on purpose (shared CPU): an unknown user skipping the hash would be ~100x faster, not 2x.
        expect(mu / mw).to.be.within(0.5, 2);
        process.stdout.write(`      figures: password grant median ms at scrypt N=2^14: unknown user ${mu.toFixed(1)}, wrong password ${mw.toFixed(1)}, Δ ${(mu - mw).toFixed(1)} ms\n`);
      } finally {
        await s.close();
      }
    });
  });

  describe("security headers, CORS and error bodies", () => {
    const requests: Array<{ what: string; req: Parameters<typeof raw>[1]; status: number }> = [];
    before(() => {
      const A = { Authorization: `Bearer ${alice}` };
      requests.push(
        { what: "health", req: { path: "/health" }, status: 200 },
        { what: "metrics", req: { path: "/metrics" }, status: 200 },
        { what: "me", req: { path: "/v1/me", headers: A }, status: 200 },
        { what: "device list", req: { path: "/v1/users/alice/devices", headers: A }, status: 200 },
        { what: "no token", req: { path: "/v1/me" }, status: 401 },
        { what: "cross account", req: { path: "/v1/users/admin/devices", headers: A }, status: 404 },
        { what: "no route", req: { path: "/nope" }, status: 404 },
        { what: "GET token", req: { path: "/oauth/token" }, status: 405 },
        { what: "bad request", req: { path: "/v2/users/alice/devices/d1/%2e%2e", headers: A }, status: 400 },
        { what: "offline", req: { path: "/v2/users/alice/devices/d1/temp", headers: A }, status: 404 },
        { what: "415", req: { method: "POST", path: "/oauth/token", body: "x", headers: { "Content-Type": "text/plain", "Content-Length": "1" } }, status: 415 },
        { what: "413", req: { method: "POST", path: "/oauth/token", body: "x".repeat(9000), headers: form("x".repeat(9000)) }, status: 413 },
        { what: "401 grant", req: { method: "POST", path: "/oauth/token", body: "grant_type=password&username=alice&password=nope", headers: form("grant_type=password&username=alice&password=nope") }, status: 401 },
      );
    });

    it("every answer has nosniff, Referrer-Policy no-referrer, a CSP and X-Frame-Options; API answers Cache-Control no-store; no X-Powered-By or Server", async () => {
      for (const { what, req, status } of requests) {
        const r = await raw(srv.port, req);
        expect(r.status, what).to.equal(status);
        expect(answerProblem(r, { api: req.path.startsWith("/v1/") || req.path.startsWith("/v2/") || req.path.startsWith("/oauth/") }), what).to.equal(null);
        expect(r.headers["x-frame-options"], what).to.equal("DENY");
        tried("headers_check");
      }
    });

    it("answers to requests node cannot parse carry the same JSON error shape and security headers", async () => {
      const answer = await new Promise<string>((resolve) => {
        const sock: Socket = connect({ host: "127.0.0.1", port: srv.port });
        let got = "";
        sock.on("data", (d: Buffer) => (got += d.toString("latin1")));
        sock.on("close", () => resolve(got));
        sock.on("error", () => {});
        sock.end("GET /v1/\u00ff HTTP/1.1\r\nHost: x\r\n\r\n", "latin1");
      });
      expect(answer).to.match(/^HTTP\/1\.1 400 /);
      expect(answer).to.include("X-Content-Type-Options: nosniff");
      expect(answer).to.include("Referrer-Policy: no-referrer");
      expect(answer).to.include('{"error":{"code":"invalid_request","message":"malformed HTTP request"}}');
    });

    it("CORS is off by default: no Access-Control-Allow-Origin on a preflight or a call from any origin", async () => {
      const pre = await raw(srv.port, { method: "OPTIONS", path: "/v1/me", headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" } });
      const get = await raw(srv.port, { path: "/v1/me", headers: { Origin: "https://app.example", Authorization: `Bearer ${alice}` } });
      expect(pre.headers["access-control-allow-origin"]).to.equal(undefined);
      expect(get.status).to.equal(200);
      expect(get.headers["access-control-allow-origin"]).to.equal(undefined);
    });

    it("THINGRELAY_CORS_ORIGINS lists origins: those get CORS (also on errors), others and `null` get none, never credentials", async () => {
      const s = await startHard({ env: { THINGRELAY_CORS_ORIGINS: "https://app.example,http://localhost:5173" } });
      try {
        const pre = await raw(s.port, { method: "OPTIONS", path: "/v1/me", headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization" } });
        expect(pre.status).to.equal(204);
        expect(pre.headers["access-control-allow-origin"]).to.equal("https://app.example");
        expect(String(pre.headers["access-control-allow-methods"])).to.include("GET");
        expect(String(pre.headers["access-control-allow-headers"]).toLowerCase()).to.include("authorization");
        expect(pre.headers["access-control-allow-credentials"]).to.equal(undefined);
        const err = await raw(s.port, { path: "/v1/me", headers: { Origin: "http://localhost:5173" } });
        expect(err.status).to.equal(401);
        expect(err.headers["access-control-allow-origin"]).to.equal("http://localhost:5173");
        expect(String(err.headers["access-control-expose-headers"])).to.include("WWW-Authenticate");
        expect(String(err.headers.vary)).to.include("Origin");
        for (const origin of ["https://evil.example", "null", "https://app.example.evil.com"]) {
          const r = await raw(s.port, { method: "OPTIONS", path: "/v1/me", headers: { Origin: origin, "Access-Control-Request-Method": "GET" } });
          expect(r.headers["access-control-allow-origin"], origin).to.equal(undefined);
        }
      } finally {
        await s.close();
      }
    });

    it("QA F6: CORS allows the documented request headers (Prefer, Idempotency-Key) and exposes Location, Idempotent-Replayed, Allow", async () => {
      const s = await startHard({ env: { THINGRELAY_CORS_ORIGINS: "http://panel.example" } });
      try {
        const pre = await raw(s.port, {
          method: "OPTIONS", path: "/v2/users/admin/devices/d1/relay",
          headers: { Origin: "http://panel.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type,idempotency-key,prefer" },
        });
        expect(pre.status).to.equal(204);
        const allowed = String(pre.headers["access-control-allow-headers"]).toLowerCase().split(",").map((h) => h.trim());
        expect(allowed).to.include.members(["authorization", "content-type", "idempotency-key", "prefer"]);
        const t = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
        const r = await raw(s.port, { path: "/v1/users/admin/devices?limit=1", headers: { Origin: "http://panel.example", Authorization: `Bearer ${t}` } });
        expect(r.status).to.equal(200);
        expect(r.headers["access-control-allow-origin"]).to.equal("http://panel.example");
        const exposed = String(r.headers["access-control-expose-headers"]).toLowerCase().split(",").map((h) => h.trim());
        expect(exposed).to.include.members(["location", "idempotent-replayed", "allow", "retry-after", "link", "x-total-count"]);
      } finally {
        await s.close();
      }
    });

    it("an unexpected store error → 500 internal_error with a fixed message: no stack, path or version in the body", async () => {
      let ctl!: ReturnType<typeof faultyStore>;
      const s = await startHard({ wrapStore: (st) => (ctl = faultyStore(st)).store });
      try {
        const t = (await loginAs(s.port, ADMIN.user, ADMIN.password)).access_token;
        ctl.set("broken");
        const r = await raw(s.port, { path: "/v1/users/admin/devices", headers: { Authorization: `Bearer ${t}` } });
        expect(r.status).to.equal(500);
        expect(r.body).to.deep.equal({ error: { code: "internal_error", message: "internal server error" } });
        expect(r.text).to.not.match(/node_modules|v9\.9\.9|\.js:\d+|\bat\b/);
        expect(answerProblem(r, { api: true })).to.equal(null);
        // The detail is in the server log (for operators), with the request id the client got.
        expect(s.logs.some((l) => l.includes("unhandled error") && l.includes(String(r.headers["x-request-id"])))).to.equal(true);
      } finally {
        ctl.set("ok");
        await s.close();
      }
    });

    it("store down (as MongoDB stopped) → 503 service_unavailable + Retry-After; recovers without a restart", async () => {
      let ctl!: ReturnType<typeof faultyStore>;
      const s = await startHard({ wrapStore: (st) => (ctl = faultyStore(st)).store });
      try {
        ctl.set("unavailable");
        const login = await raw(s.port, { method: "POST", path: "/oauth/token", body: "grant_type=password&username=admin&password=admin-password-1", headers: form("grant_type=password&username=admin&password=admin-password-1") });
        expect(login.status).to.equal(503);
        expect(login.body.error.code).to.equal("service_unavailable");
        expect(login.headers["retry-after"]).to.match(/^\d+$/);
        expect(login.text).to.not.include("ECONNREFUSED");
        ctl.set("ok");
        const again = await loginAs(s.port, ADMIN.user, ADMIN.password);
        expect(again.access_token).to.be.a("string");
      } finally {
        ctl.set("ok");
        await s.close();
      }
    });
  });

  describe("on the real server process (server/main.ts)", () => {
    let main: MainProcess;
    let slow: Socket;
    let slowAnswer: Promise<string>;
    let slowTimer: NodeJS.Timeout;
    before(async () => {
      main = await startMain({ env: { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" } });
      // Started first and checked last, so the 10 s headersTimeout of main.ts elapses while the other tests run.
      slow = connect({ host: "127.0.0.1", port: main.port });
      slow.on("error", () => {});
      slowAnswer = new Promise((resolve) => {
        let got = "";
        slow.on("data", (d: Buffer) => (got += d.toString("latin1")));
        slow.on("close", () => resolve(got));
      });
      slow.write("GET /v1/connect HTTP/1.1\r\nHost: x\r\n");
      let i = 0;
      slowTimer = setInterval(() => {
        if (!slow.destroyed) slow.write(`X-Slow-${i++}: 1\r\n`);
      }, 500);
    });
    after(async () => {
      clearInterval(slowTimer);
      slow?.destroy();
      await main?.cleanup();
      await stopAllMains();
    });

    it("headers over 16 KiB → 431 headers_too_large in the JSON error shape, and the process stays up", async () => {
      const r = await raw(main.port, { path: "/v1/me", headers: { "X-Big": "a".repeat(17 * 1024) } });
      expect(r.status).to.equal(431);
      expect(r.body).to.deep.equal({ error: { code: "headers_too_large", message: "request headers too large" } });
      expect(r.headers["referrer-policy"]).to.equal("no-referrer");
      const many = await raw(main.port, { path: "/health", headers: Object.fromEntries(Array.from({ length: 600 }, (_, i) => [`x-h${i}`, "a".repeat(30)])) });
      expect(many.status).to.equal(431);
      expect((await raw(main.port, { path: "/health" })).status).to.equal(200);
    });

    it("a socket trickling headers is answered 408 and closed at main.ts's headersTimeout (10 s)", async function () {
      this.timeout(30_000);
      const answer = await slowAnswer;
      expect(answer).to.match(/^HTTP\/1\.1 408 /);
      expect(answer).to.include('"code":"request_timeout"');
      expect((await raw(main.port, { path: "/health" })).status).to.equal(200);
      tried("slowloris");
    });
  });
});
