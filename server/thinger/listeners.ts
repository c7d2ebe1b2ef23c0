import type { IncomingMessage } from "node:http";
import { createServer as createTcpServer, type Server as NetServer, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import type { Limits, ThingerListenConfig } from "../config.js";
import type { Logger } from "../log.js";
import type { Admitting, Hub } from "../gateway/hub.js";
import { type AdmissionHold, type DeviceAdmission, isRefusal } from "../gateway/admission.js";
import { admitUpgrade } from "../gateway/upgrade.js";
import type { TrustProxy } from "../auth/address.js";
import { DEVICE_RE, NAME_RE } from "../gateway/protocol.js";
import { detectProtocol, FrameReader, type Frame } from "./frame-reader.js";
import { decodeLegacyBody, encodeLegacyMessage, LEGACY_FLAG, LEGACY_FRAME } from "./legacy-frame.js";
import { decodeIotmpFrame, detectIotmpDialect, encodeIotmpMessage, IOTMP_TYPE, type IotmpDialect } from "./iotmp-frame.js";
import { MAX_FRAME_BYTES } from "./limits.js";
import { SocketLink, WebSocketLink, type DeviceLink } from "./link.js";
import { LegacySession } from "./legacy-session.js";
import { IotmpSession } from "./iotmp-session.js";
import type { ThingerSession } from "./session-base.js";
import type { DeviceRequestHandler } from "./requests.js";
import { systemTimers, type Timers } from "../timers.js";

export const IOTMP_WS_PATH = "/iotmp";
/** Default silence after which a Thinger device is dropped: its clients send a keep-alive every 60 s. */
export const THINGER_KEEPALIVE_TIMEOUT_MS = 90_000;
/** Longest wait for the first describe answer before a new session goes online without a resource list. */
const FIRST_DESCRIBE_MS = 5_000;

export interface ThingerGatewayOptions {
  limits: Limits;
  trustProxy: TrustProxy;
  allowedOrigins: readonly string[];
  /** Injectable for tests. */
  keepaliveTimeoutMs?: number;
  /** Serves the devices' own requests (properties); without it they are answered with the protocol's error. */
  requests?: DeviceRequestHandler;
  /** The clock of the authentication deadline and the sessions' timers (default the system's; tests pass a fake one, issue 13.6). */
  timers?: Timers | undefined;
}

export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
}

/** Listener name → bound port, as logged at start. */
export type ThingerPorts = Partial<Record<"thinger" | "thinger_tls" | "iotmp" | "iotmp_tls", number>>;

interface Credentials {
  user: string;
  device: string;
  credentials: string;
}

/**
 * Accepts Thinger devices: the legacy protocol and IOTMP on TCP/TLS listeners (the protocol is told by the
 * first byte on any of them) and IOTMP on the WebSocket `/iotmp` of the HTTP port. Authentication goes through
 * the same {@link DeviceAdmission} as the JSON gateway (caps, throttle, deadline, credential check); an
 * authenticated device becomes one more {@link ThingerSession} in the hub.
 */
export class ThingerGateway {
  readonly wss: WebSocketServer;
  private readonly servers: NetServer[] = [];
  private closing = false;
  private readonly keepaliveTimeoutMs: number;

  constructor(
    private readonly hub: Hub,
    private readonly admission: DeviceAdmission,
    private readonly logger: Logger,
    private readonly options: ThingerGatewayOptions,
  ) {
    this.keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? THINGER_KEEPALIVE_TIMEOUT_MS;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: MAX_FRAME_BYTES + 16,
      perMessageDeflate: false,
      ...({ maxFragments: 1024, maxBufferedChunks: 4096 } as object),
      // The IOTMP Linux client sends its binary messages in TEXT frames: accepted on this server only.
      skipUTF8Validation: true,
      autoPong: true,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has("iotmp") ? "iotmp" : false),
    });
  }

  /** Opens the configured TCP/TLS listeners (TLS ones only with `tls`); resolves with the bound ports. */
  async listen(config: ThingerListenConfig, host: string, tls: TlsMaterial | undefined): Promise<ThingerPorts> {
    const ports: ThingerPorts = {};
    const open = async (name: keyof ThingerPorts, port: number | null, secure: boolean) => {
      if (port === null || (secure && !tls)) return;
      const server = secure
        ? createTlsServer({ cert: tls!.cert, key: tls!.key, handshakeTimeout: this.admission.authDeadlineMs }, (s) => this.acceptSocket(s))
        : createTcpServer((s) => this.acceptSocket(s));
      server.on("error", (err) => this.logger.warn({ err, listener: name }, "thinger listener error"));
      if (secure) server.on("tlsClientError", () => {});
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      this.servers.push(server);
      const addr = server.address();
      ports[name] = typeof addr === "object" && addr ? addr.port : port;
    };
    await open("thinger", config.legacyPort, false);
    await open("thinger_tls", config.legacyTlsPort, true);
    await open("iotmp", config.iotmpPort, false);
    await open("iotmp_tls", config.iotmpTlsPort, true);
    return ports;
  }

  /** `GET /iotmp` upgrades (subprotocol `iotmp`). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const admitted = admitUpgrade(req, socket, this.closing, this.admission, this.options);
    if (!admitted) return;
    const { ip, hold } = admitted;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(new WebSocketLink(ws, ip), hold));
  }

  private acceptSocket(socket: Socket): void {
    const link = new SocketLink(socket, socket.remoteAddress ?? "unknown");
    if (this.closing) {
      link.destroy();
      return;
    }
    const hold = this.admission.admit(link.ip);
    if (isRefusal(hold)) {
      link.destroy();
      return;
    }
    this.accept(link, hold);
  }

  /** One connection: authenticate by its first frame within the deadline, then hand it to a session. */
  private accept(link: DeviceLink, hold: AdmissionHold): void {
    const ip = link.ip;
    const release = () => hold.release();
    const reader = new FrameReader({ maxFrameBytes: MAX_FRAME_BYTES });
    let session: ThingerSession | undefined;
    let state: "auth" | "checking" | "session" | "closed" = "auth";
    let rxBeforeSession = 0;
    const timers = this.options.timers ?? systemTimers;
    const fail = (failedAttempt: boolean, answer?: Uint8Array) => {
      if (state === "closed") return;
      state = "closed";
      timers.clearTimeout(deadline);
      if (failedAttempt) hold.failed();
      release();
      if (answer) {
        link.write(answer);
        link.end();
      } else {
        link.destroy();
      }
    };
    // A socket that never authenticates counts as a failed attempt: idle sockets are throttled too.
    const deadline = timers.setTimeout(() => fail(true), this.admission.authDeadlineMs);
    deadline.unref?.();
    link.onClose(() => {
      if (state !== "session") fail(false);
      state = "closed";
      if (session) {
        this.hub.unregister(session);
        this.admission.touch(session.key);
      }
    });
    link.onData((chunk) => {
      if (state === "closed") return;
      if (session) session.received(chunk.length);
      else rxBeforeSession += chunk.length;
      let frames: Frame[];
      try {
        if (state === "auth" && reader.bufferedBytes === 0 && !detectProtocol(chunk[0]!)) return fail(true);
        frames = reader.push(chunk);
      } catch {
        // Hostile or broken framing: this connection only.
        if (session) session.terminate();
        else fail(true);
        return;
      }
      for (const frame of frames) {
        if (state === "auth") {
          state = "checking";
          this.authenticate(link, frame, ip).then(
            (result) => {
              if (state !== "checking") {
                if (result.ok) result.admitting.done();
                return;
              }
              if (!result.ok) return fail(true, result.answer);
              timers.clearTimeout(deadline);
              release();
              state = "session";
              session = result.open();
              session.rxBytes = rxBeforeSession;
              this.start(session, result.admitting);
            },
            (err: unknown) => {
              this.logger.error({ err }, "device lookup failed");
              fail(false);
            },
          );
        } else if (state === "session" && session) {
          try {
            session.handleFrame(frame);
          } catch {
            session.terminate();
            return;
          }
        }
        // Frames a device sends while its credentials are being checked are dropped (the clients send none).
      }
    });
  }

  private async authenticate(link: DeviceLink, frame: Frame, ip: string): Promise<
    /** `open()` answers the device and makes its session (only while the connection is still waiting for it). */
    { ok: true; open: () => ThingerSession; admitting: Admitting } | { ok: false; answer?: Uint8Array }
  > {
    const sessionOptions = {
      limits: { maxInflight: this.options.limits.maxInflightPerDevice, maxBufferedBytes: this.options.limits.maxDeviceBufferedBytes },
      keepaliveTimeoutMs: this.keepaliveTimeoutMs,
      events: this.hub,
      requests: this.options.requests,
      timers: this.options.timers,
    };
    if (frame.type === LEGACY_FRAME.MESSAGE) {
      const refuse = encodeLegacyMessage({ flag: LEGACY_FLAG.REQUEST_ERROR });
      let creds: Credentials | undefined;
      try {
        const m = decodeLegacyBody(frame.body);
        creds = m.flag === LEGACY_FLAG.AUTH ? parseCredentials(m.resource) : undefined;
      } catch {
        creds = undefined;
      }
      if (!creds) return { ok: false, answer: refuse };
      const admitting = await this.admission.verifyAdmitting(this.hub, creds.user, creds.device, creds.credentials, ip);
      if (!admitting) return { ok: false, answer: refuse };
      const { user, device } = creds;
      return {
        ok: true,
        admitting,
        open: () => {
          const ok = encodeLegacyMessage({ flag: LEGACY_FLAG.REQUEST_OK });
          link.write(ok);
          const session = new LegacySession(user, device, link, sessionOptions);
          session.txBytes += ok.length;
          return session;
        },
      };
    }
    if (frame.type === IOTMP_TYPE.CONNECT) {
      let dialect: IotmpDialect | undefined;
      let creds: Credentials | undefined;
      let streamId: number | undefined;
      try {
        dialect = detectIotmpDialect(frame.body);
        const m = decodeIotmpFrame(frame, dialect);
        streamId = m.streamId;
        creds = parseCredentials(m.payload);
      } catch {
        creds = undefined;
      }
      if (!creds || dialect === undefined) {
        return { ok: false, ...(dialect !== undefined ? { answer: encodeIotmpMessage({ type: IOTMP_TYPE.ERROR, ...(streamId ? { streamId } : {}) }, dialect) } : {}) };
      }
      const idField = streamId ? { streamId } : {};
      const admitting = await this.admission.verifyAdmitting(this.hub, creds.user, creds.device, creds.credentials, ip);
      if (!admitting) {
        return { ok: false, answer: encodeIotmpMessage({ type: IOTMP_TYPE.ERROR, ...idField }, dialect) };
      }
      const { user, device } = creds;
      const d = dialect;
      return {
        ok: true,
        admitting,
        open: () => {
          const ok = encodeIotmpMessage({ type: IOTMP_TYPE.OK, ...idField }, d);
          link.write(ok);
          const session = new IotmpSession(user, device, link, sessionOptions, d);
          session.txBytes += ok.length;
          return session;
        },
      };
    }
    return { ok: false };
  }

  /**
   * Learns the resources, then goes online (replacing any other session of the device, on any protocol) unless the
   * device's sessions were closed since its credentials were checked (`admitting`): then it is closed the same way.
   */
  private start(session: ThingerSession, admitting: Admitting): void {
    const online = () => {
      const closed = admitting.closedWith;
      admitting.done();
      if (session.isClosed) return;
      if (closed) {
        session.close(closed.code, closed.reason);
        return;
      }
      this.hub.register(session);
      this.admission.touch(session.key);
    };
    session.describe(FIRST_DESCRIBE_MS).then(online, (err: unknown) => {
      this.logger.info({ user: session.user, device: session.device, err: (err as Error).message }, "thinger device did not describe its resources");
      online();
      // Kind checks need the list: ask again in the background (calls, streams and /api also ask on demand).
      session.retryDescribe();
    });
  }

  /** Stops accepting (the ports are free on return); existing sessions are closed by the hub. */
  close(): void {
    this.closing = true;
    this.wss.close();
    for (const s of this.servers) s.close();
    this.servers.length = 0;
  }
}

/** `[user, device, credential]` with the same rules as the JSON `connect` frame. */
function parseCredentials(v: unknown): Credentials | undefined {
  if (!Array.isArray(v) || v.length !== 3) return undefined;
  const [user, device, credentials] = v as unknown[];
  if (typeof user !== "string" || !NAME_RE.test(user)) return undefined;
  if (typeof device !== "string" || !DEVICE_RE.test(device)) return undefined;
  if (typeof credentials !== "string" || credentials.length === 0 || credentials.length > 256) return undefined;
  return { user, device, credentials };
}

