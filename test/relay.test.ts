import { expect } from "chai";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { EventEmitter } from "node:events";
import { once } from "./helpers/wait.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { CALL_TIMEOUT_SLACK_MS } from "../server/gateway/device-session.js";

describe("relay: /v2 resource calls through a live SDK device", () => {
  let srv: TestServer;
  let token: string;
  let device: Device;
  let relayState = false;
  let rgb: unknown = null;
  /** The server's timers: a call timeout passes when the test advances it (the SDK device keeps real time). */
  const clock = new FakeClock();
  /** Emits "call" when a call of `slow` reaches the device. */
  const slowCalls = new EventEmitter();

  before(async () => {
    srv = await startServer({ timers: clock });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "nodemcu", "s3cret");
    await newDevice(srv.url, token, "alice", "sleeper", "zz");
    device = new Device({ server: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "s3cret" });
    device.output("temperature", () => 21.5);
    device.output("location", () => ({ lat: 41.65, lon: -0.88 }));
    device.input("relay", (on: boolean) => {
      relayState = on;
    });
    device.input("rgb", (v: unknown) => {
      rgb = v;
    });
    device.input("command", (c: unknown) => {
      if (typeof c !== "string") throw new DeviceError(400, "command must be a string");
    });
    device.io("io", ({ value1, value2 }: { value1: number; value2: number }) => ({ sum: value1 + value2, mult: value1 * value2 }));
    device.run("reset", () => undefined);
    device.output("$ota/begin", () => "ok");
    device.output("slow", () => {
      slowCalls.emit("call");
      return new Promise((r) => setTimeout(() => r(1), 3000));
    });
    device.output("boom", () => {
      throw new Error("sensor failure");
    });
    await device.connect();
  });
  after(async () => {
    await device?.close();
    await srv?.close();
  });

  const v2 = (path: string) => `/v2/users/alice/devices/nodemcu/${path}`;

  it("GET an output resource answers {out}", async () => {
    const r = await api(srv.url, "GET", v2("temperature"), { token });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: 21.5 });
  });

  it("GET an output resource with an object value (location)", async () => {
    const r = await api(srv.url, "GET", v2("location"), { token });
    expect(r.body).to.deep.equal({ out: { lat: 41.65, lon: -0.88 } });
  });

  it("works with ?authorization= instead of a header", async () => {
    const r = await api(srv.url, "GET", `${v2("temperature")}?authorization=${token}`);
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: 21.5 });
  });

  it('POST {"in": true} switches an input resource and answers 200 with no body', async () => {
    const r = await api(srv.url, "POST", v2("relay"), { token, json: { in: true } });
    expect(r.status).to.equal(200);
    expect(r.text).to.equal("");
    expect(relayState).to.equal(true);
  });

  it("POST a body that is not {in} passes it whole (rgb)", async () => {
    const r = await api(srv.url, "POST", v2("rgb"), { token, json: { r: 255, g: 0, b: 10 } });
    expect(r.status).to.equal(200);
    expect(rgb).to.deep.equal({ r: 255, g: 0, b: 10 });
  });

  it("io resource: value1/value2 → sum/mult (Thinger's example)", async () => {
    const r = await api(srv.url, "POST", v2("io"), { token, json: { value1: 20, value2: 10 } });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: { sum: 30, mult: 200 } });
    const r2 = await api(srv.url, "POST", v2("io"), { token, json: { in: { value1: 2, value2: 3 } } });
    expect(r2.body).to.deep.equal({ out: { sum: 5, mult: 6 } });
  });

  it("GET a run resource answers 200", async () => {
    const r = await api(srv.url, "GET", v2("reset"), { token });
    expect(r.status).to.equal(200);
    expect(r.text).to.equal("");
  });

  it("nested resource names ($ota/begin) work, encoded or not", async () => {
    expect((await api(srv.url, "GET", v2("$ota/begin"), { token })).body).to.deep.equal({ out: "ok" });
    expect((await api(srv.url, "GET", v2("%24ota/begin"), { token })).body).to.deep.equal({ out: "ok" });
  });

  it("a handler error with a status becomes that status with device_error", async () => {
    const r = await api(srv.url, "POST", v2("command"), { token, json: { in: 5 } });
    expect(r.status).to.equal(400);
    expect(r.body.error.code).to.equal("device_error");
    expect(r.body.error.message).to.equal("command must be a string");
  });

  it("a handler error without a status is 500 device_error", async () => {
    const r = await api(srv.url, "GET", v2("boom"), { token });
    expect(r.status).to.equal(500);
    expect(r.body.error).to.deep.equal({ code: "device_error", message: "sensor failure" });
  });

  it("unknown resource → 404 resource_not_found", async () => {
    const r = await api(srv.url, "GET", v2("nope"), { token });
    expect(r.status).to.equal(404);
    expect(r.body.error.code).to.equal("resource_not_found");
  });

  it("unregistered device → 404 device_not_found", async () => {
    const r = await api(srv.url, "GET", "/v2/users/alice/devices/ghost/temperature", { token });
    expect(r.status).to.equal(404);
    expect(r.body.error.code).to.equal("device_not_found");
  });

  it("registered but not connected → 404 device_offline", async () => {
    const r = await api(srv.url, "GET", "/v2/users/alice/devices/sleeper/temperature", { token });
    expect(r.status).to.equal(404);
    expect(r.body.error.code).to.equal("device_offline");
  });

  it("?timeout= bounds the wait → 504 device_timeout", async () => {
    const reached = once(slowCalls, "call");
    // 30 s, longer than this test may take: only the injected clock can make it pass.
    const call = api(srv.url, "GET", `${v2("slow")}?timeout=30`, { token });
    await reached;
    await clock.advance(29_999);
    expect(srv.relay.services.hub.get("alice", "nodemcu")!.inflight, "in flight 1 ms before the timeout").to.equal(1);
    await clock.advance(1 + CALL_TIMEOUT_SLACK_MS);
    const r = await call;
    expect(r.status).to.equal(504);
    expect(r.body.error.code).to.equal("device_timeout");
  });

  it("a bad ?timeout= is 400 invalid_request", async () => {
    for (const t of ["abc", "0", "-1", "100000"]) {
      const r = await api(srv.url, "GET", `${v2("temperature")}?timeout=${t}`, { token });
      expect(r.status, t).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
    }
  });

  it("GET /api lists the resources and their kinds", async () => {
    const r = await api(srv.url, "GET", v2("api"), { token });
    expect(r.status).to.equal(200);
    expect(r.body.temperature).to.deep.equal({ kind: "output" });
    expect(r.body.relay).to.deep.equal({ kind: "input" });
    expect(r.body.io).to.deep.equal({ kind: "io" });
    expect(r.body.reset).to.deep.equal({ kind: "run" });
    expect(r.body["$ota/begin"]).to.deep.equal({ kind: "output" });
  });

  it("no token → 401 unauthorized with a Bearer challenge", async () => {
    const r = await api(srv.url, "GET", v2("temperature"));
    expect(r.status).to.equal(401);
    expect(r.body.error.code).to.equal("unauthorized");
    expect(r.headers.get("www-authenticate")).to.match(/^Bearer/);
  });
});
