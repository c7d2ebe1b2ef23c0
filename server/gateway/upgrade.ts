import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import type { Limits } from "../config.js";
import { errorBody, type ErrorCode } from "../errors.js";
import { SECURITY_HEADERS } from "../http/middleware.js";
import type { Logger } from "../log.js";
import { Repositories } from "../store/repos.js";
import type { CredentialHasher } from "../auth/passwords.js";
import { SlotPool, WindowLimiter } from "../auth/limiter.js";
import { addressKey, clientAddress, type TrustProxy } from "../auth/address.js";
import { CLOSE, parseConnect } from "./protocol.js";
import { CLOSE_GRACE_MS, DeviceSession } from "./session.js";
import type { Hub } from "./hub.js";

export const CONNECT_PATH = "/v1/connect";

/** Failed device authentications allowed per address (IPv6: per /64) per minute. */
export const DEVICE_AUTH_FAILURES_PER_MINUTE = 20;

export interface GatewayOptions {
  limits: Limits;
  /** Browser origins allowed to connect; empty = any (auth is in-band, no ambient credentials). */
  allowedOrigins: readonly string[];
  trustProxy: TrustProxy;
}

/**
 * Accepts device sockets on `/v1/connect`: origin check before the upgrade, a cap on unauthenticated
 * sockets, then in-band authentication by the first frame within `authDeadlineMs`. Failed attempts are
 * throttled per address; unknown devices and wrong credentials get the same refusal.
 */
export class Gateway {
  readonly wss: WebSocketServer;
  /** Unauthenticated sockets, in all and per address (IPv6: per /64). */
  private readonly pending: SlotPool;
  private readonly touched = new Set<string>();
  private touchQueued = false;
  private readonly failures: WindowLimiter;
  private closing = false;

  constructor(
    private readonly hub: Hub,
    private readonly repos: Repositories,
    private readonly credentials: CredentialHasher,
    private readonly logger: Logger,
    private readonly options: GatewayOptions,
  ) {
    const { limits } = options;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.wsMaxPayload,
      perMessageDeflate: false,
      // Bounds on fragmented messages (GHSA-96hv-2xvq-fx4p); set explicitly, not left to ws defaults.
      ...({ maxFragments: 1024, maxBufferedChunks: 4096 } as object),
      skipUTF8Validation: false,
      autoPong: true,
      clientTracking: false,
    });
    this.failures = new WindowLimiter(DEVICE_AUTH_FAILURES_PER_MINUTE, 60_000);
    // One address: its own limit, and never more than a quarter of all the slots.
    this.pending = new SlotPool(limits.maxPendingSockets, Math.min(limits.maxPendingPerAddress, Math.max(1, Math.floor(limits.maxPendingSockets / 4))));
  }

  get unauthenticated(): number {
    return this.pending.inUse;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "").split("?")[0];
    if (path !== CONNECT_PATH) return reject(socket, 404, "not_found", "no such route");
    if (this.closing) return reject(socket, 503, "service_unavailable", "server shutting down");
    const origin = req.headers.origin;
    if (origin !== undefined && this.options.allowedOrigins.length > 0 && !this.options.allowedOrigins.includes(origin)) {
      return reject(socket, 403, "forbidden", "origin not allowed");
    }
    const ip = clientIp(req, this.options.trustProxy);
    const key = addressKey(ip);
    // A slot first: the per-address share is taken at once (before the handshake), so a burst from one
    // address cannot pass the check before any of its sockets is counted.
    const slot = this.pending.acquire(key);
    if ("refused" in slot) return reject(socket, 503, "service_unavailable", "too many unauthenticated device sockets", { "Retry-After": "1" });
    // Count the attempt as a failure before the check (a reservation given back when it authenticates or
    // the peer leaves without trying), as the password grant does: a parallel burst gets at most the limit checked.
    const attempt = this.failures.hit(key);
    if (!attempt.allowed) {
      this.failures.release(key);
      slot.release();
      return reject(socket, 429, "too_many_requests", "too many failed device authentications", { "Retry-After": String(attempt.retryAfterS) });
    }
    let settled = false;
    const giveBack = () => {
      if (settled) return;
      settled = true;
      this.failures.release(key);
    };
    const keep = () => {
      settled = true;
    };
    socket.once("close", () => {
      slot.release();
      giveBack();
    });
    this.wss.handleUpgrade(req, socket, head, (ws) => this.authenticate(ws, ip, { release: slot.release, succeeded: giveBack, failed: keep }));
  }

  private authenticate(ws: WebSocket, ip: string, attempt: { release: () => void; succeeded: () => void; failed: () => void }): void {
    let done = false;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      attempt.release();
      clearTimeout(deadline);
      return true;
    };
    const deadline = setTimeout(() => {
      if (!finish()) return;
      // A socket that never authenticates counts as a failed attempt: idle sockets are throttled too.
      attempt.failed();
      closeWith(ws, CLOSE.policy, "authentication_timeout", "no connect frame in time");
    }, this.options.limits.authDeadlineMs);
    ws.on("error", () => finish());
    ws.on("close", () => finish());
    ws.once("message", (data: RawData, isBinary: boolean) => {
      if (done) return;
      let parsed: unknown;
      try {
        parsed = isBinary ? undefined : JSON.parse(rawToString(data));
      } catch {
        parsed = undefined;
      }
      const frame = parseConnect(parsed);
      if (typeof frame === "string") {
        finish();
        attempt.failed();
        closeWith(ws, CLOSE.badConnect, "invalid_request", frame);
        return;
      }
      Promise.all([
        this.repos.devices.findOne({ _id: Repositories.deviceKey(frame.user, frame.device) }),
        this.repos.users.findOne({ _id: frame.user }),
      ]).then(
        ([doc, owner]) => {
          if (done) return;
          // A disabled account's devices get the same refusal as wrong credentials.
          if (!doc || !this.credentials.verify(frame.credentials, doc.credentialsHash) || !owner || owner.enabled === false) {
            finish();
            attempt.failed();
            this.logger.info({ user: frame.user, device: frame.device, ip }, "device authentication failed");
            closeWith(ws, CLOSE.unauthorized, "unauthorized", "invalid device credentials");
            return;
          }
          finish();
          attempt.succeeded();
          this.accept(ws, frame.user, frame.device, ip, Buffer.byteLength(rawToString(data)));
        },
        (err: unknown) => {
          if (!finish()) return;
          this.logger.error({ err }, "device lookup failed");
          closeWith(ws, 1011, "internal_error", "server error");
        },
      );
    });
  }

  private accept(ws: WebSocket, user: string, device: string, ip: string, connectBytes: number): void {
    if (ws.readyState !== ws.OPEN) return;
    const session = new DeviceSession(user, device, ws, ip, {
      maxInflight: this.options.limits.maxInflightPerDevice,
      maxBufferedBytes: this.options.limits.maxDeviceBufferedBytes,
    }, this.hub);
    session.rxBytes = connectBytes;
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      try {
        session.receive(rawToString(data), rawSize(data));
      } catch (err) {
        // Last resort: a throwing event listener must not take the process down with a device's frame.
        this.logger.error({ err, user, device }, "device frame handling failed");
      }
    });
    ws.on("pong", () => {
      session.alive = true;
    });
    ws.on("close", () => {
      this.hub.unregister(session);
      this.touch(session.key);
    });
    this.hub.register(session);
    session.send(JSON.stringify({
      type: "connected", user, device, keepalive: Math.round(this.options.limits.pingIntervalMs / 1000), server_time: Date.now(),
    }));
    this.touch(session.key);
  }

  /**
   * Records "seen now" (lastConnectionTs) for a device. The writes of one event-loop turn go out as one
   * updateMany: nedb serialises every write as its own file append, and one write per session open and
   * close made a graceful shutdown under 10,000 devices wait ~10 s for the store (BENCHMARKS.md, storm).
   */
  private touch(key: string): void {
    this.touched.add(key);
    if (this.touchQueued) return;
    this.touchQueued = true;
    setImmediate(() => {
      this.touchQueued = false;
      const keys = [...this.touched];
      this.touched.clear();
      this.repos.devices.updateMany({ _id: { $in: keys } }, { $set: { lastConnectionTs: Date.now() } }).catch(() => {});
    });
  }

  /** Stops accepting sockets; existing sessions are closed by the hub. */
  close(): void {
    this.closing = true;
    this.wss.close();
  }
}

function rawToString(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

function rawSize(data: RawData): number {
  if (Buffer.isBuffer(data)) return data.length;
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data.byteLength;
}

function closeWith(ws: WebSocket, code: number, errCode: string, message: string): void {
  try {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "error", code: errCode, message }));
    ws.close(code, errCode);
    // A peer that ignores the closing handshake would hold the socket for ws's 30 s closeTimeout, outside the
    // pending-socket cap (already released): cut it after the same grace as sessions.
    const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    timer.unref();
    ws.once("close", () => clearTimeout(timer));
  } catch {
    ws.terminate();
  }
}

/** Refuses an upgrade with the JSON error shape and the security headers every HTTP answer carries. */
function reject(socket: Duplex, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(errorBody(code, message));
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`, "Connection: close", "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`, "Cache-Control: no-store"];
  for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, ...headers })) lines.push(`${k}: ${v}`);
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

export function clientIp(req: IncomingMessage, trustProxy: TrustProxy): string {
  return clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"], trustProxy);
}
