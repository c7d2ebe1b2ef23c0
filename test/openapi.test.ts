import { expect } from "chai";
import SwaggerParser from "@apidevtools/swagger-parser";
// ajv is installed as a dependency of @apidevtools/swagger-parser; used here (tests) only.
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import { createParser, type EventSourceMessage } from "eventsource-parser";
import { Device, DeviceError } from "../device-sdk/index.js";
import { ERROR_CODES, type ErrorCode } from "../server/errors.js";
import { GLOBAL_ERROR_CODES } from "../server/openapi/document.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login } from "./helpers/api.js";

type Doc = {
  paths: Record<string, Record<string, any>>;
  components: { schemas: Record<string, any>; [k: string]: any };
  [k: string]: any;
};

/** A router path (`/v1/users/:user`, `/v2/…/{*resource}`) as an OpenAPI path template. */
function toTemplate(routerPath: string): string {
  return routerPath.replace(/\{\*(\w+)\}/g, "{$1}").replace(/:(\w+)/g, "{$1}");
}

/** Example values for path parameters, to turn a documented template into a concrete path. */
const SAMPLE: Record<string, string> = { user: "alice", device: "nodemcu", id: "0123456789abcdef0123456789abcdef", resource: "temperature", asset: "init.js", file: "app.js" };

interface Recorded {
  method: string;
  path: string;
  status: number;
  contentType: string;
  text: string;
  /** SSE responses: the events read before the stream was dropped. */
  events: EventSourceMessage[];
}

describe("OpenAPI document (GET /openapi.json)", () => {
  let srv: TestServer;
  let doc: Doc;
  let deref: Doc;

  before(async () => {
    srv = await startServer();
    const r = await fetch(`${srv.url}/openapi.json`);
    expect(r.status).to.equal(200);
    expect(r.headers.get("content-type")).to.match(/^application\/json/);
    doc = (await r.json()) as Doc;
    deref = (await SwaggerParser.dereference(structuredClone(doc) as never)) as unknown as Doc;
  });
  after(async () => {
    await srv?.close();
  });

  it("is a valid OpenAPI 3.1 document (swagger-parser)", async () => {
    const api = (await SwaggerParser.validate(structuredClone(doc) as never)) as unknown as Doc;
    expect(api.openapi).to.equal("3.1.0");
    expect(Object.keys(api.paths).length).to.be.greaterThan(20);
  });

  it("declares both auth schemes: bearer header and ?authorization= query", () => {
    const schemes = doc.components.securitySchemes as Record<string, any>;
    expect(schemes.bearerAuth).to.deep.include({ type: "http", scheme: "bearer" });
    expect(schemes.queryAuth).to.deep.include({ type: "apiKey", in: "query", name: "authorization" });
    expect(doc.security).to.deep.include({ bearerAuth: [] });
    expect(doc.security).to.deep.include({ queryAuth: [] });
    // Public routes opt out of the default.
    expect(doc.paths["/oauth/token"]!.post.security).to.deep.equal([]);
    expect(doc.paths["/health"]!.get.security).to.deep.equal([]);
  });

  it("lists every error code of the registry, each under its own status", () => {
    expect(doc.components.schemas.ErrorCode.enum).to.have.members(Object.keys(ERROR_CODES));
    const used = new Set<string>(GLOBAL_ERROR_CODES);
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [status, response] of Object.entries(op.responses as Record<string, any>)) {
          const codes: ErrorCode[] | undefined = response.content?.["application/json"]?.schema?.properties?.error?.properties?.code?.enum;
          if (!codes) continue;
          for (const code of codes) {
            used.add(code);
            expect(ERROR_CODES).to.have.property(code);
            if (status !== "default" && code !== "device_error") {
              expect(Number(status), `${method} ${path}: ${code}`).to.equal(ERROR_CODES[code].status);
            }
          }
        }
      }
    }
    expect([...used]).to.have.members(Object.keys(ERROR_CODES));
  });

  it("documents every route of the router, and every documented path exists in the router", () => {
    const router = srv.relay.router;
    const routed = new Set<string>();
    for (const layer of router.stack) {
      // router.all(...) layers (every method: the 405 answer for /oauth/token) are not operations.
      if (layer.methods.includes("PROPFIND")) continue;
      const template = toTemplate(layer.path as string);
      for (const m of layer.methods) {
        if (m === "HEAD") continue;
        routed.add(`${m} ${layer.path}`);
        expect(doc.paths[template]?.[m.toLowerCase()], `${m} ${template} is not documented`).to.be.an("object");
      }
    }
    expect(routed.size).to.be.greaterThan(20);
    let checked = 0;
    for (const [template, item] of Object.entries(doc.paths)) {
      const concrete = template.replace(/\{(\w+)\}/g, (_, name: string) => SAMPLE[name] ?? "x");
      for (const method of Object.keys(item)) {
        const match = router.match(concrete, method.toUpperCase());
        expect(match.route, `${method} ${template} is documented but not routed`).to.equal(true);
        checked++;
      }
    }
    expect(checked).to.be.greaterThan(20);
  });

  describe("real responses of a scenario validate against their documented schemas", () => {
    const recorded: Recorded[] = [];
    let device: Device;
    let releaseSlow: () => void = () => {};

    /** fetch + record; streams are read only up to their headers and the first bytes. */
    async function call(method: string, path: string, o: {
      token?: string; json?: unknown; form?: Record<string, string>; raw?: string; type?: string; accept?: string;
      /** SSE: events to read before dropping the stream (default 1; 0 = only the opening comment). */
      events?: number;
    } = {}): Promise<Recorded> {
      const headers: Record<string, string> = {};
      if (o.token) headers.Authorization = `Bearer ${o.token}`;
      if (o.accept) headers.Accept = o.accept;
      let body: string | undefined;
      if (o.json !== undefined) {
        headers["Content-Type"] = "application/json";
        body = JSON.stringify(o.json);
      } else if (o.form) {
        headers["Content-Type"] = "application/x-www-form-urlencoded";
        body = new URLSearchParams(o.form).toString();
      } else if (o.raw !== undefined) {
        headers["Content-Type"] = o.type ?? "application/json";
        body = o.raw;
      }
      const ac = new AbortController();
      const res = await fetch(srv.url + path, { method, headers, body, signal: ac.signal, redirect: "manual" });
      const contentType = res.headers.get("content-type") ?? "";
      let text = "";
      const events: EventSourceMessage[] = [];
      if (contentType.startsWith("text/event-stream")) {
        const parser = createParser({ onEvent: (e) => events.push(e) });
        const reader = res.body!.getReader();
        const decoder = new TextDecoder();
        const want = o.events ?? 1;
        do {
          const chunk = await reader.read();
          if (chunk.done) break;
          const part = decoder.decode(chunk.value, { stream: true });
          text += part;
          parser.feed(part);
        } while (events.length < want);
        ac.abort();
      } else {
        text = await res.text();
      }
      const rec = { method, path: new URL(srv.url + path).pathname, status: res.status, contentType, text, events };
      recorded.push(rec);
      return rec;
    }

    before(async () => {
      const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
      const json = (r: Recorded) => JSON.parse(r.text);
      // ---- oauth and users ----
      await call("POST", "/oauth/token", { form: { grant_type: "password", username: ADMIN.user, password: "wrong-password" } });
      await call("POST", "/oauth/token", { form: { grant_type: "client_credentials" } });
      await call("POST", "/oauth/token", { raw: "grant_type=password", type: "text/plain" });
      await call("GET", "/oauth/token");
      await call("POST", "/v1/users", { token: admin, json: { username: "alice", password: "alice-password" } });
      await call("POST", "/v1/users", { token: admin, json: { username: "alice", password: "alice-password" } });
      await call("POST", "/v1/users", { token: admin, json: { username: "bob", password: "bob-password", admin: true } });
      await call("POST", "/v1/users", { token: admin, raw: "{not json" });
      const session = json(await call("POST", "/oauth/token", { form: { grant_type: "password", username: "alice", password: "alice-password" } }));
      const refreshed = json(await call("POST", "/oauth/token", { json: { grant_type: "refresh_token", refresh_token: session.refresh_token } }));
      await call("POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: "not-a-refresh-token" } });
      const token: string = refreshed.access_token;
      await call("POST", "/v1/users", { token, json: { username: "carol", password: "carol-password" } });
      await call("GET", "/v1/me", { token });
      await call("GET", "/v1/me");
      await call("GET", "/v1/me", { token: "not.a.jwt" });
      // ---- devices ----
      await call("GET", "/v1/users/alice/devices", { token });
      await call("POST", "/v1/users/alice/devices", { token, json: { device_id: "nodemcu", device_description: "test", device_credentials: "s3cret" } });
      await call("POST", "/v1/users/alice/devices", { token, json: { device_id: "nodemcu", device_credentials: "s3cret" } });
      await call("POST", "/v1/users/alice/devices", { token, json: { device_id: "bad id!", device_credentials: "s3cret" } });
      await call("POST", "/v1/users/alice/devices", { token, json: { device_id: "sleeper", device_credentials: "zz", device_type: "Sensor" } });
      await call("POST", "/v1/users/alice/devices", { token, raw: "hello", type: "text/plain" });
      await call("POST", "/v1/users/alice/devices", { token, raw: JSON.stringify({ device_id: "big", device_credentials: "x".repeat(300 * 1024) }) });
      await call("PUT", "/v1/users/alice/devices/sleeper", { token, json: { device_description: "sleeps" } });
      await call("GET", "/v1/users/alice/devices/sleeper", { token });
      await call("GET", "/v1/users/alice/devices/ghost", { token });
      await call("GET", "/v1/users/bob/devices", { token });
      device = new Device({ server: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "s3cret" });
      device.output("temperature", () => 21.5);
      device.input("relay", () => undefined);
      device.io("io", ({ value1, value2 }: { value1: number; value2: number }) => ({ sum: value1 + value2, mult: value1 * value2 }));
      device.run("reset", () => undefined);
      device.output("teapot", () => {
        throw new DeviceError(418, "short and stout");
      });
      device.input("strict", () => {
        throw new DeviceError(400, "bad input");
      });
      device.output("slow", () => new Promise((resolve) => (releaseSlow = () => resolve(1))));
      await device.connect();
      await call("GET", "/v1/users/alice/devices?id=nodemcu", { token });
      await call("GET", "/v1/users/alice/sessions", { token });
      await call("GET", "/v1/users/alice/devices/nodemcu/stats", { token });
      await call("GET", "/v1/users/alice/devices/sleeper/stats", { token });
      await call("GET", "/v1/users/alice/devices/nodemcu/stats", { token, accept: "text/event-stream" });
      await call("GET", `/v1/users/alice/devices/nodemcu/stats?authorization=${token}`, { accept: "text/event-stream" });
      await call("GET", "/v1/users/alice/events?device=nodemcu", { token, events: 0 });
      await call("GET", "/v1/users/alice/events?device=no way", { token });
      // ---- relay ----
      const v2 = "/v2/users/alice/devices";
      await call("GET", `${v2}/nodemcu/temperature`, { token });
      await call("GET", `${v2}/nodemcu/temperature?timeout=2`, { token });
      await call("GET", `${v2}/nodemcu/temperature?timeout=soon`, { token });
      await call("POST", `${v2}/nodemcu/relay`, { token, json: { in: true } });
      await call("POST", `${v2}/nodemcu/io`, { token, json: { value1: 20, value2: 10 } });
      await call("GET", `${v2}/nodemcu/reset`, { token });
      await call("GET", `${v2}/nodemcu/api`, { token });
      await call("GET", `${v2}/nodemcu/teapot`, { token });
      await call("POST", `${v2}/nodemcu/strict`, { token, json: { in: 1 } });
      await call("GET", `${v2}/nodemcu/nothing`, { token });
      await call("GET", `${v2}/nodemcu/slow?timeout=0.05`, { token });
      releaseSlow();
      await call("GET", `${v2}/nodemcu/temperature?interval=0.1`, { token, accept: "text/event-stream" });
      await call("GET", `${v2}/nodemcu/temperature?interval=fast`, { token, accept: "text/event-stream" });
      await call("GET", `${v2}/nodemcu/relay`, { token, accept: "text/event-stream" });
      await call("GET", `${v2}/sleeper/temperature`, { token });
      await call("GET", `${v2}/sleeper/api`, { token });
      await call("GET", `${v2}/ghost/temperature`, { token });
      // ---- device tokens ----
      const dt = json(await call("POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "screen", token_resources: ["temperature"] } }));
      await call("POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "later", token_expiration: Date.now() + 3_600_000 } });
      await call("POST", "/v1/users/alice/devices/nodemcu/tokens", { token, json: { token_name: "" } });
      await call("GET", "/v1/users/alice/devices/nodemcu/tokens", { token });
      await call("GET", `/v1/users/alice/devices/nodemcu/tokens?authorization=${dt.token}`);
      await call("GET", `${v2}/nodemcu/temperature?authorization=${dt.token}`);
      await call("GET", `${v2}/nodemcu/reset?authorization=${dt.token}`);
      await call("GET", `/v1/users/alice/devices/nodemcu/stats?authorization=${dt.token}`);
      await call("GET", `/v1/users/alice/tokens?authorization=${dt.token}`);
      await call("DELETE", `/v1/users/alice/devices/nodemcu/tokens/${dt.id}`, { token });
      await call("DELETE", `/v1/users/alice/devices/nodemcu/tokens/${dt.id}`, { token });
      await call("GET", `${v2}/nodemcu/temperature?authorization=${dt.token}`);
      // ---- user tokens ----
      const ut = json(await call("POST", "/v1/users/alice/tokens", {
        token, json: { name: "reader", allow: [{ action: "ListDevices" }, { action: "AccessDeviceResources", target: "nodemcu", resources: ["temperature"] }] },
      }));
      await call("POST", "/v1/users/alice/tokens", { token, json: { name: "bad", allow: [{ action: "Fly" }] } });
      await call("POST", "/v1/users/alice/tokens", { token, json: { name: "thinger", allow: { Device: { nodemcu: ["ReadDevice", { AccessDeviceResources: "temperature" }] }, "*": { "*": "*" } } } });
      await call("GET", "/v1/users/alice/tokens", { token });
      await call("GET", `/v1/users/alice/tokens/${ut.id}`, { token });
      await call("PUT", `/v1/users/alice/tokens/${ut.id}`, { token, json: { enabled: false, expiration: Date.now() + 60_000 } });
      await call("GET", "/v1/users/alice/devices", { token: ut.token });
      await call("DELETE", `/v1/users/alice/tokens/${ut.id}`, { token });
      await call("GET", `/v1/users/alice/tokens/${ut.id}`, { token });
      // ---- dashboards: a path user that cannot be a name is user_not_found (schemathesis found it undocumented) ----
      await call("GET", "/v1/users/no%20way/dashboards", { token });
      await call("POST", "/v1/users/no%20way/dashboards", { token, json: { name: "x", widgets: [] } });
      // ---- sessions, deletion ----
      await call("DELETE", "/v1/users/alice/devices/nodemcu", { token });
      await device.close();
      await call("DELETE", "/v1/users/alice/devices/nodemcu/session", { token });
      await call("DELETE", "/v1/users/alice/devices/nodemcu", { token });
      await call("DELETE", "/v1/users/alice/devices/nodemcu", { token });
      // ---- operations and docs ----
      await call("GET", "/health");
      await call("GET", "/ready");
      await call("GET", "/metrics");
      await call("GET", "/docs");
      await call("GET", "/docs/init.js");
      await call("GET", "/docs/..%2Fpackage.json");
      await call("GET", "/");
      await call("GET", "/dashboard");
      await call("GET", "/dashboard/");
      await call("GET", "/dashboard/nope.js");
      await call("GET", "/nowhere");
      await call("POST", "/oauth/revoke", { form: { token: session.refresh_token } });
      await call("POST", "/oauth/revoke", { form: {} });
      await call("PUT", "/v1/users/alice/password", { token, json: { password: "short" } });
      await call("PUT", "/v1/users/alice/password", { token, json: { current_password: "wrong-password", password: "alice-new-password" } });
      await call("PUT", "/v1/users/alice/password", { token, json: { current_password: "alice-password", password: "alice-new-password" } });
      await call("GET", "/v1/me", { token });
    });
    after(async () => {
      releaseSlow();
      await device?.close();
    });

    /** The documented operation for a concrete request: literal segments beat templated ones (`/api`). */
    function operationFor(method: string, path: string): any {
      const candidates = Object.keys(doc.paths)
        .filter((t) => new RegExp(`^${t.replace(/\{\w+\}/g, "[^/]+")}$`).test(path))
        .sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0));
      for (const t of candidates) if (deref.paths[t]![method.toLowerCase()]) return deref.paths[t]![method.toLowerCase()];
      return undefined;
    }

    const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    const compiled = new Map<object, ValidateFunction>();
    const validatorFor = (schema: object): ValidateFunction => {
      let v = compiled.get(schema);
      if (!v) compiled.set(schema, (v = ajv.compile(schema)));
      return v;
    };

    it("the scenario covered many statuses, codes and operations", () => {
      const statuses = new Set(recorded.map((r) => r.status));
      for (const s of [200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 504, 418]) expect(statuses, `status ${s}`).to.include(s);
      const codes = new Set(recorded.filter((r) => r.status >= 400).map((r) => JSON.parse(r.text).error.code));
      for (const c of ["device_offline", "resource_not_found", "device_timeout", "device_error", "device_exists", "device_connected", "token_not_found", "invalid_grant", "unsupported_grant_type", "forbidden", "invalid_json"]) {
        expect(codes, c).to.include(c);
      }
      expect(recorded.length).to.be.greaterThan(80);
    });

    it("every response has a documented status and a body matching its schema", () => {
      const failures: string[] = [];
      let validated = 0;
      let validatedEvents = 0;
      for (const r of recorded) {
        const where = `${r.method} ${r.path} → ${r.status}`;
        let body: unknown;
        if (r.contentType.startsWith("application/json")) body = JSON.parse(r.text);
        const op = operationFor(r.method, r.path);
        if (!op) {
          // No operation: only the global errors (no such route, method not allowed) may answer.
          const code = (body as { error?: { code?: ErrorCode } })?.error?.code;
          if (!code || !GLOBAL_ERROR_CODES.includes(code)) failures.push(`${where}: undocumented operation`);
          else if (!validatorFor(deref.components.schemas.Error)(body)) failures.push(`${where}: not an Error body`);
          continue;
        }
        const response = op.responses[String(r.status)] ?? op.responses.default;
        if (!response) {
          failures.push(`${where}: status not documented`);
          continue;
        }
        const type = r.contentType.split(";")[0]!.trim();
        if (r.text === "") {
          if (r.status >= 400) failures.push(`${where}: empty error body`);
          continue;
        }
        const media = response.content?.[type] ?? response.content?.["*/*"];
        if (!media) {
          failures.push(`${where}: content type ${type} not documented (${Object.keys(response.content ?? {}).join(", ")})`);
          continue;
        }
        if (type === "text/event-stream") {
          const schemas = media["x-sse-events"] as Record<string, object> | undefined;
          if (!schemas) failures.push(`${where}: no x-sse-events`);
          for (const ev of r.events) {
            const schema = schemas?.[ev.event ?? "message"];
            if (!schema) {
              failures.push(`${where}: event "${ev.event}" not documented`);
              continue;
            }
            const validate = validatorFor(schema);
            if (!validate(JSON.parse(ev.data))) failures.push(`${where}: event ${ev.event}: ${ajv.errorsText(validate.errors)} in ${ev.data}`);
            validatedEvents++;
          }
          continue;
        }
        if (type !== "application/json") continue;
        const validate = validatorFor(media.schema);
        if (!validate(body)) failures.push(`${where}: ${ajv.errorsText(validate.errors)} in ${r.text.slice(0, 200)}`);
        validated++;
      }
      expect(failures).to.deep.equal([]);
      expect(validated).to.be.greaterThan(70);
      expect(validatedEvents, "SSE events validated").to.be.at.least(3);
    });
  });
});
