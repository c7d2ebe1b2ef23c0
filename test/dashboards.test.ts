import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { holdUntilEntered, runAfter } from "./helpers/interleave.js";
import { DASHBOARD_LIMITS } from "../server/dashboards/service.js";

const widget = (over: Record<string, unknown> = {}) => ({
  type: "value", device: "greenhouse", resource: "temperature", interval: 2, layout: { x: 0, y: 0, w: 3, h: 2 }, ...over,
});

describe("dashboards REST API (/v1/users/{user}/dashboards)", () => {
  let srv: TestServer;
  let admin: string;
  let alice: string;
  let bob: string;
  const base = "/v1/users/alice/dashboards";

  before(async () => {
    srv = await startServer();
    admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    alice = await newAccount(srv.url, admin, "alice");
    bob = await newAccount(srv.url, admin, "bob");
    await newDevice(srv.url, alice, "alice", "greenhouse");
  });
  after(async () => {
    await srv?.close();
  });

  it("creates, lists, reads, replaces and deletes a dashboard; state follows", async () => {
    const empty = await api(srv.url, "GET", base, { token: alice });
    expect(empty.status).to.equal(200);
    expect(empty.body).to.deep.equal([]);

    const created = await api(srv.url, "POST", base, { token: alice, json: { id: "home", name: "Home", widgets: [widget(), widget({ type: "status", resource: "", layout: { x: 3, y: 0, w: 2, h: 1 } })] } });
    expect(created.status).to.equal(201);
    expect(created.headers.get("location")).to.equal(`${base}/home`);
    expect(created.body).to.include({ id: "home", name: "Home" });
    expect(created.body.widgets).to.have.length(2);
    expect(created.body.widgets[0]).to.deep.equal(widget());
    expect(created.body.created_ts).to.be.a("number");

    // Without an id, the server makes one.
    const second = await api(srv.url, "POST", base, { token: alice, json: { name: "Garden" } });
    expect(second.status).to.equal(201);
    expect(second.body.id).to.match(/^[A-Za-z0-9_-]{12}$/);
    expect(second.body.widgets).to.deep.equal([]);

    const list = await api(srv.url, "GET", base, { token: alice });
    expect(list.body.map((d: { id: string }) => d.id)).to.deep.equal(["home", second.body.id]);
    expect(list.headers.get("x-total-count")).to.equal("2");

    // options may hold keys the embedded store would refuse as field names.
    const options = { "a.b": 1, $min: 0, label: "°C" };
    const put = await api(srv.url, "PUT", `${base}/home`, { token: alice, json: { name: "Home 2", widgets: [widget({ type: "gauge", options })] } });
    expect(put.status).to.equal(200);
    expect(put.body.name).to.equal("Home 2");
    expect(put.body.widgets[0].options).to.deep.equal(options);
    const read = await api(srv.url, "GET", `${base}/home`, { token: alice });
    expect(read.status).to.equal(200);
    expect(read.body).to.deep.equal(put.body);

    const del = await api(srv.url, "DELETE", `${base}/home`, { token: alice });
    expect(del.status).to.equal(200);
    const gone = await api(srv.url, "GET", `${base}/home`, { token: alice });
    expect(gone.status).to.equal(404);
    expect(gone.body.error.code).to.equal("dashboard_not_found");
    expect((await api(srv.url, "DELETE", `${base}/home`, { token: alice })).body.error.code).to.equal("dashboard_not_found");
    expect((await api(srv.url, "PUT", `${base}/home`, { token: alice, json: { name: "x" } })).body.error.code).to.equal("dashboard_not_found");
    await api(srv.url, "DELETE", `${base}/${second.body.id}`, { token: alice });
  });

  it("PUT answers the dashboard as its own write left it, even when a DELETE follows at once", async () => {
    expect((await api(srv.url, "POST", base, { token: alice, json: { id: "raced", name: "Raced" } })).status).to.equal(201);
    // The delete lands right after the replace is stored, before the PUT answers (whichever write the replace uses).
    const dashboards = srv.relay.services.repos.dashboards;
    const deleting = () => api(srv.url, "DELETE", `${base}/raced`, { token: alice });
    const isRaced = (q: { _id?: string }) => q._id === "alice/raced";
    const hooks = [runAfter(dashboards, "updateOne", deleting, isRaced), runAfter(dashboards, "findOneAndUpdate", deleting, isRaced)];
    let put;
    try {
      put = await api(srv.url, "PUT", `${base}/raced`, { token: alice, json: { name: "Raced 2" } });
    } finally {
      for (const h of hooks) h.restore();
    }
    expect(hooks.map((h) => { try { return h.ran().status; } catch { return null; } }).filter((s) => s !== null)).to.deep.equal([200]);
    expect(put.status).to.equal(200);
    expect(put.body).to.include({ id: "raced", name: "Raced 2" });
    expect((await api(srv.url, "GET", `${base}/raced`, { token: alice })).status).to.equal(404);
  });

  it("two dashboards created in parallel at one below the limit: one is created, the other answers 400", async () => {
    const token = await newAccount(srv.url, (await login(srv.url, ADMIN.user, ADMIN.password)).access_token, "dash_par");
    const service = srv.relay.services.dashboards;
    for (let i = 0; i < DASHBOARD_LIMITS.perUser - 1; i++) await service.create("dash_par", `d${i}`, `D${i}`, []);
    const hold = holdUntilEntered(service, "create", 2, srv.relay.services.repos.dashboards, "count", (q: { user?: string }) => q.user === "dash_par");
    let rs;
    try {
      rs = await Promise.all(["x", "y"].map((id) => api(srv.url, "POST", "/v1/users/dash_par/dashboards", { token, json: { id, name: id } })));
    } finally {
      hold.restore();
    }
    expect(hold.entered()).to.equal(2);
    expect(rs.map((r) => r.status).sort()).to.deep.equal([201, 400]);
    expect(rs.find((r) => r.status === 400)!.body.error.code).to.equal("too_many_dashboards");
    expect(await srv.relay.services.repos.dashboards.count({ user: "dash_par" })).to.equal(DASHBOARD_LIMITS.perUser);
  });

  it("answers a clear 400 for every bad input, and changes nothing", async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /"name"/],
      [{ name: "" }, /"name"/],
      [{ name: "x".repeat(65) }, /"name"/],
      [{ name: "a\nb" }, /"name"/],
      [{ name: "ok", id: "bad id" }, /"id"/],
      [{ name: "ok", id: "x".repeat(33) }, /"id"/],
      [{ name: "ok", extra: 1 }, /unknown field/],
      [{ name: "ok", widgets: {} }, /"widgets" must be an array/],
      [{ name: "ok", widgets: null }, /"widgets" must be an array/],
      [{ name: "ok", widgets: Array.from({ length: 65 }, () => widget()) }, /more than 64 widgets/],
      [{ name: "ok", widgets: [1] }, /"widgets\[0\]" must be an object/],
      [{ name: "ok", widgets: [widget({ type: "pie" })] }, /"widgets\[0\]\.type" must be one of value, gauge, chart, switch, button, slider, text, json, map, status/],
      [{ name: "ok", widgets: [widget({ device: "no-dash" })] }, /"widgets\[0\]\.device"/],
      [{ name: "ok", widgets: [widget({ resource: "" })] }, /"widgets\[0\]\.resource"/],
      [{ name: "ok", widgets: [widget({ resource: "../x" })] }, /"widgets\[0\]\.resource"/],
      [{ name: "ok", widgets: [widget({ interval: 0 })] }, /"widgets\[0\]\.interval"/],
      [{ name: "ok", widgets: [widget({ interval: 3601 })] }, /"widgets\[0\]\.interval"/],
      [{ name: "ok", widgets: [widget({ interval: "2" })] }, /"widgets\[0\]\.interval"/],
      // The console streams at the widget's interval, and ?interval= takes at most one decimal: 0.15 would never stream.
      [{ name: "ok", widgets: [widget({ interval: 0.15 })] }, /"widgets\[0\]\.interval" must be a number of seconds from 0\.1 to 3600 with at most one decimal/],
      [{ name: "ok", widgets: [widget({ interval: 2.25 })] }, /"widgets\[0\]\.interval"/],
      [{ name: "ok", widgets: [widget({ options: [] })] }, /"widgets\[0\]\.options" must be an object/],
      [{ name: "ok", widgets: [widget({ options: { s: "x".repeat(3000) } })] }, /"widgets\[0\]\.options" is larger than 2048 bytes/],
      [{ name: "ok", widgets: [widget({ layout: undefined })] }, /"widgets\[0\]\.layout" must be an object/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0, y: 0, w: 0, h: 1 } })] }, /"widgets\[0\]\.layout\.w" must be an integer from 1 to 12/],
      [{ name: "ok", widgets: [widget({ layout: { x: 10, y: 0, w: 3, h: 1 } })] }, /x \+ w must be at most 12/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0, y: -1, w: 3, h: 1 } })] }, /"widgets\[0\]\.layout\.y"/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0, y: 200, w: 3, h: 1 } })] }, /"widgets\[0\]\.layout\.y"/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0, y: 0, w: 3, h: 13 } })] }, /"widgets\[0\]\.layout\.h"/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0.5, y: 0, w: 3, h: 1 } })] }, /"widgets\[0\]\.layout\.x"/],
      [{ name: "ok", widgets: [widget({ layout: { x: 0, y: 0, w: 3, h: 1, z: 1 } })] }, /unknown field "z"/],
      [{ name: "ok", widgets: [widget({ color: "red" })] }, /"widgets\[0\]" has unknown field "color"/],
    ];
    for (const [json, message] of cases) {
      const r = await api(srv.url, "POST", base, { token: alice, json });
      expect(r.status, JSON.stringify(json).slice(0, 80)).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
      expect(r.body.error.message).to.match(message);
    }
    const notObject = await api(srv.url, "POST", base, { token: alice, raw: "[1]", headers: { "Content-Type": "application/json" } });
    expect(notObject.status).to.equal(400);
    const form = await api(srv.url, "POST", base, { token: alice, form: { name: "x" } });
    expect(form.status).to.equal(415);
    // PUT validates the same way and cannot change the id.
    await api(srv.url, "POST", base, { token: alice, json: { id: "keep", name: "Keep" } });
    const moved = await api(srv.url, "PUT", `${base}/keep`, { token: alice, json: { id: "other", name: "Keep" } });
    expect(moved.status).to.equal(400);
    expect(moved.body.error.message).to.match(/"id" cannot change/);
    const badPut = await api(srv.url, "PUT", `${base}/keep`, { token: alice, json: { name: "Keep", widgets: [widget({ type: "pie" })] } });
    expect(badPut.status).to.equal(400);
    const nullPut = await api(srv.url, "PUT", `${base}/keep`, { token: alice, json: { name: "Renamed", widgets: null } });
    expect(nullPut.status).to.equal(400);
    expect(nullPut.body.error).to.deep.equal({ code: "invalid_request", message: '"widgets" must be an array' });
    expect((await api(srv.url, "GET", `${base}/keep`, { token: alice })).body.name).to.equal("Keep");
    expect((await api(srv.url, "GET", `${base}/keep`, { token: alice })).body.widgets).to.deep.equal([]);
    // An id that cannot exist is the same 404.
    expect((await api(srv.url, "GET", `${base}/bad%20id`, { token: alice })).body.error.code).to.equal("dashboard_not_found");
    const dup = await api(srv.url, "POST", base, { token: alice, json: { id: "keep", name: "Again" } });
    expect(dup.status).to.equal(409);
    expect(dup.body.error.code).to.equal("dashboard_exists");
    expect((await api(srv.url, "GET", base, { token: alice })).body.map((d: { id: string }) => d.id)).to.deep.equal(["keep"]);
    await api(srv.url, "DELETE", `${base}/keep`, { token: alice });
  });

  it("bounds the number of dashboards per account (400 too_many_dashboards)", async () => {
    for (let i = 0; i < 50; i++) {
      expect((await api(srv.url, "POST", "/v1/users/bob/dashboards", { token: bob, json: { id: `d${i}`, name: `D${i}` } })).status).to.equal(201);
    }
    const over = await api(srv.url, "POST", "/v1/users/bob/dashboards", { token: bob, json: { name: "one more" } });
    expect(over.status).to.equal(400);
    expect(over.body.error.code).to.equal("too_many_dashboards");
    expect(await srv.relay.services.repos.dashboards.count({ user: "bob" })).to.equal(50);
    await srv.relay.services.repos.dashboards.deleteMany({ user: "bob" });
  });

  it("another account's dashboards are 404; no token is 401", async () => {
    await api(srv.url, "POST", base, { token: alice, json: { id: "mine", name: "Mine" } });
    for (const [m, p] of [["GET", base], ["GET", `${base}/mine`], ["PUT", `${base}/mine`], ["DELETE", `${base}/mine`], ["POST", base]] as const) {
      const r = await api(srv.url, m, p, { token: bob, json: m === "PUT" || m === "POST" ? { name: "x" } : undefined });
      expect(r.status, `${m} ${p}`).to.equal(404);
      expect(r.body.error.code).to.equal("dashboard_not_found");
    }
    expect((await api(srv.url, "GET", base)).status).to.equal(401);
    expect((await api(srv.url, "GET", `${base}/mine`, { token: alice })).status).to.equal(200);
  });

  it("a user token scoped to one dashboard reads that one only and writes nothing (the share link's token)", async () => {
    await api(srv.url, "POST", base, { token: alice, json: { id: "shared", name: "Shared", widgets: [widget()] } });
    await api(srv.url, "POST", base, { token: alice, json: { id: "private", name: "Private" } });
    const created = await api(srv.url, "POST", "/v1/users/alice/tokens", {
      token: alice,
      json: { name: "share: Shared", allow: { Dashboard: { shared: ["ReadDashboards"] }, Device: { greenhouse: [{ AccessDeviceResources: ["temperature"] }, "GetDeviceStats"] } } },
    });
    expect(created.status).to.equal(200);
    expect(created.body.allow).to.deep.equal({ Dashboard: { shared: ["ReadDashboards"] }, Device: { greenhouse: [{ AccessDeviceResources: ["temperature"] }, "GetDeviceStats"] } });
    const share = created.body.token as string;
    expect((await api(srv.url, "GET", `${base}/shared`, { token: share })).body.name).to.equal("Shared");
    const priv = await api(srv.url, "GET", `${base}/private`, { token: share });
    expect(priv.status).to.equal(403);
    expect(priv.body.error.code).to.equal("forbidden");
    expect((await api(srv.url, "GET", base, { token: share })).body.map((d: { id: string }) => d.id)).to.deep.equal(["shared"]);
    for (const [m, p] of [["PUT", `${base}/shared`], ["DELETE", `${base}/shared`], ["POST", base]] as const) {
      const r = await api(srv.url, m, p, { token: share, json: m === "DELETE" ? undefined : { name: "x" } });
      expect(r.status, `${m} ${p}`).to.equal(403);
    }
    // A device-wide grant does not reach dashboards; dashboard actions do not reach devices.
    const deviceOnly = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "dev", allow: { Device: { "*": "*" } } } });
    expect((await api(srv.url, "GET", `${base}/shared`, { token: deviceOnly.body.token })).status).to.equal(403);
    expect((await api(srv.url, "GET", "/v1/users/alice/devices/greenhouse", { token: share })).status).to.equal(403);
    // Bad shapes name the path.
    const wrong = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "w", allow: { Device: { greenhouse: ["ReadDashboards"] } } } });
    expect(wrong.status).to.equal(400);
    expect(wrong.body.error.message).to.match(/allow\.Device\.greenhouse\[0\].*write it under "Dashboard"/);
    const wrong2 = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "w", allow: { Dashboard: { shared: ["ReadDevice"] } } } });
    expect(wrong2.status).to.equal(400);
    expect(wrong2.body.error.message).to.match(/allow\.Dashboard\.shared\[0\].*not a dashboard action/);
    const wrong3 = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "w", allow: { Dashboard: { "no way": "*" } } } });
    expect(wrong3.status).to.equal(400);
    // Device tokens never reach dashboards.
    const dt = await api(srv.url, "POST", "/v1/users/alice/devices/greenhouse/tokens", { token: alice, json: { token_name: "d" } });
    expect(dt.status).to.equal(200);
    expect((await api(srv.url, "GET", `${base}/shared`, { token: dt.body.token })).status).to.equal(403);
  });

  it("every widget interval it takes is one the resource stream takes, as the console asks for it", async () => {
    for (const interval of [0.1, 2.5, 3600]) {
      const made = await api(srv.url, "POST", base, { token: alice, json: { name: `i${interval}`, widgets: [widget({ interval })] } });
      expect(made.status, made.text).to.equal(201);
      const ac = new AbortController();
      const r = await fetch(`${srv.url}/v2/users/alice/devices/greenhouse/temperature?interval=${encodeURIComponent(String(interval))}`, {
        headers: { Authorization: `Bearer ${alice}`, Accept: "text/event-stream" }, signal: ac.signal,
      });
      expect(r.status, String(interval)).to.equal(200);
      ac.abort();
      await r.body?.cancel().catch(() => undefined);
      expect((await api(srv.url, "DELETE", `${base}/${made.body.id}`, { token: alice })).status).to.equal(200);
    }
  });

  it("a token allowed to write one dashboard cannot create others, with or without an id; a grant on * can", async () => {
    await api(srv.url, "POST", base, { token: alice, json: { id: "mine", name: "Mine" } });
    const one = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "w1", allow: { Dashboard: { mine: ["WriteDashboards"] } } } });
    const before = (await api(srv.url, "GET", base, { token: alice })).body.length as number;
    for (const json of [{ id: "other", name: "x" }, { name: "no id" }]) {
      const r = await api(srv.url, "POST", base, { token: one.body.token, json });
      expect(r.status, JSON.stringify(json)).to.equal(403);
      expect(r.body.error.code).to.equal("forbidden");
    }
    expect((await api(srv.url, "GET", base, { token: alice })).body.length).to.equal(before);
    expect((await api(srv.url, "PUT", `${base}/mine`, { token: one.body.token, json: { name: "Mine 2" } })).status).to.equal(200);
    const all = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "w*", allow: { Dashboard: { "*": ["WriteDashboards"] } } } });
    const made = await api(srv.url, "POST", base, { token: all.body.token, json: { name: "by token" } });
    expect(made.status, made.text).to.equal(201);
    expect(made.headers.get("location")).to.equal(`${base}/${made.body.id}`);
    // A deny on one id does not stop a new dashboard under another.
    const denied = await api(srv.url, "POST", "/v1/users/alice/tokens", { token: alice, json: { name: "wd", allow: { Dashboard: { "*": ["WriteDashboards"] } }, deny: { Dashboard: { mine: "*" } } } });
    expect((await api(srv.url, "POST", base, { token: denied.body.token, json: { name: "also" } })).status).to.equal(201);
    expect((await api(srv.url, "PUT", `${base}/mine`, { token: denied.body.token, json: { name: "no" } })).status).to.equal(403);
  });

  it("is in the account export and goes with the account", async () => {
    const exp = await api(srv.url, "GET", "/v1/users/alice/export", { token: alice });
    expect(exp.status).to.equal(200);
    expect(exp.body.dashboards.map((d: { id: string }) => d.id)).to.include.members(["shared", "private", "mine"]);
    expect(exp.body.dashboards.find((d: { id: string }) => d.id === "shared").widgets).to.deep.equal([widget()]);
    expect((await api(srv.url, "DELETE", "/v1/users/alice", { token: admin })).status).to.be.oneOf([200, 204]);
    expect(await srv.relay.services.repos.dashboards.count({ user: "alice" })).to.equal(0);
  });
});
