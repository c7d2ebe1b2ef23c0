import { expect } from "chai";
import fc from "fast-check";
import { request } from "node:http";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { DeviceTokenPrincipal, type Principal, SessionPrincipal, UserTokenPrincipal } from "../server/auth/principal.js";
import { normalizeResource } from "../server/relay/resource.js";
import { isResourceName } from "../server/gateway/protocol.js";
import { AppError } from "../server/errors.js";

interface RawResponse {
  status: number;
  body: unknown;
  contentType: string;
}

/**
 * An HTTP request with the path sent exactly as given (fetch would resolve `..` and `.` segments first).
 * Event streams are not read: their status and type are enough.
 */
function raw(port: number, method: string, path: string, token: string, json?: unknown): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? undefined : JSON.stringify(json);
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["Content-Length"] = String(Buffer.byteLength(body));
    }
    const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const contentType = String(res.headers["content-type"] ?? "");
      if (contentType.startsWith("text/event-stream")) {
        res.destroy();
        resolve({ status: res.statusCode ?? 0, body: undefined, contentType });
        return;
      }
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let parsed: unknown = text;
        try {
          parsed = text === "" ? undefined : JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, contentType });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("authorization: one model, no path tricks, no cross-account access", function () {
  this.timeout(60_000);

  describe("principals (unit)", () => {
    it("a session may do anything in its account and manage tokens", () => {
      const p: Principal = new SessionPrincipal("alice", false, "fam", Date.now() + 1000);
      expect(p.can("DeleteDevice", { device: "x" })).to.equal(true);
      expect(p.canManageTokens).to.equal(true);
    });

    it("a device token opens its device's resources (limited to res), /api and stats, nothing else", () => {
      const p = new DeviceTokenPrincipal("alice", "d1", ["temperature"], "jti", null);
      expect(p.can("AccessDeviceResources", { device: "d1", resource: "temperature" })).to.equal(true);
      expect(p.can("AccessDeviceResources", { device: "d1", resource: "relay" })).to.equal(false);
      expect(p.can("AccessDeviceResources", { device: "d1" })).to.equal(false);
      expect(p.can("AccessDeviceResources", { device: "d2", resource: "temperature" })).to.equal(false);
      expect(p.can("ListDeviceResources", { device: "d1" })).to.equal(true);
      expect(p.can("GetDeviceStats", { device: "d1" })).to.equal(true);
      expect(p.can("GetDeviceStats", { device: "d2" })).to.equal(false);
      for (const a of ["ReadDevice", "UpdateDevice", "DeleteDevice", "ListDevices", "CreateDeviceToken", "ListDeviceTokens", "DeleteDeviceToken", "CloseDeviceSession"] as const) {
        expect(p.can(a, { device: "d1" }), a).to.equal(false);
      }
      expect(p.canManageTokens).to.equal(false);
      const all = new DeviceTokenPrincipal("alice", "d1", null, "jti", null);
      expect(all.can("AccessDeviceResources", { device: "d1", resource: "anything/nested" })).to.equal(true);
    });

    it("a user token: deny wins, resource limits apply to AccessDeviceResources only, no permission = no access", () => {
      const p = new UserTokenPrincipal("alice",
        [{ action: "AccessDeviceResources", target: "*", resources: ["temperature", "relay"] }, { action: "ReadDevice", target: "d1" }],
        [{ action: "AccessDeviceResources", target: "d2", resources: ["relay"] }],
        "jti", null);
      expect(p.can("AccessDeviceResources", { device: "d1", resource: "relay" })).to.equal(true);
      expect(p.can("AccessDeviceResources", { device: "d2", resource: "relay" })).to.equal(false);
      expect(p.can("AccessDeviceResources", { device: "d2", resource: "temperature" })).to.equal(true);
      expect(p.can("AccessDeviceResources", { device: "d1", resource: "humidity" })).to.equal(false);
      expect(p.can("ReadDevice", { device: "d1" })).to.equal(true);
      expect(p.can("ReadDevice", { device: "d2" })).to.equal(false);
      expect(p.can("ListDevices", { device: "*" })).to.equal(false);
      expect(new UserTokenPrincipal("alice", [], [], "j", null).can("ReadDevice", { device: "d1" })).to.equal(false);
      expect(p.canManageTokens).to.equal(false);
    });

    it("normalizeResource: whatever the raw path, the result is a valid name with no dot segments, or a 400 (property)", () => {
      const seg = fc.oneof(
        fc.constantFrom("temperature", "relay", ".", "..", "%2e", "%2e%2e", "%2E%2E", "%2F", "%2f", "%5C", "\\", ";x", "", "%00", "%25", "%C0%AE", "a%2Fb", "Temperature", "$ota", "%24ota"),
        fc.string({ maxLength: 6 }),
      );
      fc.assert(
        fc.property(fc.array(seg, { minLength: 1, maxLength: 6 }), fc.boolean(), (segs, trailing) => {
          const path = segs.join("/") + (trailing ? "/" : "");
          let name: string;
          try {
            name = normalizeResource(path);
          } catch (e) {
            return e instanceof AppError && e.code === "invalid_request" && e.status === 400;
          }
          return isResourceName(name) && !name.split("/").some((s) => s === "." || s === ".." || s === "") && !/[%\\]/.test(name);
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe("path tricks on a token limited to resource \"temperature\"", () => {
    let srv: TestServer;
    let device: RawDevice;
    const tokens: Record<string, string> = {};
    before(async () => {
      srv = await startServer();
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      const alice = await newAccount(srv.url, admin.access_token, "alice");
      await newDevice(srv.url, alice, "alice", "nodemcu");
      await newDevice(srv.url, alice, "alice", "other");
      // No describe: the device is asked for whatever the server forwards, and records it.
      device = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "nodemcu-secret" });
      device.onCall = (c) => c.resource;
      const dt = await api(srv.url, "POST", "/v1/users/alice/devices/nodemcu/tokens", { token: alice, json: { token_name: "temp", token_resources: ["temperature"] } });
      tokens["device token"] = dt.body.token;
      const ut = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "temp", allow: [{ action: "AccessDeviceResources", target: "nodemcu", resources: ["temperature"] }] } });
      tokens["user token"] = ut.body.token;
    });
    after(async () => {
      device?.kill();
      await srv?.close();
    });

    const base = "/v2/users/alice/devices/nodemcu/";
    const tricks = [
      "%2e%2e/relay", "%2E%2E/relay", ".%2e/relay", "%2e./relay", "../relay", "./relay", "temperature/../relay",
      "temperature/%2e%2e/relay", "temperature/%2E%2E/relay", "temperature/./../relay", "temperature/.", "temperature/..",
      "temperature//relay", "//relay", "/relay", "temperature%2Frelay", "temperature%2frelay", "temperature%2F..%2Frelay",
      "%2Frelay", "temperature%5C..%5Crelay", "temperature\\..\\relay", "temperature%252Frelay", "%252e%252e/relay",
      "Temperature", "TEMPERATURE", "temperaturE", "temperature;x", "temperature;/relay", ";x", "temperature%3Bx",
      "temperature%00", "temperature%00/relay", "temperature%20", "%20temperature", "temperature%0A", "temperature%ZZ",
      "%C0%AE%C0%AE/relay", "temperature/relay", "temperature//", "relay", "api/../relay", "temperature%2F",
      "../other/temperature", "../../users/alice/devices/other/temperature",
    ];

    for (const [kind] of [["device token"], ["user token"]]) {
      it(`${kind}: ${tricks.length} path variants answer 400 invalid_request or 403 forbidden and never reach another resource`, async () => {
        const port = srv.port;
        const seen = device.calls.length;
        const outcomes: string[] = [];
        for (const trick of tricks) {
          for (const method of ["GET", "POST"]) {
            const r = await raw(port, method, base + trick, tokens[kind]!, method === "POST" ? { in: true } : undefined);
            const code = (r.body as { error?: { code?: string } } | undefined)?.error?.code;
            outcomes.push(`${method} ${trick} → ${r.status} ${code ?? ""}`);
            expect([400, 403], `${method} ${trick}: ${r.status} ${JSON.stringify(r.body)}`).to.include(r.status);
            expect(code).to.equal(r.status === 400 ? "invalid_request" : "forbidden");
          }
        }
        expect(device.calls.slice(seen).map((c) => c.resource)).to.deep.equal([]);
      });

      it(`${kind}: the allowed resource itself still works, with a trailing "/" or percent-encoded letters`, async () => {
        const seen = device.calls.length;
        for (const path of ["temperature", "temperature/", "%74emperature", "temperature?x=../relay"]) {
          const r = await raw(srv.port, "GET", base + path, tokens[kind]!);
          expect(r.status, path).to.equal(200);
          expect(r.body).to.deep.equal({ out: "temperature" });
        }
        expect(device.calls.slice(seen).map((c) => c.resource)).to.deep.equal(["temperature", "temperature", "temperature", "temperature"]);
      });
    }

    it("device segment tricks never reach another device", async () => {
      for (const path of ["/v2/users/alice/devices/other%2F..%2Fnodemcu/temperature", "/v2/users/alice/devices/nodemcu%2F..%2Fother/temperature", "/v2/users/alice/devices/Nodemcu/temperature", "/v2/users/alice/devices/other/../nodemcu/relay"]) {
        const r = await raw(srv.port, "GET", path, tokens["device token"]!);
        expect([400, 403, 404], `${path}: ${r.status}`).to.include(r.status);
      }
      const r = await raw(srv.port, "GET", "/v2/users/alice/devices/other/temperature", tokens["device token"]!);
      expect(r.status).to.equal(403);
    });
  });

  describe("cross-account walk over every route of the router", () => {
    let srv: TestServer;
    let bobDevice: RawDevice;
    const a: Record<string, string> = {};
    let bobToken: string;
    let bobDeviceTokenId: string;
    let bobUserTokenId: string;
    let snapshot: () => Promise<unknown>;

    before(async () => {
      srv = await startServer();
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      a.session = await newAccount(srv.url, admin.access_token, "usera");
      bobToken = await newAccount(srv.url, admin.access_token, "userb");
      await newDevice(srv.url, a.session, "usera", "adev");
      await newDevice(srv.url, bobToken, "userb", "bdev");
      bobDevice = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "userb", device: "bdev", credentials: "bdev-secret", describe: { temperature: "output", relay: "input" } });
      bobDevice.onCall = () => "b's secret";
      bobDeviceTokenId = (await api(srv.url, "POST", "/v1/users/userb/devices/bdev/tokens", { token: bobToken, json: { token_name: "b" } })).body.id;
      bobUserTokenId = (await api(srv.url, "POST", "/v1/users/userb/tokens", { token: bobToken, json: { name: "b", allow: [{ action: "*", target: "*" }] } })).body.id;
      a["user token (* on *)"] = (await api(srv.url, "POST", "/v1/users/usera/tokens", { token: a.session, json: { name: "all", allow: [{ action: "*", target: "*" }] } })).body.token;
      a["device token"] = (await api(srv.url, "POST", "/v1/users/usera/devices/adev/tokens", { token: a.session, json: { token_name: "all" } })).body.token;
      snapshot = async () => ({
        devices: (await api(srv.url, "GET", "/v1/users/userb/devices", { token: bobToken })).body,
        deviceTokens: (await api(srv.url, "GET", "/v1/users/userb/devices/bdev/tokens", { token: bobToken })).body,
        userTokens: (await api(srv.url, "GET", "/v1/users/userb/tokens", { token: bobToken })).body,
        sessions: (await api(srv.url, "GET", "/v1/users/userb/sessions", { token: bobToken })).body.map((s: { device: string }) => s.device),
      });
    });
    after(async () => {
      bobDevice?.kill();
      await srv?.close();
    });

    /** A body that would succeed for the owner, so a missing check shows up as a 2xx. */
    const bodyFor = (method: string, path: string): unknown => {
      if (method !== "POST" && method !== "PUT") return undefined;
      if (path === "/v1/users/:user/devices") return { device_id: "planted", device_description: "", device_credentials: "x" };
      if (path === "/v1/users/:user/devices/:device") return { device_description: "pwned" };
      if (path === "/v1/users/:user/devices/:device/tokens") return { token_name: "stolen" };
      if (path === "/v1/users/:user/tokens") return { name: "stolen", allow: [{ action: "*", target: "*" }] };
      if (path === "/v1/users/:user/tokens/:id") return { allow: [{ action: "*", target: "*" }] };
      if (path === "/v1/users/:user/password") return { password: "pwned-password-1" };
      if (path.startsWith("/v2/")) return { in: true };
      return {};
    };

    const fill = (path: string, user: string, device: string): string =>
      path
        .replace(":user", user)
        .replace(":device", device)
        .replace("{*resource}", "temperature")
        .replace(":id", path.includes("/devices/:device/tokens/") ? bobDeviceTokenId : bobUserTokenId)
        .replace(/:[a-zA-Z]+/g, "x");

    it("user A's tokens get zero 2xx on user B's routes; device routes answer exactly as for a missing device", async () => {
      const before = await snapshot();
      const layers = (srv.relay.router as unknown as { stack: Array<{ path: string; methods: string[] }> }).stack
        .filter((l) => typeof l.path === "string" && l.path.includes(":user"));
      const walked = new Set<string>();
      let requests = 0;
      for (const [kind, token] of Object.entries(a)) {
        for (const layer of layers) {
          for (const method of new Set(layer.methods)) {
            const json = bodyFor(method, layer.path);
            const r = await raw(srv.port, method, fill(layer.path, "userb", "bdev"), token, json);
            requests++;
            walked.add(`${method} ${layer.path}`);
            const what = `${kind}: ${method} ${layer.path} → ${r.status} ${JSON.stringify(r.body)}`;
            expect(r.status, what).to.be.within(400, 499);
            if (layer.path.includes(":device")) {
              const missing = await raw(srv.port, method, fill(layer.path, "userb", "nosuchdev"), token, json);
              expect({ status: r.status, body: r.body }, `${what} vs missing device`).to.deep.equal({ status: missing.status, body: missing.body });
              if (kind === "session") {
                // …and as A's own missing device, so B's device names cannot be probed.
                const own = await raw(srv.port, method, fill(layer.path, "usera", "nosuchdev"), token, json);
                expect({ status: r.status, body: r.body }, `${what} vs A's own missing device`).to.deep.equal({ status: own.status, body: own.body });
              }
            } else {
              const nobody = await raw(srv.port, method, fill(layer.path, "nobody", "bdev"), token, json);
              expect({ status: r.status, body: r.body }, `${what} vs a missing account`).to.deep.equal({ status: nobody.status, body: nobody.body });
            }
          }
        }
      }
      // The walk saw the routes that matter (and would notice if the router could no longer be walked).
      for (const route of ["GET /v1/users/:user/devices", "POST /v1/users/:user/devices", "PUT /v1/users/:user/devices/:device",
        "DELETE /v1/users/:user/devices/:device", "GET /v1/users/:user/devices/:device/stats", "POST /v1/users/:user/devices/:device/tokens",
        "DELETE /v1/users/:user/devices/:device/tokens/:id", "PUT /v1/users/:user/tokens/:id", "DELETE /v1/users/:user/devices/:device/session",
        "GET /v2/users/:user/devices/:device/{*resource}", "POST /v2/users/:user/devices/:device/{*resource}"]) {
        expect(walked.has(route), route).to.equal(true);
      }
      expect(await snapshot()).to.deep.equal(before);
      expect(bobDevice.calls).to.deep.equal([]);
      expect(await srv.relay.services.repos.devices.count({ device: "planted" })).to.equal(0);
      expect(await srv.relay.services.repos.deviceTokens.count({ name: "stolen" })).to.equal(0);
      expect(await srv.relay.services.repos.userTokens.count({ name: "stolen" })).to.equal(0);
      await login(srv.url, "userb", "userb-password");
      console.log(`      cross-account walk: ${walked.size} route×method pairs, ${Object.keys(a).length} token kinds, ${requests} requests, 0 successes`);
    });
  });
});
