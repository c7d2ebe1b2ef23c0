/**
 * The KOA FLOOR: the least the mission's framework costs. Koa + @koa/router, one route
 * (`GET /v2/users/:user/devices/:device/{*resource}`), a bearer-header presence check (no verification), relaying
 * to a `ws` device with the same JSON frames as the floor (floor.ts) and thingrelay (docs/protocol.md). Whatever
 * thingrelay spends above this is the price of its features, not of Koa.
 *
 * Run: node --import=tsx test/bench/koa-floor.ts  → prints FLOOR_PORT=<port>
 */
import { createServer } from "node:http";
import Koa from "koa";
import Router from "@koa/router";
import { WebSocketServer, type WebSocket } from "ws";

interface Waiter {
  resolve(out: unknown): void;
  reject(e: Error): void;
}

interface Session {
  ws: WebSocket;
  pending: Map<number, Waiter>;
  nextId: number;
}

const sessions = new Map<string, Session>();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });

const app = new Koa();
const router = new Router();
router.get("/v2/users/:user/devices/:device/{*resource}", async (ctx) => {
  if (!(ctx.get("authorization") ?? "").startsWith("Bearer ")) {
    ctx.status = 401;
    ctx.body = { error: { code: "unauthorized" } };
    return;
  }
  const s = sessions.get(`${ctx.params.user}/${ctx.params.device}`);
  if (!s) {
    ctx.status = 404;
    ctx.body = { error: { code: "device_offline" } };
    return;
  }
  const id = ++s.nextId;
  const out = await new Promise<unknown>((resolve, reject) => {
    s.pending.set(id, { resolve, reject });
    s.ws.send(`{"type":"call","id":${id},"resource":${JSON.stringify(ctx.params.resource ?? "")}}`);
  });
  ctx.body = { out: out ?? null };
});
app.use(router.routes());

const server = createServer(app.callback());
server.keepAliveTimeout = 5_000;

server.on("upgrade", (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    let session: Session | undefined;
    let key = "";
    ws.on("message", (data) => {
      const f = JSON.parse(data.toString()) as { type: string; user?: string; device?: string; id?: number; out?: unknown };
      if (!session) {
        if (f.type !== "connect") return ws.close(4400);
        key = `${f.user}/${f.device}`;
        session = { ws, pending: new Map(), nextId: 0 };
        sessions.set(key, session);
        ws.send(`{"type":"connected","user":${JSON.stringify(f.user)},"device":${JSON.stringify(f.device)},"keepalive":60,"server_time":${Date.now()}}`);
        return;
      }
      if (f.type === "result" && typeof f.id === "number") {
        const w = session.pending.get(f.id);
        if (!w) return;
        session.pending.delete(f.id);
        w.resolve(f.out);
      } else if (f.type === "ping") {
        ws.send('{"type":"pong"}');
      }
    });
    ws.on("close", () => {
      if (session && sessions.get(key) === session) sessions.delete(key);
      for (const w of session?.pending.values() ?? []) w.reject(new Error("device gone"));
    });
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`FLOOR_PORT=${(server.address() as { port: number }).port}\n`);
});
process.on("SIGTERM", () => {
  server.closeAllConnections();
  process.exit(0);
});
