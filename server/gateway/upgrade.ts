import { STATUS_CODES, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import type { Limits } from "../config.js";
import { errorBody, type ErrorCode } from "../errors.js";
import { SECURITY_HEADERS } from "../http/middleware.js";
import type { Logger } from "../log.js";
import { clientAddress, type TrustProxy } from "../auth/address.js";
import { type AdmissionHold, type DeviceAdmission, isRefusal } from "./admission.js";
import { CLOSE, parseConnect, type WsErrorCode } from "./protocol.js";
import { CLOSE_GRACE_MS, type DeviceRequestHandler, JsonSession } from "./session.js";
import type { Admitting, Hub } from "./hub.js";
import { systemTimers, type Timers } from "../timers.js";

export const CONNECT_PATH = "/v1/connect";

export interface GatewayOptions {
  limits: Limits;
  /** Browser origins allowed to connect; empty = any (auth is in-band, no ambient credentials). */
  allowedOrigins: readonly string[];
  trustProxy: TrustProxy;
  /** Answers device requests such as `property_get` (issue 18). */
  requests?: DeviceRequestHandler;
  /** The clock of the authentication deadline and the sessions' call timeouts (default the system's; tests pass a fake one, issue 13.6). */
  timers?: Timers | undefined;
}

/**
 * Accepts device sockets on `/v1/connect`: origin check before the upgrade, a slot of the unauthenticated pool
 * (global and per address) and a reserved attempt taken before the handshake, then in-band authentication by the
 * first frame within `authDeadlineMs` (gateway/admission.ts, shared with the Thinger listeners). Unknown devices
 * and wrong credentials get the same refusal; refusals before the upgrade carry the JSON error shape.
 */
export class Gateway {
  readonly wss: WebSocketServer;
  private closing = false;

  constructor(
    private readonly hub: Hub,
    private readonly admission: DeviceAdmission,
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
  }

  get unauthenticated(): number {
    return this.admission.unauthenticated;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? "").split("?")[0];
    if (path !== CONNECT_PATH) return rejectUpgrade(socket, 404, "not_found", "no such route");
    const admitted = admitUpgrade(req, socket, this.closing, this.admission, this.options);
    if (!admitted) return;
    const { ip, hold } = admitted;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.authenticate(ws, ip, hold));
  }

  private authenticate(ws: WebSocket, ip: string, hold: AdmissionHold): void {
    const timers = this.options.timers ?? systemTimers;
    let done = false;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      hold.release();
      timers.clearTimeout(deadline);
      return true;
    };
    const deadline = timers.setTimeout(() => {
      if (done) return;
      // A socket that never authenticates counts as a failed attempt: idle sockets are throttled too.
      hold.failed();
      finish();
      closeWith(ws, CLOSE.policy, "authentication_timeout", "no connect frame in time", timers);
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
        hold.failed();
        finish();
        closeWith(ws, CLOSE.badConnect, "invalid_request", frame, timers);
        return;
      }
      this.admission.verifyAdmitting(this.hub, frame.user, frame.device, frame.credentials, ip).then(
        (admitting) => {
          if (done) {
            admitting?.done();
            return;
          }
          if (!admitting) {
            hold.failed();
            finish();
            closeWith(ws, CLOSE.unauthorized, "unauthorized", "invalid device credentials", timers);
            return;
          }
          finish();
          try {
            this.accept(ws, frame.user, frame.device, ip, Buffer.byteLength(rawToString(data)), admitting);
          } finally {
            admitting.done();
          }
        },
        (err: unknown) => {
          if (!finish()) return;
          this.logger.error({ err }, "device lookup failed");
          closeWith(ws, CLOSE.internalError, "internal_error", "server error", timers);
        },
      );
    });
  }

  private accept(ws: WebSocket, user: string, device: string, ip: string, connectBytes: number, admitting: Admitting): void {
    if (ws.readyState !== ws.OPEN) return;
    const session = new JsonSession(user, device, ws, ip, {
      maxInflight: this.options.limits.maxInflightPerDevice,
      maxBufferedBytes: this.options.limits.maxDeviceBufferedBytes,
    }, this.hub, this.options.requests, this.options.timers);
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
      this.admission.touch(session.key);
    });
    // Closed while its credentials were checked (changed, device deleted, account disabled): closed as the session
    // it would have been, not registered with what the check read before the change.
    const closed = admitting.closedWith;
    if (closed) {
      session.close(closed.code, closed.reason);
      return;
    }
    this.hub.register(session);
    session.send(JSON.stringify({
      type: "connected", user, device, keepalive: Math.round(this.options.limits.pingIntervalMs / 1000), server_time: Date.now(),
    }));
    this.admission.touch(session.key);
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

function closeWith(ws: WebSocket, code: number, errCode: WsErrorCode, message: string, timers: Timers): void {
  try {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: "error", code: errCode, message }));
    ws.close(code, errCode);
    // A peer that ignores the closing handshake would hold the socket for ws's 30 s closeTimeout, outside the
    // pending-socket cap (already released): cut it after the same grace as sessions.
    const timer = timers.setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    timer.unref?.();
    ws.once("close", () => timers.clearTimeout(timer));
  } catch {
    ws.terminate();
  }
}

/**
 * What every device upgrade (`/v1/connect`, `/iotmp`) checks before the handshake: the server is not closing,
 * the browser origin is allowed, and the admission grants a slot and an attempt. Refused sockets get the JSON
 * error answer and undefined comes back; an admitted peer that leaves before or during the handshake gives its
 * slot and its attempt back.
 */
export function admitUpgrade(
  req: IncomingMessage, socket: Duplex, closing: boolean, admission: DeviceAdmission,
  options: { allowedOrigins: readonly string[]; trustProxy: TrustProxy },
): { ip: string; hold: AdmissionHold } | undefined {
  if (closing) {
    rejectUpgrade(socket, 503, "service_unavailable", "server shutting down");
    return undefined;
  }
  const origin = req.headers.origin;
  if (origin !== undefined && options.allowedOrigins.length > 0 && !options.allowedOrigins.includes(origin)) {
    rejectUpgrade(socket, 403, "forbidden", "origin not allowed");
    return undefined;
  }
  const ip = clientIp(req, options.trustProxy);
  const hold = admission.admit(ip);
  if (isRefusal(hold)) {
    const retry = { "Retry-After": String(hold.retryAfterS) };
    if (hold.refused === "throttled") rejectUpgrade(socket, 429, "too_many_requests", "too many failed device authentications", retry);
    else rejectUpgrade(socket, 503, "service_unavailable", "too many unauthenticated device sockets", retry);
    return undefined;
  }
  socket.once("close", () => hold.release());
  return { ip, hold };
}

/** Refuses an upgrade with the JSON error shape and the security headers every HTTP answer carries. */
export function rejectUpgrade(socket: Duplex, status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(errorBody(code, message));
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`, "Connection: close", "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(body)}`, "Cache-Control: no-store"];
  for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, ...headers })) lines.push(`${k}: ${v}`);
  socket.end(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

export function clientIp(req: IncomingMessage, trustProxy: TrustProxy): string {
  return clientAddress(req.socket.remoteAddress, req.headers["x-forwarded-for"], trustProxy);
}
