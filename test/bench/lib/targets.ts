/**
 * The processes under test: thingrelay from the compiled build (dist/), the floor, the MQTT peer and its
 * Mosquitto broker. Each one in its own process, listening on loopback, port chosen by the OS.
 */
import { createWriteStream, mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { ROOT, freePort, sleep, spawnChild, spawnTs, type Child } from "./proc.js";
import { api, login } from "../../helpers/api.js";

export const ADMIN = { user: "admin", password: `admin-${randomBytes(6).toString("hex")}` };
export const BENCH_USER = { user: "bench", password: `bench-${randomBytes(6).toString("hex")}` };
const SECRET = randomBytes(32).toString("base64url");

export interface ThingrelayOptions {
  dataDir?: string;
  port?: number;
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** Another checkout whose dist/ to run (before/after comparisons with --alt). */
  root?: string;
  /** Script and arguments to run instead of dist/server/main.js (the cluster-node launcher, scenario 6). */
  entry?: string[];
  /** Name of the child process in logs and errors. */
  name?: string;
}

export interface ThingrelayProc {
  child: Child;
  pid: number;
  port: number;
  base: string;
  wsUrl: string;
  dataDir: string;
  /** ms from spawn to the THINGRELAY_PORT line. */
  startMs: number;
  stop(): Promise<void>;
}

/**
 * Server environment for every run. LOG_LEVEL=warn: at info, one log line per request costs more than the
 * relay itself under load (measured separately, see BENCHMARKS.md). Rate and stream limits are raised so
 * they do not throttle the load generators; everything else keeps its default.
 */
export function serverEnv(dataDir: string, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: "test", THINGRELAY_PASSWORD_COST: "10",
    PORT: String(port), HOST: "127.0.0.1", THINGRELAY_PRINT_PORT: "1", DATA_DIR: dataDir, THINGRELAY_THINGER_PORT: "0", THINGRELAY_IOTMP_PORT: "0",
    THINGRELAY_SECRET: SECRET, THINGRELAY_ADMIN_USER: ADMIN.user, THINGRELAY_ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: process.env.BENCH_SERVER_LOG_LEVEL ?? "warn",
    THINGRELAY_RATE_LIMIT: "1000000000",
    THINGRELAY_MAX_PENDING_SOCKETS: "200000",
    // The fleets put thousands of devices on each of a few loopback addresses (127.0.0.2, …), where a real fleet
    // has an address per device or per site: the per-address handshake cap (default 10) would measure the bench's
    // address plan, not the server (a 10,000-device storm took 28 s with it, 77,780 attempts). The per-address
    // authentication budget counts handshakes in flight, so it is raised for the same reason.
    THINGRELAY_MAX_PENDING_PER_ADDRESS: "200000",
    THINGRELAY_DEVICE_AUTH_FAILURES: "1000000",
    THINGRELAY_MAX_STREAMS: "1000000",
    // The storm and fan-out scenarios register up to 100,000 devices in the bench account.
    THINGRELAY_MAX_DEVICES_PER_ACCOUNT: "1000000",
    // Each scenario gets a store of its own: never the MONGODB_URL/NATS_URL of the shell that runs the bench
    // (CI exports MONGODB_URL for the tests; every server would then share one database). Scenario 6 passes its own.
    MONGODB_URL: "", NATS_URL: "",
    ...extra,
  };
}

export async function startThingrelay(o: ThingrelayOptions = {}): Promise<ThingrelayProc> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), "thingrelay-bench-data-"));
  const t0 = performance.now();
  // Investigations: BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" profiles every thingrelay started.
  const extraArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawnChild(o.name ?? "thingrelay", process.execPath, [...extraArgs, ...(o.nodeArgs ?? []), ...(o.entry ?? [resolve(o.root ?? ROOT, "dist/server/main.js")])], {
    env: serverEnv(dataDir, o.port ?? 0, o.env),
  });
  // Investigations: BENCH_SERVER_LOG_LEVEL=info BENCH_SERVER_LOG=/tmp/server.log keeps the server's log lines.
  if (process.env.BENCH_SERVER_LOG) {
    const file = createWriteStream(process.env.BENCH_SERVER_LOG, { flags: "a" });
    child.proc.stdout!.pipe(file);
    child.proc.stderr!.pipe(file);
  }
  const m = await child.waitFor(/^THINGRELAY_PORT=(\d+)$/, 60_000);
  const port = Number(m[1]);
  return {
    child, pid: child.proc.pid!, port, dataDir,
    base: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`,
    startMs: performance.now() - t0,
    async stop() {
      await child.stop(20_000);
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Creates the bench account and returns its access token. */
export async function benchAccount(base: string): Promise<string> {
  const admin = await login(base, ADMIN.user, ADMIN.password);
  const r = await api(base, "POST", "/v1/users", { token: admin.access_token, json: { username: BENCH_USER.user, password: BENCH_USER.password } });
  if (r.status !== 201 && !(r.status === 409 || r.status === 400)) throw new Error(`create bench user: ${r.status} ${r.text}`);
  return (await login(base, BENCH_USER.user, BENCH_USER.password)).access_token;
}

export const CRED_PREFIX = "bench-credentials-";

/** Registers devices `${prefix}${from}` … through the REST API, `concurrency` requests at a time. */
export async function registerDevices(base: string, token: string, prefix: string, from: number, count: number, concurrency = 16, onProgress?: (n: number) => void): Promise<void> {
  let next = from;
  let done = 0;
  const worker = async () => {
    while (next < from + count) {
      const id = `${prefix}${next++}`;
      const r = await api(base, "POST", `/v1/users/${BENCH_USER.user}/devices`, {
        token, json: { device_id: id, device_description: "bench device", device_credentials: `${CRED_PREFIX}${id}` },
      });
      if (r.status !== 201) throw new Error(`register ${id}: ${r.status} ${r.text}`);
      if (++done % 1000 === 0) onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

export interface SimpleProc {
  child: Child;
  port: number;
  base: string;
  stop(): Promise<void>;
}

export async function startFloor(): Promise<SimpleProc> {
  const child = spawnTs("floor", "floor.ts", [], { ipc: false });
  const port = Number((await child.waitFor(/^FLOOR_PORT=(\d+)$/))[1]);
  return { child, port, base: `http://127.0.0.1:${port}`, stop: async () => void (await child.stop()) };
}

/** The Koa floor (koa-floor.ts): Koa + @koa/router, one route, a bearer-header presence check. */
export async function startKoaFloor(): Promise<SimpleProc> {
  const child = spawnTs("koa-floor", "koa-floor.ts", [], { ipc: false });
  const port = Number((await child.waitFor(/^FLOOR_PORT=(\d+)$/))[1]);
  return { child, port, base: `http://127.0.0.1:${port}`, stop: async () => void (await child.stop()) };
}

export interface PeerProcs {
  /** The relay side: HTTP endpoint and broker. */
  pids: number[];
  broker: Child;
  endpoint: SimpleProc;
  device: Child;
  stop(): Promise<void>;
}

export async function waitTcp(port: number, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((res) => {
      const s = netConnect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        res(true);
      });
      s.once("error", () => res(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Mosquitto on a free loopback port, the MQTT device, and the HTTP endpoint in front of them. */
export async function startPeer(user: string, device: string): Promise<PeerProcs> {
  const dir = mkdtempSync(join(tmpdir(), "thingrelay-bench-mqtt-"));
  const port = await freePort();
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false",
    "log_dest stderr", "log_type error", "log_type warning", "max_queued_messages 0", "",
  ].join("\n"));
  const broker = spawnChild("mosquitto", "/usr/sbin/mosquitto", ["-c", conf]);
  await waitTcp(port);
  const mqttUrl = `mqtt://127.0.0.1:${port}`;
  const dev = spawnTs("peer-device", "peer.ts", [mqttUrl, "--device", user, device], { ipc: false });
  await dev.waitFor(/^PEER_DEVICE_READY$/);
  const ep = spawnTs("peer", "peer.ts", [mqttUrl], { ipc: false });
  const epPort = Number((await ep.waitFor(/^PEER_PORT=(\d+)$/))[1]);
  return {
    pids: [ep.proc.pid!, broker.proc.pid!], broker, device: dev,
    endpoint: { child: ep, port: epPort, base: `http://127.0.0.1:${epPort}`, stop: async () => void (await ep.stop()) },
    async stop() {
      await Promise.all([ep.stop(), dev.stop()]);
      await broker.stop();
      removeDir(dir);
    },
  };
}
