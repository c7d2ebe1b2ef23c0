import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import type { Limits } from "../config.js";
import type { Logger } from "../log.js";
import { Repositories } from "../store/repos.js";
import type { CredentialHasher } from "../auth/passwords.js";
import { WindowLimiter } from "../auth/limiter.js";
import { CLOSE, parseConnect } from "./protocol.js";
import { CLOSE_GRACE_MS, type DeviceRequestHandler, DeviceSession } from "./session.js";
import type { Hub } from "./hub.js";

export const CONNECT_PATH = "/v1/connect";

export interface GatewayOptions {
  limits: Limits;
  /** Browser origins allowed to connect; empty = any (auth is in-band, no ambient credentials). */
  allowedOrigins: readonly string[];
  trustProxy: boolean;
  /** Answers device requests such as `property_get` (issue 18). */
  requests?: DeviceRequestHandler;
}

/**
 * Accepts device sockets on `/v1/connect`: origin check before the upgrade, a cap on unauthenticated
 * sockets, then in-band authentication by the first frame within `authDeadlineMs`. Failed attempts are
 * throttled per address; unknown devices and wrong credentials get the same refusal.
 */
export class Gateway {
  readonly wss: WebSocketServer;
  private pendingSockets = 0;
  private readonly pendingByIp = new Map<string, number>();
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
    this.failures = new WindowLimiter(20, 60_000);
  }

  get unauthenticated(): number {
    return this.pendingSockets;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "").split("?")[0];
    if (path !== CONNECT_PATH) return reject(socket, 404, "Not Found");
    if (this.closing) return reject(socket, 503, "Service Unavailable");
    const origin = req.headers.origin;
    if (origin !== undefined && this.options.allowedOrigins.length > 0 && !this.options.allowedOrigins.includes(origin)) {
      return reject(socket, 403, "Forbidden");
    }
    if (this.pendingSockets >= this.options.limits.maxPendingSockets) return reject(socket, 503, "Service Unavailable");
    const ip = clientIp(req, this.options.trustProxy);
    if (!this.failures.peek(ip).allowed) return reject(socket, 429, "Too Many Requests");
    // One address may hold at most a quarter of the unauthenticated slots, so it cannot starve the others.
    if ((this.pendingByIp.get(ip) ?? 0) >= Math.max(1, Math.floor(this.options.limits.maxPendingSockets / 4))) {
      return reject(socket, 503, "Service Unavailable");
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.authenticate(ws, ip));
  }

  private authenticate(ws: WebSocket, ip: string): void {
    this.pendingSockets++;
    this.pendingByIp.set(ip, (this.pendingByIp.get(ip) ?? 0) + 1);
    let done = false;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      this.pendingSockets--;
      const n = (this.pendingByIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.pendingByIp.delete(ip);
      else this.pendingByIp.set(ip, n);
      clearTimeout(deadline);
      return true;
    };
    const deadline = setTimeout(() => {
      if (!finish()) return;
      // A socket that never authenticates counts as a failed attempt: idle sockets are throttled too.
      this.failures.hit(ip);
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
        this.failures.hit(ip);
        closeWith(ws, CLOSE.badConnect, "invalid_request", frame);
        return;
      }
      this.repos.devices.findOne({ _id: Repositories.deviceKey(frame.user, frame.device) }).then(
        (doc) => {
          if (done) return;
          if (!doc || !this.credentials.verify(frame.credentials, doc.credentialsHash)) {
            finish();
            this.failures.hit(ip);
            this.logger.info({ user: frame.user, device: frame.device, ip }, "device authentication failed");
            closeWith(ws, CLOSE.unauthorized, "unauthorized", "invalid device credentials");
            return;
          }
          finish();
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
    }, this.hub, this.options.requests);
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

function reject(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const xff = req.headers["x-forwarded-for"];
    const first = (Array.isArray(xff) ? xff[0] : xff)?.split(",")[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? "unknown";
}
