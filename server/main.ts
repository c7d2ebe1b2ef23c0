#!/usr/bin/env node
import { connect } from "nats";
import { join } from "node:path";
import { readFile } from "node:fs/promises";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { createLogger, print } from "./log.js";
import { openMongoStore, openNedbStore, type Store } from "./store/index.js";
import { createThingrelay } from "./app.js";
import { loadOrCreateSecret, writeAdminPassword } from "./secrets.js";
import { createHttpServer, listen } from "./server.js";

/** How long in-flight HTTP requests get to finish after SIGTERM before sockets are destroyed. */
const DRAIN_MS = 10_000;

export async function openStore(config: Readonly<Config>): Promise<Store> {
  return config.mongodbUrl ? openMongoStore(config.mongodbUrl) : openNedbStore(join(config.dataDir, "db"));
}

/** The only place that reads the environment, opens the store and listens. */
export async function main(env: Record<string, string | undefined> = process.env): Promise<void> {
  let config: Readonly<Config>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`thingrelay: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const secret = await loadOrCreateSecret(config.dataDir, config.secret);
  const store = await openStore(config);
  // Cluster mode (DESIGN §7): nodes share MongoDB and route calls, events and revocations over NATS.
  const nc = config.natsUrl ? await connect({
    servers: config.natsUrl, name: "thingrelay", maxReconnectAttempts: -1,
    // nats.js captures two stack traces per request for async error reports: 15 % of a relaying node's CPU
    // in the cluster benchmark (scenario 6), for traces we never read.
    noAsyncTraces: true,
  }) : undefined;
  // Requests that reach the port before the admin bootstrap below has finished wait for it (http/startup.ts).
  let startupDone!: (v: unknown) => void;
  let startupFailed!: (e: unknown) => void;
  const startup = new Promise<unknown>((resolve, reject) => { startupDone = resolve; startupFailed = reject; });
  startup.catch(() => undefined);
  const relay = createThingrelay({ config, store, logger, secret, collectDefaultMetrics: true, startup, ...(nc ? { cluster: { nc } } : {}) });
  // Queued calls left `running` by a crash are settled before any device can connect (issue 18).
  await relay.ready;

  const server = createHttpServer(relay);
  const port = await listen(server, config.port, config.host);
  // Thinger devices (legacy protocol, IOTMP): their own TCP/TLS ports; a port that cannot be bound stops the start.
  const tls = config.thinger.tlsCert && config.thinger.tlsKey
    ? { cert: await readFile(config.thinger.tlsCert), key: await readFile(config.thinger.tlsKey) }
    : undefined;
  const thingerPorts = await relay.thinger.listen(config.thinger, config.host, tls);
  logger.info({ ...thingerPorts, iotmp_ws: "/iotmp" }, "thinger device listeners");
  // After binding: a server that cannot listen (port taken) must not create and print an admin it never serves.
  const admin = await relay.services.users.ensureAdmin(config.adminUser, config.adminPassword, logger).catch((err: unknown) => {
    startupFailed(err);
    throw err;
  });
  if (admin) {
    const file = await writeAdminPassword(config.dataDir, admin.user, admin.password);
    // Printed once on stdout, not as a log line (no log level or log sink gets it), and kept 0600 in DATA_DIR.
    print(logger, `\nthingrelay: created administrator "${admin.user}" with password: ${admin.password}\n(also saved to ${file})\n\n`);
  }
  startupDone(undefined);
  logger.info({ port, host: config.host, store: store.kind }, "thingrelay listening");
  // For the person who just ran `npm start`: where to click (0.0.0.0 / :: are reached as localhost).
  const shown = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host.includes(":") ? `[${config.host}]` : config.host;
  print(logger, `thingrelay: listening on ${config.host}:${port}\n  dashboard: http://${shown}:${port}/dashboard\n  API docs:  http://${shown}:${port}/docs\n`);
  // Machine-readable line for tests and scripts that start the server on port 0.
  if (env.THINGRELAY_PRINT_PORT === "1") print(logger, `THINGRELAY_PORT=${port}\n`);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    const force = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
    force.unref();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await relay.close(1001);
    await closed;
    clearTimeout(force);
    await nc?.drain();
    await store.close();
    logger.info("stopped");
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`thingrelay: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
