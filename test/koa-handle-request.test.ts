import { expect } from "chai";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import Koa from "koa";
import { RelayKoa } from "../server/http/koa.js";

/**
 * RelayKoa (server/http/koa.ts) answers every request exactly as Koa does: it only leaves out `on-finished`
 * where that hook has no effect (a silent app without its own `error` listener).
 */
describe("RelayKoa: Koa's answers without its on-finished hook", () => {
  /** The same middleware on any app: one case per path. */
  function build(app: Koa): Koa {
    app.silent = true;
    app.use(async (ctx, next) => {
      switch (ctx.path) {
        case "/json": ctx.body = { a: 1 }; return;
        case "/created": ctx.status = 201; ctx.body = "made"; return;
        case "/empty-status": ctx.status = 204; ctx.body = "dropped"; return;
        case "/null": ctx.body = null; return;
        case "/stream": ctx.body = Readable.from(["a", "b", "c"]); return;
        case "/buffer": ctx.body = Buffer.from("bytes"); return;
        case "/message": ctx.status = 418; ctx.message = "Short and stout"; ctx.body = "tea"; return;
        case "/throw": throw new Error("internal detail");
        case "/expose": ctx.throw(400, "bad thing"); return;
        case "/later": await new Promise((resolve) => setImmediate(resolve)); ctx.status = 202; return;
        case "/direct":
          ctx.respond = false;
          ctx.res.writeHead(203, ["Content-Type", "text/plain", "Content-Length", "6"]);
          ctx.res.end("direct");
          return;
        default: await next();
      }
    });
    return app;
  }

  const servers: Server[] = [];
  async function listen(app: Koa): Promise<number> {
    const server = createServer(app.callback());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return (server.address() as AddressInfo).port;
  }
  after(async () => {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  interface Answer { status: number; message: string; headers: string[]; body: string }
  function call(port: number, method: string, path: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, path, method }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          // Every raw header line but Date (the clock moves between the two servers' answers).
          const headers: string[] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            if (res.rawHeaders[i]!.toLowerCase() !== "date") headers.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
          }
          resolve({ status: res.statusCode ?? 0, message: res.statusMessage ?? "", headers, body });
        });
      });
      req.on("error", reject);
      req.end();
    });
  }

  const CASES: Array<[string, string, number]> = [
    ["GET", "/json", 200], ["GET", "/created", 201], ["GET", "/empty-status", 204], ["GET", "/null", 204],
    ["GET", "/stream", 200], ["GET", "/buffer", 200], ["GET", "/message", 418], ["GET", "/throw", 500],
    ["GET", "/expose", 400], ["GET", "/later", 202], ["GET", "/direct", 203], ["GET", "/nothing", 404],
    ["HEAD", "/json", 200], ["HEAD", "/nothing", 404], ["POST", "/created", 201],
  ];

  it("every kind of answer is byte for byte Koa's (status, reason, every header line but Date, body)", async () => {
    const koa = await listen(build(new Koa()));
    const relay = await listen(build(new RelayKoa()));
    for (const [method, path, status] of CASES) {
      const want = await call(koa, method, path);
      const got = await call(relay, method, path);
      expect(want.status, `${method} ${path}`).to.equal(status);
      expect(got, `${method} ${path}`).to.deep.equal(want);
    }
  });

  it("a request answered directly (`ctx.respond = false`) gets no on-finished listeners; any other still does", async () => {
    // `finish` listeners when the head goes out (`prefinish`): Node's own, plus on-finished's where it is attached.
    const seen: Record<string, number> = {};
    const counting = (name: string, app: Koa) => {
      app.middleware.unshift((ctx, next) => {
        ctx.res.once("prefinish", () => (seen[`${name} ${ctx.path}`] = ctx.res.listenerCount("finish")));
        return next();
      });
      return app;
    };
    const koa = await listen(counting("koa", build(new Koa())));
    const relay = await listen(counting("relay", build(new RelayKoa())));
    for (const path of ["/direct", "/json", "/stream"]) {
      await call(koa, "GET", path);
      await call(relay, "GET", path);
    }
    expect(seen["relay /direct"]).to.equal(seen["koa /direct"]! - 1);
    expect(seen["relay /json"]).to.equal(seen["koa /json"]);
    expect(seen["relay /stream"]).to.equal(seen["koa /stream"]);
  });

  it("with an error listener of its own the app takes Koa's path: a socket error mid-request reaches the listener", async () => {
    for (const make of [() => new Koa(), () => new RelayKoa()]) {
      const app = make();
      app.silent = true;
      const errors: Error[] = [];
      let entered!: () => void;
      const inRequest = new Promise<void>((resolve) => (entered = resolve));
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      app.on("error", (err: Error) => errors.push(err));
      app.use(async (ctx) => {
        entered();
        await held;
        ctx.body = "late";
      });
      const port = await listen(app);
      const req = request({ host: "127.0.0.1", port, path: "/", method: "GET" });
      req.on("error", () => {});
      req.end();
      await inRequest;
      const serverSocketError = new Promise<void>((resolve) => {
        servers.at(-1)!.once("clientError", () => resolve());
      });
      req.socket!.resetAndDestroy();
      await serverSocketError;
      release();
      expect(errors.map((e) => (e as NodeJS.ErrnoException).code), app.constructor.name).to.deep.equal(["ECONNRESET"]);
    }
  });
});
