import { expect } from "chai";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";

/** Issue 12 point 6: every list route pages (`?page=&limit=`, `Link`, `X-Total-Count`) and projects (`?fields=`). */
describe("list routes: paging and projection (issue 12 point 6)", () => {
  let srv: TestServer;
  let tok: string;
  const devices = ["d1", "d2", "d3", "d4", "d5"];
  before(async () => {
    srv = await startServer();
    const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
    tok = await newAccount(srv.url, admin, "lister");
    for (const d of devices) await newDevice(srv.url, tok, "lister", d);
    for (const n of ["a", "b", "c"]) {
      expect((await api(srv.url, "POST", "/v1/users/lister/devices/d1/tokens", { token: tok, json: { token_name: n } })).status).to.equal(200);
      expect((await api(srv.url, "POST", "/v1/users/lister/tokens", { token: tok, json: { name: n } })).status).to.equal(200);
    }
  });
  after(() => srv.close());

  it("without paging parameters the whole array comes back, with X-Total-Count and no Link", async () => {
    const r = await api(srv.url, "GET", "/v1/users/lister/devices", { token: tok });
    expect(r.status).to.equal(200);
    expect(r.body.map((d: { device: string }) => d.device)).to.deep.equal(devices);
    expect(r.headers.get("x-total-count")).to.equal("5");
    expect(r.headers.get("link")).to.equal(null);
  });

  it("?page=2&limit=2 answers the second page as an array, with first/prev/next/last links (RFC 8288)", async () => {
    const r = await api(srv.url, "GET", "/v1/users/lister/devices?page=2&limit=2", { token: tok });
    expect(r.status).to.equal(200);
    expect(r.body.map((d: { device: string }) => d.device)).to.deep.equal(["d3", "d4"]);
    expect(r.headers.get("x-total-count")).to.equal("5");
    expect(r.headers.get("link")).to.equal([
      '</v1/users/lister/devices?page=1&limit=2>; rel="first"',
      '</v1/users/lister/devices?page=1&limit=2>; rel="prev"',
      '</v1/users/lister/devices?page=3&limit=2>; rel="next"',
      '</v1/users/lister/devices?page=3&limit=2>; rel="last"',
    ].join(", "));
  });

  it("the first page has no prev, the last no next; a page past the end is an empty array", async () => {
    const first = await api(srv.url, "GET", "/v1/users/lister/devices?limit=2", { token: tok });
    expect(first.body).to.have.length(2);
    expect(first.headers.get("link")).to.not.include('rel="prev"');
    const last = await api(srv.url, "GET", "/v1/users/lister/devices?limit=2&page=3", { token: tok });
    expect(last.body.map((d: { device: string }) => d.device)).to.deep.equal(["d5"]);
    expect(last.headers.get("link")).to.not.include('rel="next"');
    const past = await api(srv.url, "GET", "/v1/users/lister/devices?limit=2&page=9", { token: tok });
    expect(past.status).to.equal(200);
    expect(past.body).to.deep.equal([]);
    expect(past.headers.get("link")).to.include('</v1/users/lister/devices?page=3&limit=2>; rel="prev"');
  });

  it("links keep the other query parameters but never a token given in ?authorization=", async () => {
    const r = await api(srv.url, "GET", `/v1/users/lister/devices?id=d2&limit=1&authorization=${tok}`);
    expect(r.status).to.equal(200);
    expect(r.body.map((d: { device: string }) => d.device)).to.deep.equal(["d2"]);
    expect(r.headers.get("link")).to.equal('</v1/users/lister/devices?id=d2&page=1&limit=1>; rel="first", </v1/users/lister/devices?id=d2&page=1&limit=1>; rel="last"');
  });

  it("?fields= keeps only the named keys of each item", async () => {
    const r = await api(srv.url, "GET", "/v1/users/lister/devices?fields=device,connection", { token: tok });
    expect(r.body[0]).to.deep.equal({ device: "d1", connection: { active: false, ts: null } });
    expect(r.body.every((d: object) => Object.keys(d).join() === "device,connection")).to.equal(true);
  });

  for (const [query, param] of [
    ["page=0", "page"], ["page=-1", "page"], ["page=1.5", "page"], ["page=abc", "page"], ["page=1&page=2", "page"],
    ["limit=0", "limit"], ["limit=1001", "limit"], ["limit=", "limit"], ["fields=", "fields"], ["fields=device,credentials", "fields"],
    ["fields=a%20b", "fields"],
    // The array form axios and PHP write: refused, not ignored (it would answer the whole list, every key).
    ["fields[]=device&fields[]=connection", "fields"], ["page[]=2&limit=2", "page"], ["limit[]=2", "limit"], ["page%5B0%5D=2", "page"],
  ] as const) {
    it(`?${query} answers 400 invalid_request naming "${param}"`, async () => {
      const r = await api(srv.url, "GET", `/v1/users/lister/devices?${query}`, { token: tok });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal("invalid_request");
      expect(r.body.error.message).to.match(new RegExp(`^"${param}" `));
    });
  }

  it("an unknown field is refused even when the list is empty", async () => {
    const r = await api(srv.url, "GET", "/v1/users/lister/devices?id=nothere&fields=secret", { token: tok });
    expect(r.status).to.equal(400);
    expect(r.body.error.message).to.include('"fields" names unknown field secret');
  });

  it("QA F2: device properties page, project and refuse bad values like every list route", async () => {
    for (const n of ["p1", "p2", "p3"]) {
      expect((await api(srv.url, "PUT", `/v3/users/lister/devices/d2/properties/${n}`, { token: tok, json: { value: n } })).status).to.equal(200);
    }
    const r = await api(srv.url, "GET", "/v3/users/lister/devices/d2/properties?page=2&limit=1&fields=property", { token: tok });
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal([{ property: "p2" }]);
    expect(r.headers.get("x-total-count")).to.equal("3");
    expect(r.headers.get("link")).to.include('rel="next"').and.include('rel="prev"');
    for (const [query, param] of [["limit=abc", "limit"], ["fields=bogus", "fields"]]) {
      const bad = await api(srv.url, "GET", `/v3/users/lister/devices/d2/properties?${query}`, { token: tok });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal("invalid_request");
      expect(bad.body.error.message).to.match(new RegExp(`^"${param}" `));
    }
  });

  it("QA F2: queued calls page up to 1000, project, and name an unknown field; without paging the whole list comes back", async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      const q = await api(srv.url, "POST", "/v2/users/lister/devices/d4/relay", { token: tok, json: { in: n }, headers: { Prefer: "respond-async" } });
      expect(q.status).to.equal(202);
      ids.push(q.body.id);
    }
    const all = await api(srv.url, "GET", "/v1/users/lister/devices/d4/calls?fields=id", { token: tok });
    expect(all.body).to.deep.equal([...ids].reverse().map((id) => ({ id })));
    expect(all.headers.get("x-total-count")).to.equal("3");
    expect(all.headers.get("link")).to.equal(null);
    const big = await api(srv.url, "GET", "/v1/users/lister/devices/d4/calls?limit=500&fields=resource", { token: tok });
    expect(big.status).to.equal(200);
    expect(big.body).to.deep.equal([{ resource: "relay" }, { resource: "relay" }, { resource: "relay" }]);
    const bogus = await api(srv.url, "GET", "/v1/users/lister/devices/d4/calls?fields=bogus", { token: tok });
    expect(bogus.status).to.equal(400);
    expect(bogus.body.error.message).to.match(/^"fields" names unknown field bogus/);
    expect((await api(srv.url, "GET", "/v1/users/lister/devices/d4/calls?limit=1001", { token: tok })).status).to.equal(400);
  });

  it("device tokens, user tokens and sessions page and project the same way", async () => {
    const dt = await api(srv.url, "GET", "/v1/users/lister/devices/d1/tokens?limit=2&fields=name", { token: tok });
    expect(dt.status).to.equal(200);
    expect(dt.body).to.deep.equal([{ name: "a" }, { name: "b" }]);
    expect(dt.headers.get("x-total-count")).to.equal("3");
    expect(dt.headers.get("link")).to.include('rel="next"');
    const ut = await api(srv.url, "GET", "/v1/users/lister/tokens?page=2&limit=2&fields=name,enabled", { token: tok });
    expect(ut.body).to.deep.equal([{ name: "c", enabled: true }]);
    expect(ut.headers.get("x-total-count")).to.equal("3");
    const dev = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "lister", device: "d3", credentials: "d3-secret" });
    try {
      const ss = await api(srv.url, "GET", "/v1/users/lister/sessions?fields=device&limit=10", { token: tok });
      expect(ss.body).to.deep.equal([{ device: "d3" }]);
      expect(ss.headers.get("x-total-count")).to.equal("1");
    } finally {
      await dev.close();
    }
  });
});
