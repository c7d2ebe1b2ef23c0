/**
 * One-command demo: `npm run demo`. Starts the server on a temporary embedded store with a demo account,
 * registers a device, starts the example device (examples/device.ts) and prints ready-to-paste curl
 * commands with a fresh token, plus the dashboard and API reference URLs. Ctrl-C stops everything and
 * removes the temporary data directory.
 *
 *   PORT=9000 npm run demo        # default port 8080; HOST defaults to 127.0.0.1 (this machine only)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../server/config.js";
import { createLogger } from "../server/log.js";
import { openNedbStore } from "../server/store/nedb.js";
import { createThingrelay } from "../server/app.js";
import { loadOrCreateSecret } from "../server/secrets.js";
import { createHttpServer, listen } from "../server/server.js";
import { createExampleDevice } from "./device.js";

export const DEMO_USER = "demo";
export const DEMO_DEVICE = "nodemcu";

export interface Demo {
  url: string;
  password: string;
  token: string;
  deviceToken: string;
  dataDir: string;
  /** The text printed for the user: URLs, exports and curl commands. */
  instructions: string;
  stop(): Promise<void>;
}

async function post<T>(url: string, body: unknown, token?: string, form = false): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": form ? "application/x-www-form-urlencoded" : "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, {
    method: "POST", headers, body: form ? new URLSearchParams(body as Record<string, string>).toString() : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${new URL(url).pathname} answered ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

/** Starts everything; the caller prints `instructions` and calls `stop()` on exit. */
export async function startDemo(env: Record<string, string | undefined>): Promise<Demo> {
  const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-demo-"));
  try {
    return await start(env, dataDir);
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

async function start(env: Record<string, string | undefined>, dataDir: string): Promise<Demo> {
  const password = randomBytes(12).toString("base64url");
  const config = loadConfig({
    PORT: env.PORT ?? "8080", HOST: env.HOST ?? "127.0.0.1", DATA_DIR: dataDir, LOG_LEVEL: env.LOG_LEVEL ?? "warn",
    THINGRELAY_ADMIN_USER: DEMO_USER, THINGRELAY_ADMIN_PASSWORD: password,
  });
  // Logs go to stderr so stdout holds only the instructions.
  const logger = createLogger(config.logLevel, process.stderr);
  const secret = await loadOrCreateSecret(dataDir, undefined);
  const store = await openNedbStore(join(dataDir, "db"));
  const relay = createThingrelay({ config, store, logger, secret });
  await relay.services.users.ensureAdmin(config.adminUser, config.adminPassword, logger);
  const server = createHttpServer(relay);
  const port = await listen(server, config.port, config.host);
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;

  // Everything below goes through the public API, exactly as a user would do it.
  const { access_token: token } = await post<{ access_token: string }>(`${url}/oauth/token`, {
    grant_type: "password", username: DEMO_USER, password,
  }, undefined, true);
  const credentials = randomBytes(12).toString("base64url");
  await post(`${url}/v1/users/${DEMO_USER}/devices`, {
    device_id: DEMO_DEVICE, device_description: "example device (examples/device.ts)", device_credentials: credentials,
  }, token);
  const { device } = createExampleDevice({ server: url.replace(/^http/, "ws"), user: DEMO_USER, device: DEMO_DEVICE, credentials });
  await device.connect();
  const { token: deviceToken } = await post<{ token: string }>(`${url}/v1/users/${DEMO_USER}/devices/${DEMO_DEVICE}/tokens`, {
    token_name: "demo: temperature and stats", token_resources: ["temperature"],
  }, token);

  const v2 = `$SERVER/v2/users/${DEMO_USER}/devices/${DEMO_DEVICE}`;
  const auth = `-H "Authorization: Bearer $TOKEN"`;
  const json = `-H 'Content-Type: application/json'`;
  const instructions = [
    `thingrelay demo running at ${url}`,
    `  account    ${DEMO_USER} / ${password}  (administrator)`,
    `  device     ${DEMO_DEVICE}: the example device is connected (temperature, location, relay, rgb, command, io, reset)`,
    `  dashboard  ${url}/dashboard`,
    `  API docs   ${url}/docs   (Authorize → passwordGrant with the account above)`,
    `  data       ${dataDir}  (removed on exit)`,
    "",
    "Paste these into a shell (the access token is valid for 2 hours):",
    "",
    `export SERVER=${url}`,
    `export TOKEN='${token}'`,
    `export DEVICE_TOKEN='${deviceToken}'`,
    "",
    "# output resource",
    `curl -s ${auth} ${v2}/temperature`,
    "# input resource: switch the relay on",
    `curl -s -X POST ${auth} ${json} -d '{"in":true}' ${v2}/relay`,
    "# input/output resource",
    `curl -s -X POST ${auth} ${json} -d '{"value1":20,"value2":10}' ${v2}/io`,
    "# run resource",
    `curl -s ${auth} ${v2}/reset`,
    "# the device's resources and their kinds",
    `curl -s ${auth} ${v2}/api`,
    "# your devices",
    `curl -s ${auth} $SERVER/v1/users/${DEMO_USER}/devices`,
    "# a device token (temperature only) in the query string",
    `curl -s "${v2}/temperature?authorization=$DEVICE_TOKEN"`,
    "# create another device token",
    `curl -s -X POST ${auth} ${json} -d '{"token_name":"my screen","token_resources":["temperature","location"]}' $SERVER/v1/users/${DEMO_USER}/devices/${DEMO_DEVICE}/tokens`,
    "# device stats as Server-Sent Events, token in the query string (Ctrl-C to stop)",
    `curl -sN -H 'Accept: text/event-stream' "$SERVER/v1/users/${DEMO_USER}/devices/${DEMO_DEVICE}/stats?authorization=$DEVICE_TOKEN"`,
    "# the temperature every second as Server-Sent Events (Ctrl-C to stop)",
    `curl -sN -H 'Accept: text/event-stream' "${v2}/temperature?interval=1&authorization=$DEVICE_TOKEN"`,
    "",
    `CLI: echo '${password}' | node dist/cli/bin.js login --server ${url} -u ${DEMO_USER}`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");

  let stopped = false;
  return {
    url, password, token, deviceToken, dataDir, instructions,
    async stop() {
      if (stopped) return;
      stopped = true;
      await device.close();
      server.closeIdleConnections();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await relay.close(1001);
      server.closeAllConnections();
      await closed;
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// Run directly (npm run demo): configuration from the environment (this is an example program).
const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  startDemo(process.env).then((demo) => {
    process.stdout.write(demo.instructions);
    const stop = () => void demo.stop().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  }, (err: unknown) => {
    process.stderr.write(`demo: failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
