import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "../helpers/server.js";
import { api, login, newAccount, newDevice } from "../helpers/api.js";
import { noSessions, once } from "../helpers/wait.js";
import { ThingerDevice, type ThingerDeviceFrame, type ThingerProtocol } from "../helpers/thinger-device.js";
import { TestDevice } from "./device.js";
import { IOTMP_TYPE, LEGACY_FLAG, type PsonValue } from "../../server/thinger/index.js";
import { PROPERTY_LIMITS } from "../../server/properties/service.js";

/**
 * Thinger devices read and write device properties through their protocols' own requests (THINGER-PROTOCOL
 * §2.8, §3.8): legacy GET_PROPERTY/SET_PROPERTY, IOTMP RUN READ_PROPERTY/SET_PROPERTY with the code where
 * IOTMP-Linux puts it (RESOURCE) and where IOTMP-Embedded/-Arduino put it (PARAMETERS). Nothing is pushed to them.
 */
const VARIANTS: Array<{ protocol: ThingerProtocol; layout: "linux" | "embedded"; device: string }> = [
  { protocol: "legacy", layout: "linux", device: "ard" },
  { protocol: "iotmp1", layout: "linux", device: "lx13" },
  { protocol: "iotmp2", layout: "linux", device: "lx" },
  { protocol: "iotmp2", layout: "embedded", device: "em" },
];

describe("Thinger devices: properties", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  const devices: ThingerDevice[] = [];

  before(async () => {
    srv = await startServer({ thinger: {} });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const v of VARIANTS) await newDevice(srv.url, token, "alice", v.device, "s3cret");
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
    await noSessions(srv.relay.services.hub);
  });
  after(() => srv?.close());

  for (const { protocol, layout, device } of VARIANTS) {
    describe(`${protocol}${protocol === "legacy" ? "" : `, code placed as IOTMP-${layout === "linux" ? "Linux" : "Embedded"}`}`, () => {
      const props = (name = "") => `/v3/users/alice/devices/${device}/properties${name ? `/${name}` : ""}`;
      let d: ThingerDevice;
      const get = (name: PsonValue, opts: { confirm?: boolean } = {}) => d.propertyRequest("get", name, undefined, { layout, ...opts });
      const set = (name: PsonValue, value: PsonValue | undefined, opts: { confirm?: boolean } = {}) => d.propertyRequest("set", name, value, { layout, ...opts });

      function isOk(f: ThingerDeviceFrame | undefined): boolean {
        return protocol === "legacy" ? f?.legacy?.flag === LEGACY_FLAG.REQUEST_OK : f?.iotmp?.type === IOTMP_TYPE.OK;
      }
      function isError(f: ThingerDeviceFrame | undefined): boolean {
        return protocol === "legacy" ? f?.legacy?.flag === LEGACY_FLAG.REQUEST_ERROR : f?.iotmp?.type === IOTMP_TYPE.ERROR;
      }
      const payloadOf = (f: ThingerDeviceFrame | undefined) => (protocol === "legacy" ? f?.legacy?.payload : f?.iotmp?.payload);
      /** Frames received since `mark`, keep-alives left out. */
      const since = (mark: number) => d.received.slice(mark).filter((f) => !f.keepAlive);

      beforeEach(async () => {
        for (const p of (await api(srv.url, "GET", props(), { token })).body as Array<{ property: string }>) {
          await api(srv.url, "DELETE", props(p.property), { token });
        }
        const t = new TestDevice({ protocol, port: srv.thingerPorts.thinger!, user: "alice", device, credentials: "s3cret", resources: { temp: { kind: "output", out: () => 21.5 } } });
        d = t.dev;
        devices.push(d);
        const up = once(srv.relay.services.hub, "online");
        await t.connect();
        await up;
      });

      it("an edit made over REST is what the device's next read gets (OK, raw value as payload); nothing is pushed", async () => {
        const mark = d.received.length;
        const value = { target: 21.5, mode: "eco", days: [1, 2, 3] };
        expect((await api(srv.url, "PUT", props("setpoint"), { token, json: { value } })).status).to.equal(200);
        const reply = await get("setpoint");
        expect(isOk(reply), "OK").to.equal(true);
        expect(payloadOf(reply)).to.deep.equal(value);
        // A push would have been written before the REST answer, so before the reply: only the reply came.
        expect(since(mark)).to.deep.equal([reply]);

        expect((await api(srv.url, "PUT", props("setpoint"), { token, json: { value: "off" } })).status).to.equal(200);
        expect(payloadOf(await get("setpoint"))).to.equal("off");
      });

      it("a device's SET_PROPERTY is stored (REST sees it with updated_ts) and answered OK; its change is not sent back", async () => {
        const mark = d.received.length;
        const before = Date.now();
        const reply = await set("firmware", { version: "1.4.2", build: 7 });
        expect(isOk(reply), "OK").to.equal(true);
        expect(payloadOf(reply)).to.equal(undefined);
        const r = await api(srv.url, "GET", props("firmware"), { token });
        expect(r.status).to.equal(200);
        expect(r.body).to.include({ property: "firmware" });
        expect(r.body.value).to.deep.equal({ version: "1.4.2", build: 7 });
        expect(r.body.updated_ts).to.be.a("number").within(before, Date.now());
        // Reading it back from the device is its value; no push of its own change came in between.
        const back = await get("firmware");
        expect(payloadOf(back)).to.deep.equal({ version: "1.4.2", build: 7 });
        expect(since(mark)).to.deep.equal([reply, back]);
        // Replacing it: the new value wins.
        expect(isOk(await set("firmware", "1.5.0"))).to.equal(true);
        expect((await api(srv.url, "GET", props("firmware"), { token })).body.value).to.equal("1.5.0");
      });

      it("an unknown property is the protocol's error (IOTMP: with the reason); the session carries on", async () => {
        const reply = await get("nope");
        expect(isError(reply), "error").to.equal(true);
        if (protocol === "legacy") expect(reply!.legacy).to.not.have.property("payload");
        else expect(payloadOf(reply)).to.deep.equal({ error: 'device has no property "nope"' });
        expect((await api(srv.url, "GET", `/v2/users/alice/devices/${device}/temp`, { token })).status).to.equal(200);
      });

      it("a value over the size limit, a bad name or a missing value is the protocol's error and nothing is stored", async () => {
        const big = await set("big", "x".repeat(PROPERTY_LIMITS.maxValueBytes));
        expect(isError(big), "too large").to.equal(true);
        if (protocol !== "legacy") expect(payloadOf(big)).to.have.property("error").that.matches(/larger than/);
        expect((await api(srv.url, "GET", props("big"), { token })).status).to.equal(404);
        let deep: PsonValue = 1;
        for (let i = 0; i < PROPERTY_LIMITS.maxDepth + 1; i++) deep = [deep];
        expect(isError(await set("deep", deep)), "too deep").to.equal(true);
        expect(isError(await set("bad name", 1)), "bad name").to.equal(true);
        expect(isError(await set(42, 1)), "name not a string").to.equal(true);
        expect(isError(await get("../etc")), "bad name on get").to.equal(true);
        expect(isError(await set("novalue", undefined)), "no value").to.equal(true);
        expect((await api(srv.url, "GET", props(), { token })).body).to.deep.equal([]);
      });

      it("requests without a stream id get no answer; a SET is still applied, in order before the next request", async () => {
        const mark = d.received.length;
        expect(await set("mode", "auto", { confirm: false })).to.equal(undefined);
        expect(await get("mode", { confirm: false })).to.equal(undefined);
        // Requests are served in arrival order: this read sees the unconfirmed SET.
        const reply = await get("mode");
        expect(payloadOf(reply)).to.equal("auto");
        expect(since(mark), "only the confirmed read was answered").to.deep.equal([reply]);
        expect((await api(srv.url, "GET", props("mode"), { token })).body.value).to.equal("auto");
      });
    });
  }

  it("other device requests (endpoints, buckets) are still answered with the protocol's error", async () => {
    const d = new ThingerDevice({ protocol: "iotmp2", port: srv.thingerPorts.iotmp!, user: "alice", device: "lx", credentials: "s3cret" });
    d.on("error", () => {});
    devices.push(d);
    expect(await d.connect()).to.equal("ok");
    const reply = await d.request({ type: IOTMP_TYPE.RUN, resource: 4, params: "my_endpoint", payload: { a: 1 } });
    expect(reply?.iotmp?.type).to.equal(IOTMP_TYPE.ERROR);
  });
});
