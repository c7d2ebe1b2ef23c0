/**
 * Configuration: read once from the environment by `server/main.ts`, validated, frozen. Every bad variable
 * is reported in one {@link ConfigError}. Nothing else in the server reads `process.env`.
 */
import { NAME_RE } from "../device-sdk/protocol.js";
import { parseTrustProxy, type TrustProxy } from "./auth/address.js";

export interface Limits {
  /** Default relay call timeout (ms) when the caller gives no `?timeout=`. */
  callTimeoutMs: number;
  /** Upper bound of `?timeout=` (ms). */
  maxCallTimeoutMs: number;
  /** Calls in flight per device before 429 device_busy. */
  maxInflightPerDevice: number;
  /** Bytes queued to a device socket before new calls answer 429 device_busy (backpressure). */
  maxDeviceBufferedBytes: number;
  /** Largest WebSocket message a device may send (bytes); larger closes with 1009. */
  wsMaxPayload: number;
  /** Server ping interval for device sessions (ms); a device silent for two intervals is dropped. */
  pingIntervalMs: number;
  /** Time a new device socket has to send its `connect` frame (ms). */
  authDeadlineMs: number;
  /** Sockets that have not authenticated yet, across the server. */
  maxPendingSockets: number;
  /** Open SSE streams per account. */
  maxStreamsPerUser: number;
  /** SSE heartbeat comment interval (ms). */
  sseHeartbeatMs: number;
  /** JSON request body limit (bytes). */
  jsonLimitBytes: number;
  /** Token endpoint body limit (bytes). */
  tokenBodyLimitBytes: number;
  /** Largest nesting depth accepted in JSON request bodies. */
  jsonMaxDepth: number;
  /** API requests per minute per token (and per client address for unauthenticated calls). */
  rateLimitPerMinute: number;
  /** Queued (`Prefer: respond-async`) calls waiting per device before 429 queue_full. */
  maxQueuedCallsPerDevice: number;
  /** Queued calls waiting per account before 429 queue_full. */
  maxQueuedCallsPerUser: number;
  /** Live Idempotency-Keys (kept 24 h) per account before 429 too_many_idempotency_keys. */
  maxIdempotencyKeysPerUser: number;
  /** Unauthenticated device sockets one client address (IPv6: one /64) may hold. */
  maxPendingPerAddress: number;
  /**
   * Device authentication attempts one address may have failed, or have in flight, per minute (counted before the
   * credential check, given back when the device authenticates).
   */
  deviceAuthFailuresPerMinute: number;
  /** Devices one account may own. */
  maxDevicesPerAccount: number;
  /** Device and user tokens one account may hold together. */
  maxTokensPerAccount: number;
  /** Live refresh families (signed-in sessions) per user; a new sign-in beyond it revokes the oldest. */
  maxSessionsPerUser: number;
  /** Cluster mode: a node silent this long is dead and its devices offline (heartbeat every third of it). */
  clusterNodeTimeoutMs: number;
}

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  mongodbUrl: string | undefined;
  natsUrl: string | undefined;
  secret: string | undefined;
  adminUser: string | undefined;
  adminPassword: string | undefined;
  logLevel: string;
  /** log2 of scrypt's N for password hashes. 17 (OWASP floor) unless lowered for tests. */
  passwordCost: number;
  /** Which proxies may report the client address (`THINGRELAY_TRUST_PROXY`, see server/auth/address.ts). */
  trustProxy: TrustProxy;
  /** Bearer token `GET /metrics` requires; undefined = open (expose it to your scraper only). */
  metricsToken: string | undefined;
  corsOrigins: readonly string[];
  /** Browser origins allowed to open device sockets; empty = any (device auth is in-band, no cookies). */
  wsOrigins: readonly string[];
  limits: Limits;
  /** Listeners for Thinger devices (legacy protocol and IOTMP). */
  thinger: ThingerListenConfig;
}

/** Ports of the Thinger listeners: null = off, 0 = a free port. TLS ones open only with a certificate. */
export interface ThingerListenConfig {
  legacyPort: number | null;
  legacyTlsPort: number | null;
  iotmpPort: number | null;
  iotmpTlsPort: number | null;
  /** PEM files (paths) of the TLS listeners; both or neither. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
}

const THINGER_PORT_VARS: ReadonlyArray<[Exclude<keyof ThingerListenConfig, "tlsCert" | "tlsKey">, string, number]> = [
  ["legacyPort", "THINGRELAY_THINGER_PORT", 25200],
  ["legacyTlsPort", "THINGRELAY_THINGER_TLS_PORT", 25202],
  ["iotmpPort", "THINGRELAY_IOTMP_PORT", 25204],
  ["iotmpTlsPort", "THINGRELAY_IOTMP_TLS_PORT", 25206],
];

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  callTimeoutMs: 10_000,
  maxCallTimeoutMs: 60_000,
  maxInflightPerDevice: 64,
  maxDeviceBufferedBytes: 1024 * 1024,
  wsMaxPayload: 1024 * 1024,
  pingIntervalMs: 30_000,
  authDeadlineMs: 5_000,
  maxPendingSockets: 1_000,
  maxStreamsPerUser: 32,
  sseHeartbeatMs: 15_000,
  jsonLimitBytes: 256 * 1024,
  tokenBodyLimitBytes: 8 * 1024,
  jsonMaxDepth: 32,
  rateLimitPerMinute: 60_000,
  maxQueuedCallsPerDevice: 100,
  maxQueuedCallsPerUser: 1_000,
  maxIdempotencyKeysPerUser: 10_000,
  maxPendingPerAddress: 10,
  deviceAuthFailuresPerMinute: 20,
  maxDevicesPerAccount: 1_000,
  maxTokensPerAccount: 1_000,
  maxSessionsPerUser: 100,
  clusterNodeTimeoutMs: 6_000,
});

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

const LIMIT_VARS: ReadonlyArray<[keyof Limits, string]> = [
  ["callTimeoutMs", "THINGRELAY_CALL_TIMEOUT_MS"],
  ["maxCallTimeoutMs", "THINGRELAY_MAX_CALL_TIMEOUT_MS"],
  ["maxInflightPerDevice", "THINGRELAY_MAX_INFLIGHT"],
  ["maxDeviceBufferedBytes", "THINGRELAY_MAX_DEVICE_BUFFER"],
  ["wsMaxPayload", "THINGRELAY_WS_MAX_PAYLOAD"],
  ["pingIntervalMs", "THINGRELAY_PING_INTERVAL_MS"],
  ["authDeadlineMs", "THINGRELAY_AUTH_DEADLINE_MS"],
  ["maxPendingSockets", "THINGRELAY_MAX_PENDING_SOCKETS"],
  ["maxStreamsPerUser", "THINGRELAY_MAX_STREAMS"],
  ["sseHeartbeatMs", "THINGRELAY_SSE_HEARTBEAT_MS"],
  ["jsonLimitBytes", "THINGRELAY_JSON_LIMIT"],
  ["tokenBodyLimitBytes", "THINGRELAY_TOKEN_BODY_LIMIT"],
  ["jsonMaxDepth", "THINGRELAY_JSON_MAX_DEPTH"],
  ["rateLimitPerMinute", "THINGRELAY_RATE_LIMIT"],
  ["maxQueuedCallsPerDevice", "THINGRELAY_MAX_QUEUED_PER_DEVICE"],
  ["maxQueuedCallsPerUser", "THINGRELAY_MAX_QUEUED_PER_USER"],
  ["maxIdempotencyKeysPerUser", "THINGRELAY_MAX_IDEMPOTENCY_KEYS"],
  ["maxPendingPerAddress", "THINGRELAY_MAX_PENDING_PER_ADDRESS"],
  ["deviceAuthFailuresPerMinute", "THINGRELAY_DEVICE_AUTH_FAILURES"],
  ["maxDevicesPerAccount", "THINGRELAY_MAX_DEVICES_PER_ACCOUNT"],
  ["maxTokensPerAccount", "THINGRELAY_MAX_TOKENS_PER_ACCOUNT"],
  ["maxSessionsPerUser", "THINGRELAY_MAX_SESSIONS_PER_USER"],
  ["clusterNodeTimeoutMs", "THINGRELAY_NODE_TIMEOUT_MS"],
];

/** Every environment variable the server reads, for the README table test. */
export const CONFIG_VARIABLES: readonly string[] = [
  "PORT", "HOST", "DATA_DIR", "MONGODB_URL", "NATS_URL", "THINGRELAY_SECRET", "THINGRELAY_ADMIN_USER",
  "THINGRELAY_ADMIN_PASSWORD", "LOG_LEVEL", "THINGRELAY_PASSWORD_COST", "THINGRELAY_TRUST_PROXY",
  "THINGRELAY_CORS_ORIGINS", "THINGRELAY_WS_ORIGINS", "THINGRELAY_METRICS_TOKEN", ...LIMIT_VARS.map(([, v]) => v),
  ...THINGER_PORT_VARS.map(([, v]) => v), "THINGRELAY_TLS_CERT", "THINGRELAY_TLS_KEY",
];

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function loadConfig(env: Record<string, string | undefined>): Readonly<Config> {
  const problems: string[] = [];
  const str = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  };
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return dflt;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw}")`);
      return dflt;
    }
    return Number(raw);
  };
  const list = (name: string): string[] =>
    (str(name) ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");

  const port = int("PORT", 8080, 0, 65535);
  const host = str("HOST") ?? "0.0.0.0";
  const dataDir = str("DATA_DIR") ?? "./data";
  const mongodbUrl = str("MONGODB_URL");
  if (mongodbUrl !== undefined && !/^mongodb(\+srv)?:\/\//.test(mongodbUrl)) {
    problems.push("MONGODB_URL must start with mongodb:// or mongodb+srv://");
  }
  const natsUrl = str("NATS_URL");
  if (natsUrl !== undefined && mongodbUrl === undefined) {
    problems.push("NATS_URL (cluster mode) requires MONGODB_URL: the embedded store cannot be shared between nodes");
  }
  const secret = str("THINGRELAY_SECRET");
  if (secret !== undefined && Buffer.byteLength(secret, "utf8") < 32) {
    problems.push("THINGRELAY_SECRET must be at least 32 bytes (256 bits)");
  }
  const adminUser = str("THINGRELAY_ADMIN_USER");
  const adminPassword = env.THINGRELAY_ADMIN_PASSWORD === "" ? undefined : env.THINGRELAY_ADMIN_PASSWORD;
  if ((adminUser === undefined) !== (adminPassword === undefined)) {
    problems.push("THINGRELAY_ADMIN_USER and THINGRELAY_ADMIN_PASSWORD must be set together");
  }
  if (adminUser !== undefined && !NAME_RE.test(adminUser)) {
    problems.push("THINGRELAY_ADMIN_USER must match [a-zA-Z0-9_]{1,32}");
  }
  if (adminPassword !== undefined && (adminPassword.length < 8 || adminPassword.length > 1024)) {
    problems.push("THINGRELAY_ADMIN_PASSWORD must be 8 to 1024 characters");
  }
  const logLevel = str("LOG_LEVEL") ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  // Lowering the scrypt cost below the OWASP floor is for test suites only.
  const passwordCost = int("THINGRELAY_PASSWORD_COST", 17, 10, 20);
  if (passwordCost < 17 && env.NODE_ENV !== "test") {
    problems.push("THINGRELAY_PASSWORD_COST below 17 is only allowed with NODE_ENV=test");
  }
  const trustProxy = parseTrustProxy(str("THINGRELAY_TRUST_PROXY") ?? "false");
  if (typeof trustProxy === "string") problems.push(trustProxy);
  const metricsToken = str("THINGRELAY_METRICS_TOKEN");
  if (metricsToken !== undefined && (metricsToken.length < 16 || metricsToken.length > 256 || !/^[\x21-\x7e]+$/.test(metricsToken))) {
    problems.push("THINGRELAY_METRICS_TOKEN must be 16 to 256 printable ASCII characters without spaces");
  }
  const corsOrigins = list("THINGRELAY_CORS_ORIGINS");
  const wsOrigins = list("THINGRELAY_WS_ORIGINS");
  for (const o of [...corsOrigins, ...wsOrigins]) {
    if (!/^https?:\/\/[^/\s]+$/.test(o)) problems.push(`origin "${o}" must look like https://host[:port]`);
  }

  const limits = { ...DEFAULT_LIMITS };
  for (const [key, name] of LIMIT_VARS) limits[key] = int(name, DEFAULT_LIMITS[key], 1, 2 ** 31 - 1);
  if (limits.callTimeoutMs > limits.maxCallTimeoutMs) {
    problems.push("THINGRELAY_CALL_TIMEOUT_MS must not exceed THINGRELAY_MAX_CALL_TIMEOUT_MS");
  }

  const thinger: ThingerListenConfig = { legacyPort: null, legacyTlsPort: null, iotmpPort: null, iotmpTlsPort: null, tlsCert: str("THINGRELAY_TLS_CERT"), tlsKey: str("THINGRELAY_TLS_KEY") };
  for (const [key, name, dflt] of THINGER_PORT_VARS) {
    const raw = str(name);
    if (raw === "off") continue;
    if (raw !== undefined && (!/^\d+$/.test(raw) || Number(raw) > 65535)) {
      problems.push(`${name} must be "off" or a port from 0 to 65535 (got "${raw}")`);
      continue;
    }
    thinger[key] = raw === undefined ? dflt : Number(raw);
  }
  if ((thinger.tlsCert === undefined) !== (thinger.tlsKey === undefined)) {
    problems.push("THINGRELAY_TLS_CERT and THINGRELAY_TLS_KEY must be set together");
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze({
    port, host, dataDir, mongodbUrl, natsUrl, secret, adminUser, adminPassword, logLevel, passwordCost,
    trustProxy: typeof trustProxy === "string" ? false : trustProxy,
    metricsToken,
    corsOrigins: Object.freeze(corsOrigins),
    wsOrigins: Object.freeze(wsOrigins),
    limits: Object.freeze(limits),
    thinger: Object.freeze(thinger),
  });
}
