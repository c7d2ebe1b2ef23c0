import { expect } from "chai";
import { createServer } from "node:net";
import { launchMain, type LaunchedMain, stopAllMains } from "./helpers/process.js";
import { api } from "./helpers/api.js";
import { createServer as createHttpServer, type Server } from "node:http";
import Koa from "koa";
import { requestLifecycle } from "../server/http/middleware.js";
import { startupGate } from "../server/http/startup.js";
import { createLogger } from "../server/log.js";

/** A bare app behind the start-up gate, on a real socket: answers `{ok:true}` once start-up lets it through. */
async function gated(startup: Promise<unknown>, waitMs: number): Promise<{ url: string; server: Server; handled: () => number }> {
  const app = new Koa();
  let handled = 0;
  app.use(requestLifecycle(createLogger("silent")));
  app.use(startupGate(startup, waitMs));
  app.use((ctx) => {
    handled++;
    ctx.body = { ok: true };
  });
  const server = createHttpServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, server, handled: () => handled };
}

/** A port free right now (the child binds it a moment later; nothing else on this loopback takes it meanwhile). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * Resolves once the child's stdout matches `re`. main.ts logs "thinger device listeners" right after the HTTP
 * port is bound and before the admin bootstrap: the earliest moment a client can reach the port.
 */
function stdoutMatch(p: LaunchedMain, re: RegExp, timeoutMs = 60_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      p.child.stdout!.off("data", check);
      if (err) reject(err);
      else resolve();
    };
    const check = () => re.test(p.stdout) && done();
    const timer = setTimeout(() => done(new Error(`no ${re} on stdout: ${p.stdout}\n${p.stderr}`)), timeoutMs);
    p.child.stdout!.on("data", check);
    void p.exited.then(() => done(new Error(`exited before ${re}: ${p.stderr}`)));
    check();
  });
}

describe("start-up (issue 12 point 3)", function () {
  this.timeout(300_000);
  after(stopAllMains);

  it("a sign-in sent the instant the port answers succeeds, 20 times in a row on fresh data dirs", async () => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      // A slower password hash widens the window between listening and the admin account existing.
      const p = await launchMain({
        env: { PORT: String(port), THINGRELAY_PASSWORD_COST: "14", THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" },
      });
      try {
        const url = `http://127.0.0.1:${port}`;
        await stdoutMatch(p, /"msg":"thinger device listeners"/);
        const r = await api(url, "POST", "/oauth/token", { form: { grant_type: "password", username: "root", password: "root-password-1" } });
        expect(r.status, `run ${i + 1}: ${r.text}\n${p.stderr}`).to.equal(200);
        expect(r.body.access_token).to.be.a("string");
        const me = await api(url, "GET", "/v1/me", { token: r.body.access_token });
        expect(me.body).to.deep.include({ user: "root", admin: true });
      } finally {
        await p.cleanup();
      }
    }
  });

  describe("the start-up gate (server/http/startup.ts)", () => {
    it("holds a request until start-up finishes, then answers it", async () => {
      let finish!: () => void;
      const { url, server, handled } = await gated(new Promise<void>((r) => (finish = r)), 60_000);
      try {
        const arrived = new Promise((resolve) => server.once("request", resolve));
        const pending = api(url, "GET", "/x");
        await arrived;
        await new Promise((resolve) => setImmediate(resolve));
        // Without the gate the route would have run synchronously inside the "request" event.
        expect(handled(), "handled before start-up finished").to.equal(0);
        finish();
        const r = await pending;
        expect(r.status).to.equal(200);
        expect(r.body).to.deep.equal({ ok: true });
      } finally {
        server.close();
      }
    });

    it("answers 503 service_unavailable + Retry-After when start-up takes longer than the bound, or failed", async () => {
      const failing = () => {
        const p = Promise.reject(new Error("bootstrap failed"));
        p.catch(() => undefined);
        return p;
      };
      for (const startup of [() => new Promise<void>(() => undefined), failing]) {
        const { url, server } = await gated(startup(), 20);
        try {
          const r = await api(url, "GET", "/x");
          expect(r.status).to.equal(503);
          expect(r.body).to.deep.equal({ error: { code: "service_unavailable", message: "server is starting" } });
          expect(r.headers.get("retry-after")).to.equal("1");
        } finally {
          server.close();
        }
      }
    });
  });

  it("npm start prints where the dashboard and the API docs are", async () => {
    const port = await freePort();
    const p = await launchMain({ env: { PORT: String(port), HOST: "127.0.0.1" } });
    try {
      await new Promise<void>((resolve, reject) => {
        const check = () => /API docs.*\n/.test(p.stdout) && resolve();
        p.child.stdout!.on("data", check);
        void p.exited.then(() => reject(new Error(`exited: ${p.stderr}`)));
        check();
      });
      expect(p.stdout).to.include(`dashboard: http://127.0.0.1:${port}/dashboard`);
      expect(p.stdout).to.include(`API docs:  http://127.0.0.1:${port}/docs`);
      expect((await api(`http://127.0.0.1:${port}`, "GET", "/docs")).status).to.equal(200);
    } finally {
      await p.cleanup();
    }
  });
});
