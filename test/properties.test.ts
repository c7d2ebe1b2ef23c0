import { expect } from "chai";
import { Device } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { runAfter, runBefore } from "./helpers/interleave.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { PROPERTY_LIMITS, PropertiesService, type Property } from "../server/properties/service.js";
import { FakeClock } from "./helpers/fake-clock.js";

/** Device properties (issue 18): Thinger v3 routes, limits, tokens, the JSON device protocol and the SDK. */
describe("device properties (/v3 …/properties)", function () {
  this.timeout(20_000);
  let srv: TestServer;
  let token: string;
  const devices: Device[] = [];
  const raws: RawDevice[] = [];
  const props = (device = "thermo", name?: string) => `/v3/users/alice/devices/${device}/properties${name === undefined ? "" : `/${name}`}`;

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "thermo", "s3cret");
    await newDevice(srv.url, token, "alice", "other", "s3cret");
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
    for (const r of raws.splice(0)) await r.close();
  });
  after(async () => {
    await srv?.close();
  });

  describe("REST", () => {
    it("PUT creates a property and answers {property, value, updated_ts}; GET reads it back", async () => {
      const before = Date.now();
      const put = await api(srv.url, "PUT", props("thermo", "setpoint"), { token, json: { value: { target: 21.5, mode: "eco" } } });
      expect(put.status, put.text).to.equal(200);
      expect(put.body.property).to.equal("setpoint");
      expect(put.body.value).to.deep.equal({ target: 21.5, mode: "eco" });
      expect(put.body.updated_ts).to.be.at.least(before);
      const get = await api(srv.url, "GET", props("thermo", "setpoint"), { token });
      expect(get.status).to.equal(200);
      expect(get.body).to.deep.equal(put.body);
    });

    it("keeps values with keys nedb would refuse ($ and dots) unchanged", async () => {
      const value = { "$set": 1, "a.b": [null, false, "x"] };
      expect((await api(srv.url, "PUT", props("thermo", "odd"), { token, json: { value } })).status).to.equal(200);
      expect((await api(srv.url, "GET", props("thermo", "odd"), { token })).body.value).to.deep.equal(value);
    });

    it("lists the device's properties sorted by name, and nested names work", async () => {
      expect((await api(srv.url, "PUT", props("thermo", "zone/kitchen"), { token, json: { value: 3 } })).status).to.equal(200);
      const r = await api(srv.url, "GET", props("thermo"), { token });
      expect(r.status).to.equal(200);
      const names = (r.body as Array<{ property: string }>).map((p) => p.property);
      expect(names).to.include.members(["setpoint", "zone/kitchen"]);
      expect(names).to.deep.equal([...names].sort());
      expect((await api(srv.url, "GET", props("other"), { token })).body).to.deep.equal([]);
    });

    it("PUT replaces the value; DELETE removes it; a missing property is 404 property_not_found", async () => {
      await api(srv.url, "PUT", props("thermo", "gone"), { token, json: { value: 1 } });
      const put = await api(srv.url, "PUT", props("thermo", "gone"), { token, json: { value: 2 } });
      expect(put.body.value).to.equal(2);
      expect((await api(srv.url, "DELETE", props("thermo", "gone"), { token })).status).to.equal(200);
      const get = await api(srv.url, "GET", props("thermo", "gone"), { token });
      expect(get.status).to.equal(404);
      expect(get.body.error.code).to.equal("property_not_found");
      const del = await api(srv.url, "DELETE", props("thermo", "gone"), { token });
      expect(del.status).to.equal(404);
      expect(del.body.error.code).to.equal("property_not_found");
    });

    it("a value larger than the limit is 413 property_too_large and nothing is stored", async () => {
      const r = await api(srv.url, "PUT", props("thermo", "big"), { token, json: { value: "x".repeat(PROPERTY_LIMITS.maxValueBytes) } });
      expect(r.status).to.equal(413);
      expect(r.body.error.code).to.equal("property_too_large");
      expect((await api(srv.url, "GET", props("thermo", "big"), { token })).status).to.equal(404);
    });

    it("a value nested deeper than the limit is 400 invalid_request", async () => {
      let value: unknown = 1;
      for (let i = 0; i < PROPERTY_LIMITS.maxDepth + 1; i++) value = [value];
      const r = await api(srv.url, "PUT", props("thermo", "deep"), { token, json: { value } });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
      expect(r.body.error.message).to.match(/deeper/);
    });

    it("bad bodies and names are 400: no value, extra fields, bad names", async () => {
      for (const json of [{}, { value: 1, extra: 2 }, [1], "x"]) {
        const r = await api(srv.url, "PUT", props("thermo", "p"), { token, json });
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      for (const name of ["a%2Fb", "a%5Cb", "a//b", "a%20b"]) {
        const r = await api(srv.url, "PUT", props("thermo", name), { token, json: { value: 1 } });
        expect(r.status, name).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
    });

    it("POST on the list with {property, value} creates or replaces a property, as Thinger's own clients create one", async () => {
      // Thinger's Node-RED property-write node: GET the list, then POST {property, value} for a new name, PUT for one it found.
      const post = await api(srv.url, "POST", props("thermo"), { token, json: { property: "mode", value: "eco" } });
      expect(post.status, post.text).to.equal(200);
      expect(post.body).to.deep.include({ property: "mode", value: "eco" });
      expect(post.body.updated_ts).to.be.a("number");
      expect((await api(srv.url, "GET", props("thermo", "mode"), { token })).body).to.deep.equal(post.body);
      const again = await api(srv.url, "POST", props("thermo"), { token, json: { property: "mode", value: { on: true } } });
      expect(again.status, again.text).to.equal(200);
      expect((await api(srv.url, "GET", props("thermo", "mode"), { token })).body.value).to.deep.equal({ on: true });
      expect((await api(srv.url, "POST", props("thermo"), { token, json: { property: "zone/hall", value: 1 } })).status).to.equal(200);
      expect((await api(srv.url, "GET", props("thermo", "zone/hall"), { token })).body.value).to.equal(1);
      for (const json of [{ value: 1 }, { property: "p" }, { property: 5, value: 1 }, { property: "a b", value: 1 }, { property: "", value: 1 }, { property: "p", value: 1, extra: 2 }, [1]]) {
        const r = await api(srv.url, "POST", props("thermo"), { token, json });
        expect(r.status, JSON.stringify(json)).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
      }
      const ghost = await api(srv.url, "POST", props("ghost"), { token, json: { property: "p", value: 1 } });
      expect(ghost.status).to.equal(404);
      expect(ghost.body.error.code).to.equal("device_not_found");
    });

    it("HEAD on a property answers as GET without a body, as the Allow of OPTIONS and of a 405 says it does", async () => {
      await api(srv.url, "PUT", props("thermo", "headed"), { token, json: { value: 5 } });
      const options = await fetch(srv.url + props("thermo", "headed"), { method: "OPTIONS" });
      const allow = (options.headers.get("allow") ?? "").split(/,\s*/);
      expect(allow).to.include.members(["HEAD", "GET", "PUT", "DELETE"]);
      const head = await fetch(srv.url + props("thermo", "headed"), { method: "HEAD", headers: { Authorization: `Bearer ${token}` } });
      expect(head.status).to.equal(200);
      expect(head.headers.get("content-type")).to.match(/^application\/json/);
      expect(await head.text()).to.equal("");
      const missing = await fetch(srv.url + props("thermo", "nope"), { method: "HEAD", headers: { Authorization: `Bearer ${token}` } });
      expect(missing.status).to.equal(404);
    });

    it("an unknown device is 404 device_not_found; no token is 401", async () => {
      const r = await api(srv.url, "GET", props("ghost"), { token });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal("device_not_found");
      expect((await api(srv.url, "PUT", props("ghost", "x"), { token, json: { value: 1 } })).body.error.code).to.equal("device_not_found");
      expect((await api(srv.url, "GET", props("thermo"))).status).to.equal(401);
    });

    it("the per-device count limit answers 400 too_many_properties", async () => {
      await newDevice(srv.url, token, "alice", "crowded", "s3cret");
      for (let i = 0; i < PROPERTY_LIMITS.maxPerDevice; i++) {
        const r = await srv.relay.services.properties.set("alice", "crowded", `p${i}`, i);
        expect(r.value).to.equal(i);
      }
      const r = await api(srv.url, "PUT", props("crowded", "one_more"), { token, json: { value: 1 } });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("too_many_properties");
      // Replacing an existing one is still fine.
      expect((await api(srv.url, "PUT", props("crowded", "p0"), { token, json: { value: "x" } })).status).to.equal(200);
    });

    it("two new properties written in parallel at one below the limit: one is created, the other answers 400", async () => {
      await newDevice(srv.url, token, "alice", "crowded2", "s3cret");
      for (let i = 0; i < PROPERTY_LIMITS.maxPerDevice - 1; i++) await srv.relay.services.properties.set("alice", "crowded2", `p${i}`, i);
      const col = srv.relay.services.repos.properties;
      const { count, updateOne } = col;
      // Both requests have found their property missing before either counts (the order parallel requests can take).
      const missing = new Set<string>();
      let bothMissing!: () => void;
      const gate = new Promise<void>((resolve) => (bothMissing = resolve));
      col.updateOne = async function (this: typeof col, ...args: Parameters<typeof updateOne>) {
        const n = await updateOne.apply(this, args);
        const id = String(args[0]._id);
        if (id === "alice/crowded2/new_a" || id === "alice/crowded2/new_b") {
          missing.add(id);
          if (missing.size === 2) bothMissing();
        }
        return n;
      };
      col.count = async function (this: typeof col, ...args: Parameters<typeof count>) {
        if (args[0].deviceKey === "alice/crowded2") await gate;
        return count.apply(this, args);
      };
      let rs;
      try {
        rs = await Promise.all(["new_a", "new_b"].map((name) => api(srv.url, "PUT", props("crowded2", name), { token, json: { value: 1 } })));
      } finally {
        col.updateOne = updateOne;
        col.count = count;
      }
      expect(rs.map((r) => r.status).sort()).to.deep.equal([200, 400]);
      expect(rs.find((r) => r.status === 400)!.body.error.code).to.equal("too_many_properties");
      expect(await col.count({ deviceKey: "alice/crowded2" })).to.equal(PROPERTY_LIMITS.maxPerDevice);
    });

    it("deleting the device deletes its properties", async () => {
      await newDevice(srv.url, token, "alice", "temp", "s3cret");
      await api(srv.url, "PUT", props("temp", "a"), { token, json: { value: 1 } });
      expect((await api(srv.url, "DELETE", "/v1/users/alice/devices/temp", { token })).status).to.equal(200);
      expect(await srv.relay.services.repos.properties.count({ deviceKey: "alice/temp" })).to.equal(0);
    });

    it("a property created while its device is deleted answers 404 and is not kept for a device re-created with the id", async () => {
      await newDevice(srv.url, token, "alice", "temp2", "s3cret");
      // The deletion lands after the PUT found the device and before it inserts the property.
      const del = runBefore(srv.relay.services.repos.properties, "insertOne",
        () => api(srv.url, "DELETE", "/v1/users/alice/devices/temp2", { token }), (doc: { deviceKey?: string }) => doc.deviceKey === "alice/temp2");
      try {
        const r = await api(srv.url, "PUT", props("temp2", "a"), { token, json: { value: 1 } });
        expect(del.ran().status).to.equal(200);
        expect(r.status).to.equal(404);
        expect(r.body.error.code).to.equal("device_not_found");
      } finally {
        del.restore();
      }
      await newDevice(srv.url, token, "alice", "temp2", "s3cret");
      expect((await api(srv.url, "GET", props("temp2"), { token })).body).to.deep.equal([]);
    });
  });

  describe("tokens", () => {
    async function userToken(allow: unknown[]): Promise<string> {
      const r = await api(srv.url, "POST", "/v1/users/alice/tokens", { token, json: { name: `t${Math.random()}`, allow } });
      expect(r.status, r.text).to.be.oneOf([200, 201]);
      return r.body.token as string;
    }

    it("ReadDeviceProperties lets a user token read but not write (403 forbidden)", async () => {
      const t = await userToken([{ action: "ReadDeviceProperties", target: "thermo" }]);
      expect((await api(srv.url, "GET", props("thermo", "setpoint"), { token: t })).status).to.equal(200);
      const w = await api(srv.url, "PUT", props("thermo", "setpoint"), { token: t, json: { value: 1 } });
      expect(w.status).to.equal(403);
      expect(w.body.error.code).to.equal("forbidden");
      expect((await api(srv.url, "GET", props("other"), { token: t })).status).to.equal(403);
    });

    it("WriteDeviceProperties lets a user token write", async () => {
      const t = await userToken([{ action: "WriteDeviceProperties", target: "*" }]);
      const r = await api(srv.url, "PUT", props("thermo", "by_token"), { token: t, json: { value: true } });
      expect(r.status).to.equal(200);
      expect((await api(srv.url, "GET", props("thermo", "by_token"), { token: t })).status).to.equal(403);
    });

    it("an unrestricted device token reads its device's properties; a resource-limited one does not; none writes", async () => {
      const open = await api(srv.url, "POST", "/v1/users/alice/devices/thermo/tokens", { token, json: { token_name: "all" } });
      const limited = await api(srv.url, "POST", "/v1/users/alice/devices/thermo/tokens", { token, json: { token_name: "lim", token_resources: ["temperature"] } });
      expect((await api(srv.url, "GET", props("thermo", "setpoint"), { token: open.body.token })).status).to.equal(200);
      expect((await api(srv.url, "GET", props("thermo", "setpoint"), { token: limited.body.token })).status).to.equal(403);
      expect((await api(srv.url, "PUT", props("thermo", "setpoint"), { token: open.body.token, json: { value: 1 } })).status).to.equal(403);
      expect((await api(srv.url, "POST", props("thermo"), { token: open.body.token, json: { property: "setpoint", value: 1 } })).status).to.equal(403);
      expect((await api(srv.url, "GET", props("other"), { token: open.body.token })).status).to.equal(403);
    });
  });

  describe("device protocol (JSON frames)", () => {
    it("pushes every property right after connected, then each REST change; an offline edit arrives on connect", async () => {
      await newDevice(srv.url, token, "alice", "fresh", "s3cret");
      await api(srv.url, "PUT", props("fresh", "a"), { token, json: { value: 1 } });
      await api(srv.url, "PUT", props("fresh", "b"), { token, json: { value: { x: [1, 2] } } });
      const dev = await RawDevice.described(srv.wsUrl, "alice", "fresh", "s3cret", {});
      raws.push(dev);
      const a = await dev.take((f) => f.type === "property");
      const b = await dev.take((f) => f.type === "property");
      expect([a.name, b.name].sort()).to.deep.equal(["a", "b"]);
      expect(b.name === "b" ? b.value : a.value).to.deep.equal({ x: [1, 2] });
      expect(a.updated_ts).to.be.a("number");
      await api(srv.url, "PUT", props("fresh", "a"), { token, json: { value: 42 } });
      const change = await dev.take((f) => f.type === "property");
      expect(change).to.include({ name: "a", value: 42 });
      await api(srv.url, "DELETE", props("fresh", "b"), { token });
      const del = await dev.take((f) => f.type === "property");
      expect(del).to.include({ name: "b", deleted: true });
    });

    it("a change made while the connect push reads the store is not followed by the older value read before it", async () => {
      await newDevice(srv.url, token, "alice", "late", "s3cret");
      // An old value (its time set in the past, so the change below is certainly newer).
      await srv.relay.services.repos.properties.insertOne({
        _id: "alice/late/mode", deviceKey: "alice/late", user: "alice", device: "late", property: "mode", valueJson: '"old"', updatedTs: 1,
      });
      // The push on connect has read the store ("old") when the REST change lands and is pushed; then it sends what it read.
      const change = runAfter(srv.relay.services.repos.properties, "find",
        () => api(srv.url, "PUT", props("late", "mode"), { token, json: { value: "new" } }), (q: { deviceKey?: string }) => q.deviceKey === "alice/late");
      let dev;
      try {
        dev = await RawDevice.described(srv.wsUrl, "alice", "late", "s3cret", {});
        raws.push(dev);
        await dev.take((f) => f.type === "property");
      } finally {
        change.restore();
      }
      expect(change.ran().status).to.equal(200);
      // Frames arrive in order: once this answer is in, every push sent before it is too.
      dev.send({ type: "property_get", id: 7, name: "mode" });
      expect(await dev.take((f) => f.id === 7)).to.include({ name: "mode", value: "new" });
      const pushed = dev.frames.filter((f) => f.type === "property" && f.id === undefined && f.name === "mode").map((f) => f.value);
      expect(pushed).to.deep.equal(["new"]);
    });

    it("property_get and property_set answer with the request id; errors carry a code", async () => {
      const dev = await RawDevice.described(srv.wsUrl, "alice", "other", "s3cret", {});
      raws.push(dev);
      dev.ws.send(JSON.stringify({ type: "property_set", id: 7, name: "fw", value: "1.2.3" }));
      const ack = await dev.take((f) => f.id === 7);
      expect(ack).to.include({ type: "property", name: "fw", value: "1.2.3" });
      expect((await api(srv.url, "GET", props("other", "fw"), { token })).body.value).to.equal("1.2.3");
      dev.ws.send(JSON.stringify({ type: "property_get", id: 8, name: "fw" }));
      expect(await dev.take((f) => f.id === 8)).to.include({ type: "property", value: "1.2.3" });
      dev.ws.send(JSON.stringify({ type: "property_get", id: 9, name: "nope" }));
      expect(await dev.take((f) => f.id === 9)).to.include({ type: "error", code: "property_not_found" });
      dev.ws.send(JSON.stringify({ type: "property_set", id: 10, name: "../x", value: 1 }));
      expect(await dev.take((f) => f.id === 10)).to.include({ type: "error", code: "invalid_request" });
      dev.ws.send(JSON.stringify({ type: "property_set", id: 11, name: "big", value: "x".repeat(PROPERTY_LIMITS.maxValueBytes) }));
      expect(await dev.take((f) => f.id === 11)).to.include({ type: "error", code: "property_too_large" });
    });
  });

  describe("SDK", () => {
    it("onProperty is called on connect and on every change; property() and setProperty() round-trip", async () => {
      await newDevice(srv.url, token, "alice", "sdkdev", "s3cret");
      await api(srv.url, "PUT", props("sdkdev", "interval"), { token, json: { value: 30 } });
      const d = new Device({ server: srv.wsUrl, user: "alice", device: "sdkdev", credentials: "s3cret" });
      devices.push(d);
      const seen: Array<[string, unknown]> = [];
      let notify: (() => void) | undefined;
      const waitSeen = (n: number) => new Promise<void>((resolve) => {
        notify = () => seen.length >= n && resolve();
        notify();
      });
      d.onProperty("*", (value, name) => {
        seen.push([name, value]);
        notify?.();
      });
      const interval: unknown[] = [];
      d.onProperty("interval", (v) => interval.push(v));
      await d.connect();
      await waitSeen(1);
      expect(seen[0]).to.deep.equal(["interval", 30]);
      await api(srv.url, "PUT", props("sdkdev", "interval"), { token, json: { value: 60 } });
      await waitSeen(2);
      expect(seen[1]).to.deep.equal(["interval", 60]);
      expect(interval).to.deep.equal([30, 60]);

      await d.setProperty("status", { ok: true });
      expect((await api(srv.url, "GET", props("sdkdev", "status"), { token })).body.value).to.deep.equal({ ok: true });
      expect(await d.property("status")).to.deep.equal({ ok: true });
      // The device's own write is not echoed back to its handlers.
      expect(seen.map(([n]) => n)).to.not.include("status");
      const err = await d.property("missing").then(() => null, (e: Error & { code?: string }) => e);
      expect(err?.code).to.equal("property_not_found");
    });

    it("property() rejects while the device is not connected", async () => {
      const d = new Device({ server: srv.wsUrl, user: "alice", device: "sdkdev", credentials: "s3cret" });
      devices.push(d);
      const err = await d.property("interval").then(() => null, (e: Error) => e);
      expect(err?.message).to.match(/not connected/);
    });
  });

  describe("concurrent writes of one property", () => {
    // The server's clock is a fake one: a write is stamped a millisecond after another at the test's command.
    let clock: FakeClock;
    let fsrv: TestServer;
    let ftoken: string;
    const fraws: RawDevice[] = [];
    before(async () => {
      clock = new FakeClock(Date.now());
      fsrv = await startServer({ timers: clock });
      const admin = await login(fsrv.url, ADMIN.user, ADMIN.password);
      ftoken = await newAccount(fsrv.url, admin.access_token, "alice");
      await newDevice(fsrv.url, ftoken, "alice", "thermo", "s3cret");
    });
    afterEach(async () => {
      for (const r of fraws.splice(0)) await r.close();
    });
    after(async () => {
      await fsrv?.close();
    });

    it("a write of another node stored between a PUT's stamp and its store write: the store keeps the newest, the one devices get last", async () => {
      expect((await api(fsrv.url, "PUT", props("thermo", "mode"), { token: ftoken, json: { value: "initial" } })).status).to.equal(200);
      // A second node on the same store (writes of one property are serialised per node, so the race is between nodes).
      const other = new PropertiesService(fsrv.relay.services.repos, undefined, clock);
      // The PUT of "a" is stamped; then the other node's "b", stamped a millisecond later, is stored before "a" is.
      const b = runBefore(fsrv.relay.services.repos.properties, "updateOne", async () => {
        await clock.advance(1);
        return other.set("alice", "thermo", "mode", "b");
      }, (q: { _id?: unknown }) => q._id === "alice/thermo/mode");
      let a;
      try {
        a = await api(fsrv.url, "PUT", props("thermo", "mode"), { token: ftoken, json: { value: "a" } });
      } finally {
        b.restore();
      }
      expect(a.status, a.text).to.equal(200);
      const answers = [a.body as Property, b.ran()];
      expect(answers[0].updated_ts).to.not.equal(answers[1].updated_ts);
      // Pushes to a device are monotonic by updated_ts (see "a change made while the connect push reads the store…"):
      // the value with the newest time is the one a connected device keeps, so the store must keep it too.
      const newest = answers.reduce((x, y) => (y.updated_ts > x.updated_ts ? y : x));
      expect((await api(fsrv.url, "GET", props("thermo", "mode"), { token: ftoken })).body).to.deep.equal(newest);
      // Here the later write, "a", is stamped after "b" (the time it was stored in), not before it.
      expect(newest.value).to.equal("a");
    });

    it("parallel PUTs of one property at one instant get distinct times; the device's last frame is the stored value", async () => {
      const dev = await RawDevice.described(fsrv.wsUrl, "alice", "thermo", "s3cret", {});
      fraws.push(dev);
      await dev.take((f) => f.type === "property" && f.name === "mode");
      const rs = await Promise.all(["x", "y", "z"].map((value) => api(fsrv.url, "PUT", props("thermo", "mode"), { token: ftoken, json: { value } })));
      expect(rs.map((r) => r.status)).to.deep.equal([200, 200, 200]);
      expect(new Set(rs.map((r) => r.body.updated_ts)).size).to.equal(3);
      const stored = (await api(fsrv.url, "GET", props("thermo", "mode"), { token: ftoken })).body;
      expect(stored.updated_ts).to.equal(Math.max(...rs.map((r) => r.body.updated_ts as number)));
      dev.send({ type: "property_get", id: 9, name: "mode" });
      await dev.take((f) => f.id === 9);
      const pushed = dev.frames.filter((f) => f.type === "property" && f.id === undefined && f.name === "mode");
      expect(pushed.at(-1)).to.include({ value: stored.value, updated_ts: stored.updated_ts });
    });

    it("a DELETE right after writes stamped ahead of the clock reaches the device", async () => {
      expect((await api(fsrv.url, "PUT", props("thermo", "gone"), { token: ftoken, json: { value: 0 } })).status).to.equal(200);
      const dev = await RawDevice.described(fsrv.wsUrl, "alice", "thermo", "s3cret", {});
      fraws.push(dev);
      await dev.take((f) => f.type === "property" && f.name === "gone");
      // Three writes at one instant are stamped T, T+1, T+2; the deletion, at T, must still come after them.
      await Promise.all(["x", "y", "z"].map((value) => api(fsrv.url, "PUT", props("thermo", "gone"), { token: ftoken, json: { value } })));
      expect((await api(fsrv.url, "DELETE", props("thermo", "gone"), { token: ftoken })).status).to.equal(200);
      dev.send({ type: "property_get", id: 10, name: "gone" });
      expect(await dev.take((f) => f.id === 10)).to.include({ code: "property_not_found" });
      const pushed = dev.frames.filter((f) => f.type === "property" && f.id === undefined && f.name === "gone");
      expect(pushed.at(-1)).to.include({ deleted: true });
    });

    it("a PUT over a value stamped ahead of this node's clock (another node's) is stamped after it, and kept", async () => {
      const ahead = clock.now() + 60_000;
      await fsrv.relay.services.repos.properties.insertOne({
        _id: "alice/thermo/skew", deviceKey: "alice/thermo", user: "alice", device: "thermo", property: "skew", valueJson: '"other node"', updatedTs: ahead,
      });
      const r = await api(fsrv.url, "PUT", props("thermo", "skew"), { token: ftoken, json: { value: "here" } });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ property: "skew", value: "here", updated_ts: ahead + 1 });
      expect((await api(fsrv.url, "GET", props("thermo", "skew"), { token: ftoken })).body).to.deep.equal(r.body);
    });
  });
});
