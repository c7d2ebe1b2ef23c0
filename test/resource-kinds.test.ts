import { expect } from "chai";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { whenState } from "./helpers/wait.js";

/** Issue 12 point 4: a resource's kind decides which method runs it; `…/{resource}/api` gives kind and state. */
describe("resource kinds: 405 on the wrong method, and a resource's /api", () => {
  let srv: TestServer;
  let token: string;
  let device: Device;
  const runs = { relay: 0, rgb: 0, temperature: 0, reset: 0, io: 0 };
  let relayOn = false;

  before(async () => {
    srv = await startServer();
    const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    token = await newAccount(srv.url, admin, "kinds");
    await newDevice(srv.url, token, "kinds", "board", "board-secret");
    await newDevice(srv.url, token, "kinds", "raw", "raw-secret");
    await newDevice(srv.url, token, "kinds", "asleep", "zz");
    device = new Device({ server: srv.wsUrl, user: "kinds", device: "board", credentials: "board-secret" });
    device.output("temperature", () => (runs.temperature++, 21.5));
    device.input("relay", (on: boolean) => {
      runs.relay++;
      relayOn = on;
    }, { state: () => relayOn });
    device.input("rgb", () => void runs.rgb++);
    device.io("io", (x: number) => (runs.io++, x * 2));
    device.run("reset", () => void runs.reset++);
    await device.connect();
    await whenState(srv.relay.services.hub, "describe", () => srv.relay.services.hub.get("kinds", "board")?.resources?.size === 5, 5000, "describe");
  });
  after(async () => {
    await device?.close();
    await srv?.close();
  });

  const v2 = (path: string, dev = "board") => `/v2/users/kinds/devices/${dev}/${path}`;

  describe("405 method_not_allowed", () => {
    it("GET on an input answers 405 with Allow: POST, and its handler never runs", async () => {
      const before = runs.relay;
      const r = await api(srv.url, "GET", v2("relay"), { token });
      expect(r.status).to.equal(405);
      expect(r.headers.get("allow")).to.equal("POST");
      expect(r.body).to.deep.equal({ error: { code: "method_not_allowed", message: '"relay" is an input resource: use POST' } });
      expect(runs.relay).to.equal(before);
    });

    it("POST on an output answers 405 with Allow: GET (with a body or without), and its handler never runs", async () => {
      const before = runs.temperature;
      for (const o of [{ json: { in: 5 } }, {}]) {
        const r = await api(srv.url, "POST", v2("temperature"), { token, ...o });
        expect(r.status).to.equal(405);
        expect(r.headers.get("allow")).to.equal("GET");
        expect(r.body.error).to.deep.equal({ code: "method_not_allowed", message: '"temperature" is an output resource: use GET' });
      }
      expect(runs.temperature).to.equal(before);
    });

    it("the right methods still run: GET output, POST input, POST io, GET and POST run", async () => {
      expect((await api(srv.url, "GET", v2("temperature"), { token })).body).to.deep.equal({ out: 21.5 });
      expect((await api(srv.url, "POST", v2("rgb"), { token, json: { in: "red" } })).status).to.equal(200);
      expect((await api(srv.url, "POST", v2("io"), { token, json: { in: 4 } })).body).to.deep.equal({ out: 8 });
      const before = runs.reset;
      expect((await api(srv.url, "GET", v2("reset"), { token })).status).to.equal(200);
      expect((await api(srv.url, "POST", v2("reset"), { token })).status).to.equal(200);
      expect(runs.reset).to.equal(before + 2);
    });

    it("a device that never described its resources gets every call (nothing to check against)", async () => {
      const raw = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "kinds", device: "raw", credentials: "raw-secret" });
      try {
        raw.onCall = () => "ok";
        const r = await api(srv.url, "POST", v2("anything", "raw"), { token, json: { in: 1 } });
        expect(r.status).to.equal(200);
        expect(raw.calls.at(-1)).to.deep.include({ resource: "anything", in: 1 });
      } finally {
        await raw.close();
      }
    });
  });

  describe("GET …/{resource}/api", () => {
    it("an input that reports its state: {kind, in}, following the state, without running the handler", async () => {
      const before = runs.relay;
      let r = await api(srv.url, "GET", v2("relay/api"), { token });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ kind: "input", in: false });
      expect((await api(srv.url, "POST", v2("relay"), { token, json: { in: true } })).status).to.equal(200);
      r = await api(srv.url, "GET", v2("relay/api"), { token });
      expect(r.body).to.deep.equal({ kind: "input", in: true });
      expect(runs.relay).to.equal(before + 1);
    });

    it("an input without a state: its kind only; a run resource: its kind, not run", async () => {
      expect((await api(srv.url, "GET", v2("rgb/api"), { token })).body).to.deep.equal({ kind: "input" });
      const before = runs.reset;
      expect((await api(srv.url, "GET", v2("reset/api"), { token })).body).to.deep.equal({ kind: "run" });
      expect(runs.reset).to.equal(before);
    });

    it("an output: {kind, out} with its current value", async () => {
      expect((await api(srv.url, "GET", v2("temperature/api"), { token })).body).to.deep.equal({ kind: "output", out: 21.5 });
    });

    it("POST on a resource's /api answers 405 with Allow: GET", async () => {
      const r = await api(srv.url, "POST", v2("relay/api"), { token, json: { in: true } });
      expect(r.status).to.equal(405);
      expect(r.headers.get("allow")).to.equal("GET");
      expect(r.body.error.code).to.equal("method_not_allowed");
    });

    it("POST on the device's /api answers 405 with Allow: GET, as a queued POST there does (it listed the resources)", async () => {
      const r = await api(srv.url, "POST", v2("api"), { token, json: { in: true } });
      expect(r.status).to.equal(405);
      expect(r.headers.get("allow")).to.equal("GET");
      expect(r.body.error).to.deep.equal({ code: "method_not_allowed", message: "a device's /api is read with GET" });
      const queued = await api(srv.url, "POST", v2("api"), { token, headers: { Prefer: "respond-async" } });
      expect(queued.status).to.equal(405);
      expect(queued.headers.get("allow")).to.equal("GET");
      expect((await api(srv.url, "GET", v2("api"), { token })).status).to.equal(200);
    });

    it("HEAD on an /api answers 405 with Allow: GET (a resource's own HEAD: Allow: GET, POST)", async () => {
      for (const path of ["api", "temperature/api"]) {
        const r = await fetch(srv.url + v2(path), { method: "HEAD", headers: { Authorization: `Bearer ${token}` } });
        expect(r.status, path).to.equal(405);
        expect(r.headers.get("allow"), path).to.equal("GET");
      }
      const r = await fetch(srv.url + v2("temperature"), { method: "HEAD", headers: { Authorization: `Bearer ${token}` } });
      expect(r.status).to.equal(405);
      expect(r.headers.get("allow")).to.equal("GET, POST");
    });

    it("OPTIONS and a 405 list the methods a path has: an /api GET, a resource GET and POST (never HEAD)", async () => {
      const allow = async (method: string, path: string) => {
        const r = await fetch(srv.url + v2(path), { method, headers: { Authorization: `Bearer ${token}` } });
        return [r.status, r.headers.get("allow")];
      };
      expect(await allow("OPTIONS", "api")).to.deep.equal([200, "GET"]);
      expect(await allow("OPTIONS", "temperature/api")).to.deep.equal([200, "GET"]);
      expect(await allow("OPTIONS", "temperature")).to.deep.equal([200, "GET, POST"]);
      expect(await allow("PUT", "api")).to.deep.equal([405, "GET"]);
      expect(await allow("DELETE", "temperature")).to.deep.equal([405, "GET, POST"]);
    });

    it("unknown resource, undescribed device, offline device, unknown device: 404 with distinct codes", async () => {
      let r = await api(srv.url, "GET", v2("nope/api"), { token });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("resource_not_found");
      const raw = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "kinds", device: "raw", credentials: "raw-secret" });
      try {
        r = await api(srv.url, "GET", v2("x/api", "raw"), { token });
        expect(r.status).to.equal(404);
        expect(r.body.error).to.deep.equal({ code: "resource_not_found", message: "the device has not described its resources" });
      } finally {
        await raw.close();
      }
      r = await api(srv.url, "GET", v2("x/api", "asleep"), { token });
      expect(r.body.error.code).to.equal("device_offline");
      r = await api(srv.url, "GET", v2("x/api", "ghost"), { token });
      expect(r.body.error.code).to.equal("device_not_found");
    });

    it("needs access to that resource: a device token for another resource gets 403", async () => {
      const dt = await api(srv.url, "POST", "/v1/users/kinds/devices/board/tokens", { token, json: { token_name: "t", token_resources: ["temperature"] } });
      expect((await api(srv.url, "GET", v2("temperature/api"), { token: dt.body.token })).status).to.equal(200);
      const r = await api(srv.url, "GET", v2("relay/api"), { token: dt.body.token });
      expect(r.status).to.equal(403);
      expect(r.body.error.code).to.equal("forbidden");
    });

    it("on the wire: describe carries \"state\":true, the server sends a state frame and the result's in is the state", async () => {
      const raw = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "kinds", device: "raw", credentials: "raw-secret" });
      try {
        const described = whenState(srv.relay.services.hub, "describe", () => srv.relay.services.hub.get("kinds", "raw")?.resources?.size === 2, 5000, "describe");
        raw.send({ type: "describe", resources: { door: { kind: "input", state: true }, lamp: { kind: "io" } } });
        await described;
        const frame = raw.next((f) => f.type === "state");
        const answer = api(srv.url, "GET", v2("door/api", "raw"), { token });
        const f = await frame;
        expect(f).to.deep.equal({ type: "state", id: f.id, resource: "door" });
        raw.send({ type: "result", id: f.id, in: { open: true } });
        expect((await answer).body).to.deep.equal({ kind: "input", in: { open: true } });
        // Without "state": true no state frame is sent: the kind alone.
        expect((await api(srv.url, "GET", v2("lamp/api", "raw"), { token })).body).to.deep.equal({ kind: "io" });
        expect(raw.frames.filter((x) => x.type === "state")).to.have.length(1);
        expect(raw.calls).to.have.length(0);
      } finally {
        await raw.close();
      }
    });
  });

  describe("SDK", () => {
    it("refuses a resource named api or ending in /api, and a state that is not a function", () => {
      const d = new Device({ server: srv.wsUrl, user: "kinds", device: "board", credentials: "x" });
      expect(() => d.output("api", () => 1)).to.throw(TypeError, /reserved/);
      expect(() => d.output("sensors/api", () => 1)).to.throw(TypeError, /reserved/);
      expect(() => d.input("door", () => 1, { state: 5 as unknown as () => unknown })).to.throw(TypeError, /"state" must be a function/);
    });
  });
});
