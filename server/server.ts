import { createServer, IncomingMessage, type Server } from "node:http";
import { HeaderBlockResponse } from "./http/response.js";

/** Settings of the HTTP server every entry point builds (STYLE 17: one place, so a change is made once). */
export interface HttpServerSettings {
  /** Time a client gets to send the request headers (slowloris). */
  headersTimeoutMs: number;
  /** Time a client gets to send a whole request. */
  requestTimeoutMs: number;
  /** Largest header block accepted (431 beyond). */
  maxHeaderSize: number;
  /**
   * How often Node checks the two timeouts above: it enforces them only on this sweep (default 30 s), so a
   * slowloris socket would otherwise live up to 40 s instead of 10 s.
   */
  connectionsCheckingIntervalMs: number;
  /** How long an idle keep-alive connection stays open. */
  keepAliveTimeoutMs: number;
}

/** Production settings, used by main, the demo, the benchmarks and the tests alike. */
export const HTTP_SERVER_DEFAULTS: Readonly<HttpServerSettings> = Object.freeze({
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  maxHeaderSize: 16 * 1024,
  connectionsCheckingIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
});

/** What the server needs of the app: its request handler and WebSocket upgrade wiring (`Thingrelay.attach`). */
export interface Attachable {
  attach(server: Server): void;
}

/**
 * The one HTTP server thingrelay runs on: `app`'s requests and upgrades attached, {@link HTTP_SERVER_DEFAULTS}
 * unless `settings` overrides some (tests shorten timeouts). Does not listen: see {@link listen}.
 */
export function createHttpServer(app: Attachable, settings: Partial<HttpServerSettings> = {}): Server {
  const s = { ...HTTP_SERVER_DEFAULTS, ...settings };
  for (const [name, value] of Object.entries(s)) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`"${name}" must be a positive integer`);
  }
  const server = createServer({
    headersTimeout: s.headersTimeoutMs, requestTimeout: s.requestTimeoutMs, maxHeaderSize: s.maxHeaderSize,
    connectionsCheckingInterval: s.connectionsCheckingIntervalMs,
    // Fixed headers go out with the head as one block (issue 15, see http/response.ts).
    IncomingMessage, ServerResponse: HeaderBlockResponse,
  });
  server.keepAliveTimeout = s.keepAliveTimeoutMs;
  app.attach(server);
  return server;
}

/** Listens on `port` (0: any free port) and resolves with the port bound; rejects if it cannot bind. */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address();
  return typeof addr === "object" && addr ? addr.port : port;
}
