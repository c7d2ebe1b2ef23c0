import { expect } from "chai";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, type ApiOptions, type ApiResponse, login, newAccount, newDevice } from "./helpers/api.js";

/**
 * Issue 15: a plain relay call is run by a middleware ahead of the router (server/relay/fast-path.ts). Each
 * request here is made twice: once plain (the fast path: the router never matches it) and once with a header
 * that sends it through the router's relay route without changing its meaning (GET: an `Accept` list the fast
 * path leaves alone; POST: a `Prefer` that does not ask for respond-async). Both answers must be the same:
 * status, body and every header but `Date` and `X-Request-Id`.
 */
describe("relay fast path: the same answers as the router's relay route", () => {
  let srv: TestServer;
  let token: string;
  let device: Device;
  let routerMatches = 0;

  before(async () => {
    srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true" } });
    const router = srv.relay.router;
    const match = router.match.bind(router);
    router.match = (...args: Parameters<typeof match>) => {
      routerMatches++;
      return match(...args);
    };
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "fay");
    await newAccount(srv.url, admin.access_token, "gus");
    await newDevice(srv.url, token, "fay", "dev", "dev-secret");
    await newDevice(srv.url, token, "fay", "sleeper", "zz-secret");
    device = new Device({ server: srv.wsUrl, user: "fay", device: "dev", credentials: "dev-secret" });
    device.output("temperature", () => 21.5);
    device.output("nested/value", () => ({ a: [1, 2] }));
    device.input("relay", () => undefined);
    device.io("io", (v: { x: number }) => ({ twice: v.x * 2 }));
    device.run("reset", () => undefined);
    device.output("boom", () => {
      throw new DeviceError(409, "not now");
    });
    await device.connect();
  });
  after(async () => {
    await device?.close();
    await srv?.close();
  });

  const path = (rest: string, user = "fay", dev = "dev") => `/v2/users/${user}/devices/${dev}/${rest}`;
  const headerSet = (r: ApiResponse) => [...r.headers.entries()].filter(([k]) => k !== "date" && k !== "x-request-id").sort();

  /** The request through the fast path, then through the router; asserts both went where meant and answer alike. */
  async function both(method: "GET" | "POST", p: string, o: ApiOptions = {}, beforeRouting = false): Promise<ApiResponse> {
    const m0 = routerMatches;
    const fast = await api(srv.url, method, p, o);
    expect(routerMatches - m0, "the plain request did not reach the router").to.equal(0);
    const via: Record<string, string> = method === "GET" ? { Accept: "application/json, text/plain" } : { Prefer: "return=minimal" };
    const m1 = routerMatches;
    const routed = await api(srv.url, method, p, { ...o, headers: { ...o.headers, ...via } });
    // A body refused while reading (bodyReader, ahead of both) never reaches either.
    if (beforeRouting) expect(routerMatches - m1, "refused before routing").to.equal(0);
    else expect(routerMatches - m1, "the marked request went through the router").to.be.greaterThan(0);
    expect(fast.status, `${method} ${p}`).to.equal(routed.status);
    expect(fast.text).to.equal(routed.text);
    expect(headerSet(fast)).to.deep.equal(headerSet(routed));
    expect(fast.headers.get("x-request-id")).to.match(/^[0-9a-f-]{36}$/);
    return fast;
  }

  it("an output: 200 {out} with the security headers, no-store, JSON type and length", async () => {
    const r = await both("GET", path("temperature"), { token });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: 21.5 });
    expect(r.headers.get("content-type")).to.equal("application/json; charset=utf-8");
    expect(r.headers.get("content-length")).to.equal(String(r.text.length));
    expect(r.headers.get("cache-control")).to.equal("no-store");
    expect(r.headers.get("x-content-type-options")).to.equal("nosniff");
    expect(r.headers.get("content-security-policy")).to.include("frame-ancestors 'none'");
  });

  it("a nested resource name and an object value", async () => {
    const r = await both("GET", path("nested/value"), { token });
    expect(r.body).to.deep.equal({ out: { a: [1, 2] } });
  });

  it("POST to an input: 200 with an empty body; POST {in} to io: 200 {out}", async () => {
    expect((await both("POST", path("relay"), { token, json: { in: true } })).text).to.equal("");
    expect((await both("POST", path("io"), { token, json: { in: { x: 4 } } })).body).to.deep.equal({ out: { twice: 8 } });
    expect((await both("POST", path("reset"), { token })).status).to.equal(200);
  });

  it("authentication: no token 401 with the challenge, a malformed or bad token 401", async () => {
    const none = await both("GET", path("temperature"));
    expect(none.status).to.equal(401);
    expect(none.headers.get("www-authenticate")).to.equal('Bearer realm="thingrelay"');
    expect((await both("GET", path("temperature"), { headers: { Authorization: "Basic abc" } })).body.error.code).to.equal("unauthorized");
    expect((await both("GET", path("temperature"), { token: `${token}x` })).body.error.code).to.equal("unauthorized");
    expect((await both("POST", path("relay"), { token: "nope", json: { in: 1 } })).status).to.equal(401);
  });

  it("a token both in the header and the query: 400, as the router's route says", async () => {
    const r = await both("GET", `${path("temperature")}?authorization=${token}`, { token });
    expect(r.status).to.equal(400);
  });

  it("another account, a bad user or device name, an unknown device: the same 404s", async () => {
    expect((await both("GET", path("temperature", "gus"), { token })).body.error.code).to.equal("device_not_found");
    expect((await both("GET", path("temperature", "fay", "nosuch"), { token })).body.error.code).to.equal("device_not_found");
    expect((await both("GET", path("temperature", "fay", "b@d"), { token })).body.error.code).to.equal("device_not_found");
    expect((await both("GET", path("temperature", "F!ay"), { token })).status).to.equal(404);
  });

  it("an offline device, an unknown resource, a device error: the same codes", async () => {
    expect((await both("GET", path("temperature", "fay", "sleeper"), { token })).body.error.code).to.equal("device_offline");
    expect((await both("GET", path("nosuch"), { token })).body.error.code).to.equal("resource_not_found");
    const boom = await both("GET", path("boom"), { token });
    expect(boom.status).to.be.at.least(400);
  });

  it("a verb the kind does not take: 405 with Allow", async () => {
    const r = await both("GET", path("relay"), { token });
    expect(r.status).to.equal(405);
    expect(r.headers.get("allow")).to.equal("POST");
    expect((await both("POST", path("temperature"), { token, json: { in: 1 } })).status).to.equal(405);
  });

  it("request bodies: bad JSON 400, not JSON 415, too large 413, too deep 400", async () => {
    expect((await both("POST", path("relay"), { token, raw: "{nope", headers: { "Content-Type": "application/json" } }, true)).body.error.code).to.equal("invalid_json");
    expect((await both("POST", path("relay"), { token, raw: "a=1", headers: { "Content-Type": "application/x-www-form-urlencoded" } })).status).to.equal(415);
    expect((await both("POST", path("relay"), { token, json: { in: "x".repeat(2_000_000) } }, true)).status).to.equal(413);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect((await both("POST", path("relay"), { token, json: { in: deep } }, true)).body.error.code).to.equal("invalid_request");
  });

  it("a device token for another resource: 403; for this resource: 200", async () => {
    const dt = await api(srv.url, "POST", "/v1/users/fay/devices/dev/tokens", { token, json: { token_name: "t", token_resources: ["temperature"] } });
    expect(dt.status).to.equal(200);
    expect((await both("GET", path("nested/value"), { token: dt.body.token })).status).to.equal(403);
    expect((await both("GET", path("temperature"), { token: dt.body.token })).status).to.equal(200);
  });

  it("`?timeout=`: a bad value 400, a good one runs the call", async () => {
    expect((await both("GET", `${path("temperature")}?timeout=abc`, { token })).body.error.code).to.equal("invalid_request");
    expect((await both("GET", `${path("temperature")}?timeout=2`, { token })).status).to.equal(200);
  });

  it("what it leaves to the router still works: HEAD 405, /api, an SSE Accept, encoded names, queued calls", async () => {
    const m0 = routerMatches;
    expect((await api(srv.url, "HEAD", path("temperature"), { token })).status).to.equal(405);
    expect((await api(srv.url, "GET", path("api"), { token })).status).to.equal(200);
    expect((await api(srv.url, "GET", path("temperature/api"), { token })).body.kind).to.equal("output");
    expect((await api(srv.url, "GET", path("%74emperature"), { token })).body).to.deep.equal({ out: 21.5 });
    expect((await api(srv.url, "GET", path("temperature"), { token, headers: { Accept: "application/xml" } })).status).to.equal(406);
    expect((await api(srv.url, "POST", path("relay"), { token, json: { in: 1 }, headers: { Prefer: "respond-async" } })).status).to.equal(202);
    expect(routerMatches - m0).to.equal(6);
  });
});

describe("relay fast path: the per-address and per-token limits", () => {
  let srv: TestServer;
  let token: string;

  before(async () => {
    srv = await startServer({ env: { THINGRELAY_TRUST_PROXY: "true", THINGRELAY_RATE_LIMIT: "8" } });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "hal");
  });
  after(async () => {
    await srv?.close();
  });

  const p = "/v2/users/hal/devices/d/temperature";
  const from = (ip: string, extra: Record<string, string> = {}) => ({ "X-Forwarded-For": ip, ...extra });

  it("the per-address limit answers 429 with Retry-After, through the fast path as through the router", async () => {
    for (let i = 0; i < 8; i++) expect((await api(srv.url, "GET", p, { headers: from("10.1.0.1") })).status).to.equal(401);
    const fast = await api(srv.url, "GET", p, { token, headers: from("10.1.0.1") });
    const routed = await api(srv.url, "GET", p, { token, headers: from("10.1.0.1", { Accept: "application/json, text/plain" }) });
    for (const r of [fast, routed]) {
      expect(r.status).to.equal(429);
      expect(r.body.error.message).to.equal("rate limit exceeded for this address");
      expect(Number(r.headers.get("retry-after"))).to.be.within(1, 60);
    }
  });

  it("the per-token limit answers 429 with Retry-After, through the fast path as through the router", async () => {
    let status = 0;
    let i = 0;
    // Each request from its own address: only the token's window fills up.
    while (status !== 429 && i < 20) status = (await api(srv.url, "GET", p, { token, headers: from(`10.2.0.${++i}`) })).status;
    expect(status).to.equal(429);
    const fast = await api(srv.url, "GET", p, { token, headers: from("10.3.0.1") });
    const routed = await api(srv.url, "GET", p, { token, headers: from("10.3.0.2", { Accept: "application/json, text/plain" }) });
    for (const r of [fast, routed]) {
      expect(r.status).to.equal(429);
      expect(r.body.error.message).to.equal("rate limit exceeded for this token");
      expect(r.headers.get("retry-after")).to.match(/^\d+$/);
    }
  });
});
