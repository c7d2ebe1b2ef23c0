import { expect } from "chai";
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { deferHeaders, HeaderBlockResponse } from "../server/http/response.js";

/**
 * The fixed headers deferred to the head (issue 15, server/http/response.ts) give exactly the headers that
 * setting them first gave, whatever the handler does with headers in between.
 */
describe("HeaderBlockResponse: fixed headers sent with the head", () => {
  const BLOCK = Object.freeze(["X-Frame-Options", "DENY", "Cache-Control", "no-store", "Pragma", "no-cache"]);
  let server: Server;
  let port: number;
  let handler: (res: ServerResponse) => void = () => {};

  before(async () => {
    server = createServer({ ServerResponse: HeaderBlockResponse }, (_req, res) => handler(res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** The raw header lines (name/value pairs as sent, duplicates kept) and the body. */
  async function get(h: (res: ServerResponse) => void): Promise<{ status: number; raw: string[]; headers: IncomingHttpHeaders; body: string }> {
    handler = h;
    return await new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path: "/" }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders, headers: res.headers, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }
  const names = (raw: string[]) => raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());

  it("a head written as one list carries the block, the id and the caller's headers, each once", async () => {
    const r = await get((res) => {
      expect(res).to.be.instanceOf(HeaderBlockResponse);
      deferHeaders(res, BLOCK, "req-1");
      res.writeHead(200, ["Content-Type", "application/json", "Content-Length", "2"]);
      res.end("{}");
    });
    expect(r.status).to.equal(200);
    expect(r.body).to.equal("{}");
    expect(r.headers).to.include({ "x-frame-options": "DENY", "cache-control": "no-store", pragma: "no-cache", "x-request-id": "req-1", "content-type": "application/json", "content-length": "2" });
    const n = names(r.raw);
    expect(n.length).to.equal(new Set(n).size);
  });

  it("a header the handler sets itself wins over the block's (as setting the block first did)", async () => {
    const r = await get((res) => {
      deferHeaders(res, BLOCK, "req-2");
      res.setHeader("Cache-Control", "max-age=60");
      res.end("x");
    });
    expect(r.headers["cache-control"]).to.equal("max-age=60");
    expect(names(r.raw).filter((x) => x === "cache-control")).to.have.length(1);
    expect(r.headers).to.include({ "x-frame-options": "DENY", pragma: "no-cache", "x-request-id": "req-2" });
  });

  it("a header removed before the head (SSE drops Pragma) stays removed", async () => {
    const r = await get((res) => {
      deferHeaders(res, BLOCK, "req-3");
      res.removeHeader("Pragma");
      res.end();
    });
    expect(r.headers).not.to.have.property("pragma");
    expect(r.headers["x-frame-options"]).to.equal("DENY");
  });

  it("reads before the head see the block; an appended value comes after the block's", async () => {
    let seen: unknown;
    let hasId = false;
    const r = await get((res) => {
      deferHeaders(res, BLOCK, "req-4");
      seen = res.getHeader("x-frame-options");
      hasId = res.hasHeader("X-Request-Id");
      res.appendHeader("Cache-Control", "private");
      res.end();
    });
    expect(seen).to.equal("DENY");
    expect(hasId).to.equal(true);
    expect(r.headers["cache-control"]).to.equal("no-store, private");
  });

  it("a status with a reason phrase, and a head written implicitly by end()", async () => {
    const a = await get((res) => {
      deferHeaders(res, BLOCK, "req-5");
      res.writeHead(418, "Teapot", ["Content-Length", "0"]);
      res.end();
    });
    expect(a.status).to.equal(418);
    expect(a.headers).to.include({ "x-request-id": "req-5", pragma: "no-cache" });
    const b = await get((res) => {
      deferHeaders(res, BLOCK);
      res.statusCode = 204;
      res.end();
    });
    expect(b.status).to.equal(204);
    expect(b.headers).to.include({ "x-frame-options": "DENY" });
    expect(b.headers).not.to.have.property("x-request-id");
  });

  it("on a plain ServerResponse (another server) the headers are set at once", async () => {
    const plain = createServer((_req, res) => {
      deferHeaders(res, BLOCK, "req-6");
      const early = res.getHeader("pragma");
      res.end(String(early));
    });
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    try {
      const r = await new Promise<{ headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
        request({ host: "127.0.0.1", port: (plain.address() as AddressInfo).port, path: "/" }, (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString()));
          res.on("end", () => resolve({ headers: res.headers, body }));
        }).on("error", reject).end();
      });
      expect(r.body).to.equal("no-cache");
      expect(r.headers).to.include({ "x-request-id": "req-6", "x-frame-options": "DENY" });
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});
