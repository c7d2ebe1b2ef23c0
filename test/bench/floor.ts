/**
 * The FLOOR: the least a relay can do on this machine. `node:http` + `ws`, no framework, no auth, no
 * validation, no metrics, no logging, the same JSON frames as thingrelay (docs/protocol.md): the device
 * sends `{"type":"connect",…}` and gets `{"type":"connected"}`; `GET /v2/users/{u}/devices/{d}/{resource}`
 * sends `{"type":"call","id","resource"}` and answers the device's `{"type":"result","id","out"}` as
 * `{"out":…}`. Whatever thingrelay spends above this is the price of its features.
 *
 * Run: node --import=tsx test/bench/floor.ts  → prints FLOOR_PORT=<port>
 */
import { createServer, type ServerResponse } from "node:http";
import { WebSocketServer, type WebSocket } from "ws";

interface Session {
  ws: WebSocket;
  pending: Map<number, ServerResponse>;
  nextId: number;
}

const sessions = new Map<string, Session>();
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
const PREFIX = /^\/v2\/users\/([^/]+)\/devices\/([^/]+)\/(.+)$/;

const server = createServer((req, res) => {
  const m = PREFIX.exec((req.url ?? "").split("?")[0]!);
  const s = m ? sessions.get(`${m[1]}/${m[2]}`) : undefined;
  if (!m || !s) {
    res.writeHead(404, { "Content-Type": "application/json" }).end('{"error":{"code":"device_offline"}}');
    return;
  }
  const id = ++s.nextId;
  s.pending.set(id, res);
  s.ws.send(`{"type":"call","id":${id},"resource":${JSON.stringify(m[3])}}`);
});
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
        const res = session.pending.get(f.id);
        if (!res) return;
        session.pending.delete(f.id);
        res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify({ out: f.out ?? null }));
      } else if (f.type === "ping") {
        ws.send('{"type":"pong"}');
      }
    });
    ws.on("close", () => {
      if (session && sessions.get(key) === session) sessions.delete(key);
      for (const res of session?.pending.values() ?? []) res.writeHead(502).end();
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
