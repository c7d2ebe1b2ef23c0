import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { ACTIONS } from "../server/auth/principal.js";
import type { Action } from "../server/auth/permission.js";
import { parsePermissions, toThinger } from "../server/tokens/permissions.js";

/**
 * Issue 12 point 2: user tokens take and answer `allow`/`deny` in Thinger's shape,
 * `{Type|"*": {name|"*": "*" | [action | {action: resource|[resources]}]}}`. The per-action HTTP suite in
 * user-tokens.test.ts writes every action in this shape too; here: the forms, wildcards, round trips and errors.
 */
describe("user access tokens in Thinger's permission shape", function () {
  this.timeout(30_000);
  let srv: TestServer;
  let alice: string;
  const devices: RawDevice[] = [];
  let seq = 0;

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    alice = await newAccount(srv.url, admin.access_token, "alice");
    for (const d of ["door", "d2"]) {
      await newDevice(srv.url, alice, "alice", d);
      const raw = await RawDevice.connect({
        wsUrl: srv.wsUrl, user: "alice", device: d, credentials: `${d}-secret`,
        describe: { temperature: "output", humidity: "output", "$ota/begin": "output" },
      });
      raw.onCall = (c) => `${d}:${c.resource}`;
      devices.push(raw);
    }
  });
  after(async () => {
    for (const d of devices) d.kill();
    await srv?.close();
  });

  const create = (json: Record<string, unknown>) => api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json });
  async function tokenWith(allow: unknown, deny: unknown = {}): Promise<{ id: string; token: string; allow: unknown; deny: unknown }> {
    const r = await create({ name: `t${++seq}`, allow, deny });
    expect(r.status, r.text).to.equal(200);
    return r.body;
  }
  const status = async (token: string, path: string) => (await api(srv.url, "GET", path, { token })).status;
  /** The principal the server builds from a token, through its real authenticator. */
  const principal = (token: string) => srv.relay.services.authenticator.authenticate(token);

  describe("round trip: what goes in comes back, on create, read, list and edit", () => {
    it("DESIGN §4's example", async () => {
      const allow = { Device: { door: ["AccessDeviceResources"], "*": [{ AccessDeviceResources: ["temperature"] }] }, "*": { "*": "*" } };
      const deny = { Device: { d2: ["ReadDevice", { AccessDeviceResources: ["humidity", "$ota/begin"] }] } };
      const t = await tokenWith(allow, deny);
      expect(t.allow).to.deep.equal(allow);
      expect(t.deny).to.deep.equal(deny);
      const one = await api(srv.url, "GET", `/v1/users/alice/tokens/${t.id}`, { token: alice });
      expect(one.body).to.deep.include({ allow, deny });
      const list = await api(srv.url, "GET", "/v1/users/alice/tokens", { token: alice });
      expect(list.body.find((x: { id: string }) => x.id === t.id)).to.deep.include({ allow, deny });
      const edited = { "*": { door: ["ReadDevice", "GetDeviceStats"] } };
      const put = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { allow: edited } });
      expect(put.status).to.equal(200);
      expect(put.body).to.deep.include({ allow: edited, deny });
    });

    it("normal forms: a single resource comes back as a list, {action: \"*\"} as the bare action, duplicates once", async () => {
      const t = await tokenWith({ Device: { door: [{ AccessDeviceResources: "temperature" }, { ReadDevice: "*" }, "ReadDevice"] } });
      expect(t.allow).to.deep.equal({ Device: { door: [{ AccessDeviceResources: ["temperature"] }, "ReadDevice"] } });
    });

    it("our earlier array shape is still accepted, and answered in Thinger's shape", async () => {
      const t = await tokenWith(
        [{ action: "ListDevices" }, { action: "AccessDeviceResources", target: "door", resources: ["temperature"] }, { action: "*", target: "d2" }],
        [{ action: "ReadDevice", target: "door" }],
      );
      expect(t.allow).to.deep.equal({ Device: { "*": ["ListDevices"], door: [{ AccessDeviceResources: ["temperature"] }], d2: "*" } });
      expect(t.deny).to.deep.equal({ Device: { door: ["ReadDevice"] } });
    });

    it("a device called __proto__ survives the round trip (property, not prototype)", () => {
      const perms = parsePermissions(JSON.parse('{"Device":{"__proto__":["ReadDevice"]}}'), "allow");
      expect(perms).to.deep.equal([{ target: "__proto__", action: "ReadDevice" }]);
      expect(JSON.stringify(toThinger(perms))).to.equal('{"Device":{"__proto__":["ReadDevice"]}}');
    });
  });

  describe("every action, in Thinger's shape, on one device", () => {
    for (const action of ACTIONS) {
      it(`${action}: allowed on door, not on d2, no other action`, async () => {
        const t = await tokenWith({ Device: { door: [action] } });
        const p = await principal(t.token);
        const target = { device: "door", resource: "temperature" };
        expect(p.can(action, target), "on door").to.equal(true);
        expect(p.can(action, { ...target, device: "d2" }), "on d2").to.equal(false);
        for (const other of ACTIONS.filter((a) => a !== action)) expect(p.can(other as Action, target), other).to.equal(false);
      });
    }
  });

  describe("wildcards", () => {
    it('{"Device": {"door": "*"}}: every action on door, nothing on d2', async () => {
      const p = await principal((await tokenWith({ Device: { door: "*" } })).token);
      for (const a of ACTIONS) {
        expect(p.can(a, { device: "door", resource: "humidity" }), a).to.equal(true);
        expect(p.can(a, { device: "d2", resource: "humidity" }), a).to.equal(false);
      }
      const t = (await tokenWith({ Device: { door: "*" } })).token;
      expect(await status(t, "/v2/users/alice/devices/door/humidity")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/d2/humidity")).to.equal(403);
    });

    it('{"Device": {"door": ["*"]}} is the same as "*"', async () => {
      const p = await principal((await tokenWith({ Device: { door: ["*"] } })).token);
      for (const a of ACTIONS) expect(p.can(a, { device: "door", resource: "x" }), a).to.equal(true);
    });

    it('{"Device": {"*": ["ReadDevice"]}}: one action on every device', async () => {
      const t = (await tokenWith({ Device: { "*": ["ReadDevice"] } })).token;
      expect(await status(t, "/v1/users/alice/devices/door")).to.equal(200);
      expect(await status(t, "/v1/users/alice/devices/d2")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/d2/temperature")).to.equal(403);
    });

    it('{"*": {"*": "*"}}: everything (type wildcard)', async () => {
      const t = (await tokenWith({ "*": { "*": "*" } })).token;
      for (const path of ["/v1/users/alice/devices", "/v1/users/alice/devices/d2", "/v2/users/alice/devices/d2/temperature", "/v1/users/alice/devices/door/stats"]) {
        expect(await status(t, path), path).to.equal(200);
      }
    });

    it('{"*": {"door": ["GetDeviceStats"]}}: the type wildcard with one device and action', async () => {
      const t = (await tokenWith({ "*": { door: ["GetDeviceStats"] } })).token;
      expect(await status(t, "/v1/users/alice/devices/door/stats")).to.equal(200);
      expect(await status(t, "/v1/users/alice/devices/d2/stats")).to.equal(403);
      expect(await status(t, "/v1/users/alice/devices/door")).to.equal(403);
    });
  });

  describe("per-resource forms", () => {
    it("{AccessDeviceResources: \"temperature\"}: that resource only", async () => {
      const t = (await tokenWith({ Device: { door: [{ AccessDeviceResources: "temperature" }] } })).token;
      expect(await status(t, "/v2/users/alice/devices/door/temperature")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/door/humidity")).to.equal(403);
      expect(await status(t, "/v2/users/alice/devices/d2/temperature")).to.equal(403);
    });

    it("{AccessDeviceResources: [list]}, nested names included, on every device", async () => {
      const t = (await tokenWith({ Device: { "*": [{ AccessDeviceResources: ["temperature", "$ota/begin"] }] } })).token;
      expect(await status(t, "/v2/users/alice/devices/d2/temperature")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/door/$ota/begin")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/door/humidity")).to.equal(403);
    });

    it("{AccessDeviceResources: \"*\"}: every resource of the device", async () => {
      const t = (await tokenWith({ Device: { door: [{ AccessDeviceResources: "*" }] } })).token;
      expect(await status(t, "/v2/users/alice/devices/door/humidity")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/door/api")).to.equal(403); // ListDeviceResources is another action
    });
  });

  describe("deny wins", () => {
    it("over an allow of everything, down to one resource of one device", async () => {
      const t = (await tokenWith(
        { "*": { "*": "*" } },
        { Device: { door: [{ AccessDeviceResources: ["humidity"] }], d2: ["ReadDevice"] } },
      )).token;
      expect(await status(t, "/v2/users/alice/devices/door/temperature")).to.equal(200);
      expect(await status(t, "/v2/users/alice/devices/door/humidity")).to.equal(403);
      expect(await status(t, "/v2/users/alice/devices/d2/humidity")).to.equal(200);
      expect(await status(t, "/v1/users/alice/devices/door")).to.equal(200);
      expect(await status(t, "/v1/users/alice/devices/d2")).to.equal(403);
    });

    it('deny {"*": {"*": "*"}} shuts everything', async () => {
      const t = (await tokenWith({ Device: { "*": "*" } }, { "*": { "*": "*" } })).token;
      for (const path of ["/v1/users/alice/devices", "/v1/users/alice/devices/door", "/v2/users/alice/devices/door/temperature"]) {
        expect(await status(t, path), path).to.equal(403);
      }
    });
  });

  describe("bad shapes: 400 invalid_request naming the JSON path of the offending element; nothing stored", () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["an unknown action in a list", { allow: { Device: { door: ["AccessDeviceResources", "Fly"] } } }, '"allow.Device.door[1]": "Fly" is not an action'],
      ["an unknown type", { allow: { Bucket: { "*": "*" } } }, '"allow": "Bucket" is not a resource type'],
      ["a name that is no device id", { allow: { Device: { "a-b": "*" } } }, '"allow.Device": "a-b" is not a device id'],
      ["a value that is neither \"*\" nor a list", { allow: { Device: { door: "all" } } }, '"allow.Device.door" must be "*" or an array of actions'],
      ["a type that holds no object", { deny: { Device: ["ReadDevice"] } }, '"deny.Device" must be an object'],
      ["null in a list", { deny: { Device: { door: ["ReadDevice", null] } } }, '"deny.Device.door[1]" must be an action or an object'],
      ["an empty object in a list", { allow: { "*": { "*": [{}] } } }, '"allow.*.*[0]" must be an action or an object'],
      ["resources on another action", { allow: { Device: { door: [{ ReadDevice: ["temperature"] }] } } }, '"allow.Device.door[0].ReadDevice": only AccessDeviceResources'],
      ["an unknown action as a key", { allow: { Device: { door: [{ Fly: "*" }] } } }, '"allow.Device.door[0]": "Fly" is not an action'],
      ["a bad resource name", { allow: { Device: { door: [{ AccessDeviceResources: ["ok", "../x"] }] } } }, '"allow.Device.door[0].AccessDeviceResources[1]" must be a resource name'],
      ["an empty resource list", { allow: { Device: { door: [{ AccessDeviceResources: [] }] } } }, '"allow.Device.door[0].AccessDeviceResources" must hold 1 to 64'],
      ["a resource that is no string", { allow: { Device: { door: [{ AccessDeviceResources: 7 }] } } }, '"allow.Device.door[0].AccessDeviceResources" must be a resource name'],
      ["a string instead of an object", { allow: "*" }, '"allow" must be an object'],
      ["null", { allow: null }, '"allow" must be an object'],
      ["too many permissions", { allow: { Device: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`d${i}`, ["ReadDevice"]])) } }, '"allow" holds more than 64 permissions'],
      ["the old array shape, a bad action", { allow: [{ action: "ReadDevice" }, { action: "Root" }] }, '"allow[1].action" must be'],
      ["the old array shape, a non-object", { deny: ["ReadDevice"] }, '"deny[0]" must be an object'],
    ];
    for (const [what, body, message] of cases) {
      it(what, async () => {
        const before = await srv.relay.services.repos.userTokens.count({ user: "alice" });
        const r = await create({ name: "bad", ...body });
        expect(r.status, r.text).to.equal(400);
        expect(r.body.error.code).to.equal("invalid_request");
        expect(r.body.error.message).to.include(message);
        expect(await srv.relay.services.repos.userTokens.count({ user: "alice" })).to.equal(before);
      });
    }

    it("PUT with a bad shape is refused the same way and leaves the token as it was", async () => {
      const t = await tokenWith({ Device: { door: ["ReadDevice"] } });
      const r = await api(srv.url, "PUT", `/v1/users/alice/tokens/${t.id}`, { token: alice, json: { allow: { Device: { door: ["ReadDevice", 3] } } } });
      expect(r.status).to.equal(400);
      expect(r.body.error.message).to.include('"allow.Device.door[1]"');
      const still = await api(srv.url, "GET", `/v1/users/alice/tokens/${t.id}`, { token: alice });
      expect(still.body.allow).to.deep.equal({ Device: { door: ["ReadDevice"] } });
    });

    it("a long or unprintable key is shortened and made printable in the message", async () => {
      const r = await create({ name: "bad", allow: { [`X${"y".repeat(500)}\u0007`]: {} } });
      expect(r.status).to.equal(400);
      expect(r.body.error.message.length).to.be.below(200);
      expect(r.body.error.message).to.not.match(/[^\x20-\x7e]/);
    });
  });
});
