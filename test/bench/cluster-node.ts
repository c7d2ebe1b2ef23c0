/**
 * Benchmark-only launcher for one cluster node (scenario 6): the compiled server (dist/) on the embedded store
 * of `DATA_DIR`, joined to the other nodes through NATS.
 *
 *   node --import=tsx test/bench/cluster-node.ts --nats nats://127.0.0.1:4222 [--root DIR]
 *
 * Production cluster mode needs MongoDB (loadConfig refuses NATS_URL without MONGODB_URL) and MongoDB cannot be
 * installed here. The benchmark gives every node its own copy of one seeded data directory instead: the
 * measured path only reads the store (token family, device), so identical copies answer like a shared store.
 * This is not a way to run a cluster: writes made on one node are never seen by the others.
 *
 * Environment as for `dist/server/main.js` (PORT, HOST, DATA_DIR, THINGRELAY_SECRET, LOG_LEVEL, limits…).
 * Prints `THINGRELAY_PORT=<port>` once listening, stops cleanly on SIGTERM/SIGINT. Investigation hook:
 * Connects with nats.js `noAsyncTraces` like server/main.ts; BENCH_NATS_ASYNC_TRACES=1 turns the traces back on.
 */
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { connect } from "nats";
import { ROOT } from "./lib/proc.js";

// Types from the sources, code from the build (what `npm start` runs); dynamic imports keep the typecheck
// independent of whether dist/ exists.
type AppModule = typeof import("../../server/app.js");
type ConfigModule = typeof import("../../server/config.js");
type LogModule = typeof import("../../server/log.js");
type NedbModule = typeof import("../../server/store/nedb.js");
type SecretsModule = typeof import("../../server/secrets.js");
type ServerModule = typeof import("../../server/server.js");

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const natsUrl = arg("nats");
  if (!natsUrl) throw new Error("--nats <url> is required");
  const root = resolve(arg("root") ?? ROOT);
  const load = <T>(file: string) => import(pathToFileURL(join(root, "dist/server", file)).href) as Promise<T>;
  const [{ createThingrelay }, { loadConfig }, { createLogger }, { openNedbStore }, { loadOrCreateSecret }, { createHttpServer, listen }] = await Promise.all([
    load<AppModule>("app.js"), load<ConfigModule>("config.js"), load<LogModule>("log.js"),
    load<NedbModule>("store/nedb.js"), load<SecretsModule>("secrets.js"), load<ServerModule>("server.js"),
  ]);

  // The NATS URL comes from --nats: through the environment loadConfig would (rightly) demand MONGODB_URL.
  const config = loadConfig({ ...process.env, NATS_URL: undefined, MONGODB_URL: undefined });
  const logger = createLogger(config.logLevel);
  const secret = await loadOrCreateSecret(config.dataDir, config.secret);
  const store = await openNedbStore(join(config.dataDir, "db"));
  // Same options as server/main.ts (BENCH_NATS_ASYNC_TRACES=1 turns nats.js async traces back on, for comparison).
  const noAsyncTraces = process.env.BENCH_NATS_ASYNC_TRACES !== "1";
  const nc = await connect({ servers: natsUrl, name: "thingrelay-bench", maxReconnectAttempts: -1, noAsyncTraces });
  const relay = createThingrelay({ config, store, logger, secret, collectDefaultMetrics: true, cluster: { nc } });

  // The HTTP server server/main.ts runs, built by the same factory.
  const server = createHttpServer(relay);
  const port = await listen(server, config.port, config.host);
  logger.info({ port, node: relay.services.cluster?.nodeId }, "bench cluster node listening");
  process.stdout.write(`THINGRELAY_PORT=${port}\n`);

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    const closed = new Promise<void>((res) => server.close(() => res()));
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 5_000).unref();
    await relay.close(1001);
    await closed;
    await nc.drain().catch(() => {});
    await store.close();
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown());
  process.on("SIGINT", () => void shutdown());
}

main().catch((err: unknown) => {
  process.stderr.write(`cluster-node: failed to start: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
