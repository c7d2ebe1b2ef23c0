import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";

/** QA F7/F8: 406 where an Accept cannot be met, and the smaller inconsistencies a user hit. */
describe("QA F7/F8: not_acceptable and smaller fixes", () => {
  let srv: TestServer;
  let token: string;
  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "oa1", "s3cret");
  });
  after(() => srv?.close());

  const expectError = (r: { status: number; body: any }, status: number, code: string) => {
    expect(r.status).to.equal(status);
    expect(r.body.error.code).to.equal(code);
    expect(r.body.error.message).to.be.a("string");
  };

  it("F7: an Accept that rules out every representation answers 406 not_acceptable (events, stats, relay); */* and none do not", async () => {
    expectError(await api(srv.url, "GET", "/v1/users/alice/events", { token, headers: { Accept: "application/json" } }), 406, "not_acceptable");
    expectError(await api(srv.url, "GET", "/v1/users/alice/devices/oa1/stats", { token, headers: { Accept: "application/xml" } }), 406, "not_acceptable");
    expectError(await api(srv.url, "GET", "/v2/users/alice/devices/oa1/temperature", { token, headers: { Accept: "application/xml" } }), 406, "not_acceptable");
    expect((await api(srv.url, "GET", "/v1/users/alice/devices/oa1/stats", { token, headers: { Accept: "*/*" } })).status).to.equal(200);
    expectError(await api(srv.url, "GET", "/v2/users/alice/devices/oa1/temperature", { token, headers: { Accept: "application/*" } }), 404, "device_offline");
  });

  it("F8: PUT on a device takes Thinger's newer names (description, credentials), refuses a mixed body", async () => {
    const r = await api(srv.url, "PUT", "/v1/users/alice/devices/oa1", { token, json: { description: "d3" } });
    expect(r.status, r.text).to.equal(200);
    expect((await api(srv.url, "GET", "/v1/users/alice/devices/oa1", { token })).body.description).to.equal("d3");
    expect((await api(srv.url, "PUT", "/v1/users/alice/devices/oa1", { token, json: { name: "named" } })).status).to.equal(200);
    expect((await api(srv.url, "GET", "/v1/users/alice/devices/oa1", { token })).body.description).to.equal("named");
    const mixed = await api(srv.url, "PUT", "/v1/users/alice/devices/oa1", { token, json: { description: "x", device_credentials: "y" } });
    expectError(mixed, 400, "invalid_request");
    expect(mixed.body.error.message).to.include("mixed field names");
  });

  it("F8: a __proto__ key is a clear 400 invalid_request, not 'invalid JSON'", async () => {
    const r = await api(srv.url, "POST", "/v2/users/alice/devices/oa1/io", { token, raw: '{"__proto__":{"x":1},"value1":1}', headers: { "Content-Type": "application/json" } });
    expectError(r, 400, "invalid_request");
    expect(r.body.error.message).to.include("__proto__");
  });

  it("F8: ?id[]= on the device list is 400, not a silently dropped filter", async () => {
    const r = await api(srv.url, "GET", "/v1/users/alice/devices?id[]=x", { token });
    expectError(r, 400, "invalid_request");
    expect(r.body.error.message).to.match(/^"id"/);
  });

  it("?device[]= (axios' array form) on the account event stream is 400, not a stream of every device's events", async () => {
    for (const q of ["device[]=oa1", "device[0]=oa1", "device%5B%5D=oa1"]) {
      const r = await api(srv.url, "GET", `/v1/users/alice/events?${q}`, { token });
      expectError(r, 400, "invalid_request");
      expect(r.body.error.message, q).to.match(/^"device"/);
    }
  });

  it("F8: the device /api route validates ?timeout= like the other relay routes", async () => {
    expectError(await api(srv.url, "GET", "/v2/users/alice/devices/oa1/api?timeout=abc", { token }), 400, "invalid_request");
  });

  it("an /api answers JSON only: Accept: text/event-stream alone is 406 (an EventSource there got a JSON 200), JSON or */* pass", async () => {
    for (const path of ["/v2/users/alice/devices/oa1/api", "/v2/users/alice/devices/oa1/temperature/api"]) {
      const r = await api(srv.url, "GET", path, { token, headers: { Accept: "text/event-stream" } });
      expectError(r, 406, "not_acceptable");
      expect(r.body.error.message).to.equal("this route answers application/json");
      for (const accept of ["application/json", "*/*", "text/event-stream, application/json;q=0.5"]) {
        expectError(await api(srv.url, "GET", path, { token, headers: { Accept: accept } }), 404, "device_offline");
      }
    }
    // A resource itself still streams.
    expectError(await api(srv.url, "GET", "/v2/users/alice/devices/oa1/temperature", { token, headers: { Accept: "application/xml" } }), 406, "not_acceptable");
  });
});
