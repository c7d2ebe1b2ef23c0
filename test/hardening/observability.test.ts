/**
 * Observability: one pino line per request (reqId, status, ms), no secret in any log line of a full session
 * that uses every kind of credential (including `?authorization=`), GET /health, GET /ready (503 when the store
 * ping fails), and GET /metrics in Prometheus text format with values that move.
 */
import { expect } from "chai";
import { WebSocket } from "ws";
import { Device } from "../../device-sdk/index.js";
import { sse, closeAllSse } from "../helpers/sse.js";
import { tried } from "./figures.js";
import { ADMIN, faultyStore, loginAs, postJson, raw, startHard, type HardServer } from "./harness.js";
import { apiOnMongo } from "../helpers/mongo.js";
import { streamsClosedTo } from "../helpers/streams.js";
import { once } from "../helpers/wait.js";

const form = (body: string) => ({ "Content-Type": "application/x-www-form-urlencoded", "Content-Length": String(Buffer.byteLength(body)) });

/** Value of one sample in Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v) && Object.keys(got).length === Object.keys(labels).length) return Number(m[3]);
  }
  return 0;
}

describe("hardening: observability", function () {
  this.timeout(60_000);

  describe("logs", () => {
    let srv: HardServer;
    let ctl: ReturnType<typeof faultyStore>;
    const secrets = new Map<string, string>();
    const keep = (what: string, value: string) => {
      secrets.set(what, value);
      return value;
    };
    /** Also the signature segment alone: a truncated or reformatted token would still be caught. */
    const keepToken = (what: string, jwt: string) => {
      keep(what, jwt);
      const sig = jwt.split(".")[2];
      if (sig) keep(`${what} (signature)`, sig);
      return jwt;
    };

    before(async () => {
      srv = await startHard({ env: { LOG_LEVEL: "trace" }, wrapStore: (s) => (ctl = faultyStore(s)).store });
    });
    after(async () => {
      closeAllSse();
      ctl.set("ok");
      await srv?.close();
    });

    it("a full session with passwords, device credentials, refresh tokens and ?authorization= leaves no secret in any log line", async () => {
      const p = srv.port;
      const H = (t: string) => ({ Authorization: `Bearer ${t}` });
      keep("admin password", ADMIN.password);
      const admin = keepToken("admin access", (await loginAs(p, ADMIN.user, ADMIN.password)).access_token);
      const pw = keep("user password", "olga-Secret-pw-7391");
      expect((await postJson(p, "/v1/users", { username: "olga", password: pw }, admin)).status).to.equal(201);
      const s1 = await loginAs(p, "olga", pw);
      keepToken("access 1", s1.access_token);
      keep("refresh 1", s1.refresh_token);
      const refreshBody = `grant_type=refresh_token&refresh_token=${s1.refresh_token}`;
      const s2 = (await raw(p, { method: "POST", path: "/oauth/token", body: refreshBody, headers: form(refreshBody) })).body as typeof s1;
      keepToken("access 2", s2.access_token);
      keep("refresh 2", s2.refresh_token);
      const wrong = keep("wrong password", "wrong-Guess-pw-5521");
      const bad = `grant_type=password&username=olga&password=${wrong}`;
      expect((await raw(p, { method: "POST", path: "/oauth/token", body: bad, headers: form(bad) })).status).to.equal(401);
      const json = JSON.stringify({ grant_type: "password", username: "olga", password: wrong });
      expect((await raw(p, { method: "POST", path: "/oauth/token", body: json, headers: { "Content-Type": "application/json" } })).status).to.equal(401);
      const cred = keep("device credentials", "dev-Cred-8842-secret");
      expect((await postJson(p, "/v1/users/olga/devices", { device_id: "sensor", device_credentials: cred }, s2.access_token)).status).to.equal(201);
      const device = new Device({ server: `ws://127.0.0.1:${p}`, user: "olga", device: "sensor", credentials: cred });
      device.on("error", () => {});
      device.output("temp", () => 21.5);
      await device.connect();
      const badCred = keep("wrong device credentials", "bad-Cred-0193-xyz");
      const intruder = new WebSocket(`ws://127.0.0.1:${p}/v1/connect`);
      intruder.on("error", () => {});
      await new Promise<void>((resolve) => {
        intruder.on("open", () => intruder.send(JSON.stringify({ type: "connect", user: "olga", device: "sensor", credentials: badCred })));
        intruder.on("close", () => resolve());
      });
      const A = s2.access_token;
      expect((await raw(p, { path: `/v2/users/olga/devices/sensor/temp?authorization=${A}` })).status).to.equal(200);
      expect((await raw(p, { path: `/v2/users/olga/devices/sensor/temp?%61uthorization=${A}&timeout=5` })).status).to.equal(200);
      expect((await raw(p, { path: "/v2/users/olga/devices/sensor/temp", headers: H(A) })).status).to.equal(200);
      expect((await raw(p, { path: `/v1/me?access_token=${A}` })).status).to.equal(401);
      expect((await raw(p, { path: `/v1/me?authorization=${A}&authorization=${A}` })).status).to.equal(400);
      const dt = await postJson(p, "/v1/users/olga/devices/sensor/tokens", { token_name: "dash", token_resources: ["temp"] }, A);
      keepToken("device token", dt.body.token);
      expect((await raw(p, { path: `/v2/users/olga/devices/sensor/temp?authorization=${dt.body.token}` })).status).to.equal(200);
      const ut = await postJson(p, "/v1/users/olga/tokens", { name: "lister", allow: [{ action: "ListDevices", target: "*" }] }, A);
      keepToken("user token", ut.body.token);
      expect((await raw(p, { path: "/v1/users/olga/devices", headers: H(ut.body.token) })).status).to.equal(200);
      const stream = await sse(`http://127.0.0.1:${p}/v1/users/olga/devices/sensor/stats?authorization=${encodeURIComponent(A)}`);
      expect(stream.status).to.equal(200);
      stream.close();
      await stream.ended;
      const leak = keep("credentials in a broken JSON body", "json-Leak-4471");
      const broken = `{"device_id":"x","device_credentials":"${leak}"`;
      expect((await raw(p, { method: "POST", path: "/v1/users/olga/devices", body: broken, headers: { ...H(A), "Content-Type": "application/json", "Content-Length": String(broken.length) } })).status).to.equal(400);
      const cred2 = keep("new device credentials", "dev-Cred2-7788");
      const put = await raw(p, { method: "PUT", path: "/v1/users/olga/devices/sensor", body: JSON.stringify({ device_credentials: cred2 }), headers: { ...H(A), "Content-Type": "application/json" } });
      expect(put.status).to.equal(200);
      ctl.set("broken");
      expect((await raw(p, { path: `/v1/users/olga/devices?authorization=${A}` })).status).to.equal(500);
      ctl.set("ok");
      const revoke = `token=${s2.refresh_token}`;
      expect((await raw(p, { method: "POST", path: "/oauth/revoke", body: revoke, headers: form(revoke) })).status).to.equal(200);
      expect((await raw(p, { method: "POST", path: "/oauth/token", body: refreshBody, headers: form(refreshBody) })).status).to.equal(401); // reuse of R1
      const s3 = await loginAs(p, "olga", pw);
      keepToken("access 3", s3.access_token);
      keep("refresh 3", s3.refresh_token);
      const pw2 = keep("new password", "olga-New-pw-6620");
      expect((await raw(p, { method: "PUT", path: "/v1/users/olga/password", body: JSON.stringify({ current_password: pw, password: pw2 }), headers: { ...H(s3.access_token), "Content-Type": "application/json" } })).status).to.equal(200);
      keepToken("access 4", (await loginAs(p, "olga", pw2)).access_token);
      await device.close();

      const lines = srv.logs.join("").split("\n").filter((l) => l.trim() !== "");
      const found: string[] = [];
      for (const [what, value] of secrets) for (const l of lines) if (l.includes(value)) found.push(`${what} in ${l.slice(0, 160)}`);
      tried("log_secrets", secrets.size);
      process.stdout.write(`      figures: log lines ${lines.length}, secrets checked ${secrets.size}, secrets found ${found.length}\n`);
      expect(found).to.deep.equal([]);
      // Redaction is visible where a token was given in the URL.
      expect(lines.some((l) => l.includes("authorization=[REDACTED]"))).to.equal(true);
      expect(lines.some((l) => l.includes("%61uthorization=[REDACTED]"))).to.equal(true);
    });

    it("one structured line per request with reqId (= X-Request-Id), method, redacted url, status and ms", async () => {
      const r = await raw(srv.port, { path: "/v1/me?authorization=abc&x=1" });
      const id = String(r.headers["x-request-id"]);
      expect(id).to.match(/^[0-9a-f-]{36}$/);
      const lines = srv.logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reqId === id && l.msg === "request");
      expect(lines).to.have.length(1);
      const line = lines[0]!;
      expect(line).to.include({ method: "GET", url: "/v1/me?authorization=[REDACTED]&x=1", status: 401 });
      expect(line.ms).to.be.a("number");
      expect(line.level).to.equal(30);
    });
  });

  describe("health, readiness and metrics", () => {
    let srv: HardServer;
    let ctl: ReturnType<typeof faultyStore>;
    before(async () => {
      srv = await startHard({ env: { THINGRELAY_SSE_HEARTBEAT_MS: "60000" }, wrapStore: (s) => (ctl = faultyStore(s)).store });
    });
    after(async () => {
      closeAllSse();
      ctl.set("ok");
      await srv?.close();
    });

    it("GET /health answers 200 while the process is up, even with the store down", async () => {
      ctl.set("unavailable");
      const r = await raw(srv.port, { path: "/health" });
      ctl.set("ok");
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ status: "ok" });
    });

    it("GET /ready answers 200 with the store reachable, 503 + Retry-After when its ping fails, 200 again after", async () => {
      const ok = await raw(srv.port, { path: "/ready" });
      expect(ok.status).to.equal(200);
      // "mongodb" in the API suite's MongoDB pass (npm run test:mongo-api).
      expect(ok.body).to.deep.equal({ status: "ready", store: apiOnMongo() ? "mongodb" : "embedded" });
      ctl.set("unavailable");
      const down = await raw(srv.port, { path: "/ready" });
      ctl.set("ok");
      expect(down.status).to.equal(503);
      expect(down.body).to.deep.equal({ error: { code: "service_unavailable", message: "store unreachable" } });
      expect(down.headers["retry-after"]).to.match(/^\d+$/);
      expect((await raw(srv.port, { path: "/ready" })).status).to.equal(200);
    });

    it("GET /metrics is Prometheus text; devices, relay calls by outcome, latency histogram, open streams and grants move", async () => {
      const metrics = async () => {
        const r = await raw(srv.port, { path: "/metrics" });
        expect(r.status).to.equal(200);
        expect(String(r.headers["content-type"])).to.match(/^text\/plain; version=0\.0\.4/);
        return r.text;
      };
      const m0 = await metrics();
      for (const name of ["thingrelay_connected_devices", "thingrelay_relay_calls_total", "thingrelay_relay_duration_seconds", "thingrelay_open_streams", "thingrelay_token_grants_total"]) {
        expect(m0, name).to.match(new RegExp(`^# TYPE ${name} (gauge|counter|histogram)$`, "m"));
      }
      const admin = await loginAs(srv.port, ADMIN.user, ADMIN.password);
      const bad = "grant_type=password&username=admin&password=nope";
      expect((await raw(srv.port, { method: "POST", path: "/oauth/token", body: bad, headers: form(bad) })).status).to.equal(401);
      const rb = `grant_type=refresh_token&refresh_token=${admin.refresh_token}`;
      const refreshed = await raw(srv.port, { method: "POST", path: "/oauth/token", body: rb, headers: form(rb) });
      expect(refreshed.status).to.equal(200);
      const t = refreshed.body.access_token as string;
      expect((await postJson(srv.port, "/v1/users/admin/devices", { device_id: "m", device_credentials: "m-secret" }, t)).status).to.equal(201);
      const H = { Authorization: `Bearer ${t}` };
      expect((await raw(srv.port, { path: "/v2/users/admin/devices/m/temp", headers: H })).body.error.code).to.equal("device_offline");
      const device = new Device({ server: `ws://127.0.0.1:${srv.port}`, user: "admin", device: "m", credentials: "m-secret" });
      device.on("error", () => {});
      device.output("temp", () => 1);
      device.output("never", () => new Promise(() => {}));
      await device.connect();
      const m1 = await metrics();
      expect((await raw(srv.port, { path: "/v2/users/admin/devices/m/temp", headers: H })).status).to.equal(200);
      expect((await raw(srv.port, { path: "/v2/users/admin/devices/m/temp", headers: H })).status).to.equal(200);
      expect((await raw(srv.port, { path: "/v2/users/admin/devices/m/nope", headers: H })).status).to.equal(404);
      expect((await raw(srv.port, { path: "/v2/users/admin/devices/m/never?timeout=0.05", headers: H })).status).to.equal(504);
      const stream = await sse(`http://127.0.0.1:${srv.port}/v1/users/admin/devices/m/stats`, H);
      expect(stream.status).to.equal(200);
      const m2 = await metrics();
      // The server sees the client's abort and the device's close a moment later: await its own events.
      const streamGone = streamsClosedTo(srv.relay.services.streams, 0);
      const deviceGone = once(srv.relay.services.hub, "offline");
      stream.close();
      await stream.ended;
      await device.close();
      await Promise.all([streamGone, deviceGone]);
      const m3 = await metrics();
      const grants = (m: string, grant: string, outcome: string) => sample(m, "thingrelay_token_grants_total", { grant, outcome });
      expect(grants(m2, "password", "ok") - grants(m0, "password", "ok")).to.equal(1);
      expect(grants(m2, "password", "invalid_grant") - grants(m0, "password", "invalid_grant")).to.equal(1);
      expect(grants(m2, "refresh_token", "ok") - grants(m0, "refresh_token", "ok")).to.equal(1);
      expect(sample(m0, "thingrelay_connected_devices")).to.equal(0);
      expect(sample(m1, "thingrelay_connected_devices")).to.equal(1);
      expect(sample(m3, "thingrelay_connected_devices")).to.equal(0);
      const calls = (m: string, outcome: string) => sample(m, "thingrelay_relay_calls_total", { outcome });
      expect(calls(m1, "device_offline")).to.equal(1);
      expect(calls(m2, "ok") - calls(m1, "ok")).to.equal(2);
      expect(calls(m2, "resource_not_found") - calls(m1, "resource_not_found")).to.equal(1);
      expect(calls(m2, "device_timeout") - calls(m1, "device_timeout")).to.equal(1);
      expect(sample(m2, "thingrelay_relay_duration_seconds_count", { outcome: "ok" }) - sample(m1, "thingrelay_relay_duration_seconds_count", { outcome: "ok" })).to.equal(2);
      expect(sample(m2, "thingrelay_relay_duration_seconds_bucket", { outcome: "device_timeout", le: "0.025" })).to.equal(0);
      expect(sample(m2, "thingrelay_relay_duration_seconds_bucket", { outcome: "device_timeout", le: "+Inf" })).to.equal(1);
      expect(sample(m2, "thingrelay_open_streams", { kind: "stats" })).to.equal(1);
      expect(sample(m3, "thingrelay_open_streams", { kind: "stats" })).to.equal(0);
    });
  });
});
