import type { Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { loadConfig } from "../../server/config.js";
import { createLogger, type Logger } from "../../server/log.js";
import { openNedbStore } from "../../server/store/nedb.js";
import { openMongoStore } from "../../server/store/mongo.js";
import { apiStoreUrl, dropDatabase } from "./mongo.js";
import type { Store } from "../../server/store/types.js";
import { createThingrelay, type AppOptions, type Thingrelay } from "../../server/app.js";
import { createHttpServer, listen, type HttpServerSettings } from "../../server/server.js";
import type { BruteForceLimits } from "../../server/oauth/service.js";
import type { ThingerPorts, TlsMaterial } from "../../server/thinger/listeners.js";
import type { Timers } from "../../server/timers.js";

export const TEST_SECRET = "test-secret-that-is-at-least-32-bytes-long!!";
export const ADMIN = { user: "admin", password: "admin-password-1" };

export interface TestServer {
  url: string;
  wsUrl: string;
  port: number;
  relay: Thingrelay;
  store: Store;
  dataDir: string;
  server: Server;
  /** Every log line written so far (for secret-leak checks). */
  logs: string[];
  /** Resolves with the first log line from index `from` on (default: lines written from now) that includes `text`. */
  logged(text: string, from?: number, timeoutMs?: number): Promise<string>;
  /** Ports of the Thinger listeners opened with the `thinger` option (TLS ones only with a certificate). */
  thingerPorts: ThingerPorts;
  close(): Promise<void>;
}

export interface TestServerOptions {
  env?: Record<string, string>;
  bruteForce?: BruteForceLimits;
  dataDir?: string;
  store?: Store;
  /** Cluster mode: the node's own NATS connection (nodes in one test share `store`). */
  cluster?: AppOptions["cluster"];
  /** HTTP server settings overriding production's (server/server.ts), e.g. shorter timeouts. */
  http?: Partial<HttpServerSettings>;
  /** Wraps the store the server uses (fault injection); the unwrapped store is the one closed. */
  wrapStore?: (s: Store) => Store;
  /** Port to listen on (default 0: any free port); a restarted server can take its predecessor's. */
  port?: number;
  /** Opens the Thinger device listeners (legacy, IOTMP) on free ports; TLS ones with `tls`. */
  thinger?: { tls?: TlsMaterial; keepaliveTimeoutMs?: number };
  /** The keepalive sweep's and SSE streams' clock: a `FakeClock` (helpers/fake-clock.ts) makes them move only on `advance`. */
  timers?: Timers;
}

/** A real server on 127.0.0.1:0 with the embedded store in a temp dir and a cheap password hash. */
export async function startServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "thingrelay-test-")));
  const config = loadConfig({
    NODE_ENV: "test", THINGRELAY_PASSWORD_COST: "10", DATA_DIR: dataDir, LOG_LEVEL: "info",
    THINGRELAY_ADMIN_USER: ADMIN.user, THINGRELAY_ADMIN_PASSWORD: ADMIN.password, ...options.env,
  });
  const logs: string[] = [];
  const logWaiters = new Set<() => void>();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      for (const w of [...logWaiters]) w();
      cb();
    },
  });
  const logged = (text: string, from = logs.length, timeoutMs = 10_000) => new Promise<string>((resolve, reject) => {
    const check = () => {
      const line = logs.slice(from).find((l) => l.includes(text));
      if (line === undefined) return;
      logWaiters.delete(check);
      clearTimeout(timer);
      resolve(line);
    };
    const timer = setTimeout(() => {
      logWaiters.delete(check);
      reject(new Error(`no log line with "${text}"`));
    }, timeoutMs);
    logWaiters.add(check);
    check();
  });
  const logger: Logger = createLogger(config.logLevel, sink);
  // The API suite's MongoDB pass (`npm run test:mongo-api`): a database per server, named after its dataDir
  // so that a restart on the same dataDir finds its data again.
  const mongoUrl = options.store ? undefined : apiStoreUrl(dataDir);
  const opened = options.store ?? (mongoUrl ? await openMongoStore(mongoUrl) : await openNedbStore(join(dataDir, "db")));
  const store = options.wrapStore ? options.wrapStore(opened) : opened;
  const relay = createThingrelay({ config, store, logger, secret: TEST_SECRET, ...(options.bruteForce ? { bruteForce: options.bruteForce } : {}), ...(options.cluster ? { cluster: options.cluster } : {}), ...(options.thinger?.keepaliveTimeoutMs ? { thinger: { keepaliveTimeoutMs: options.thinger.keepaliveTimeoutMs } } : {}), ...(options.timers ? { timers: options.timers } : {}) });
  await relay.ready;
  await relay.services.users.ensureAdmin(config.adminUser, config.adminPassword, logger);
  // The server main.ts runs, with the test's overrides.
  const server = createHttpServer(relay, options.http);
  const port = await listen(server, options.port ?? 0, "127.0.0.1");
  const thingerPorts = options.thinger
    ? await relay.thinger.listen({ legacyPort: 0, legacyTlsPort: 0, iotmpPort: 0, iotmpTlsPort: 0, tlsCert: undefined, tlsKey: undefined }, "127.0.0.1", options.thinger.tls)
    : {};
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, port, relay, store, dataDir, server, logs, logged, thingerPorts,
    async close() {
      if (closed) return;
      closed = true;
      await relay.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (!options.store) await opened.close();
      if (!options.dataDir) {
        await rm(dataDir, { recursive: true, force: true });
        if (mongoUrl) await dropDatabase(mongoUrl);
      }
    },
  };
}
