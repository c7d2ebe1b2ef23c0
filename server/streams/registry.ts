import { AppError } from "../errors.js";
import type { Limits } from "../config.js";
import type { Logger } from "../log.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { Metrics } from "../metrics.js";
import type { StreamRequest } from "./http.js";
import { OpenStream } from "./open-stream.js";
import type { StreamKind, StreamOptions } from "./options.js";
import type { Timers } from "../timers.js";

export interface RegistryDeps {
  limits: Pick<Limits, "maxStreamsPerUser" | "sseHeartbeatMs">;
  options: Pick<StreamOptions, "retryMs" | "maxBufferedBytes">;
  logger: Logger;
  authenticator: Authenticator;
  metrics: Metrics;
  /** The SSE heartbeats' clock. */
  timers: Timers;
  /** Told once a stream is open (StreamService re-emits it as `opened`). */
  onOpened?: (e: StreamOpened) => void;
  /** Told after a stream closed and released its slot (StreamService re-emits it as `closed`). */
  onClosed?: (e: StreamClosed) => void;
}

export interface StreamOpened {
  kind: StreamKind;
  user: string;
}

/** A stream that ended, after its account slot was freed. */
export interface StreamClosed extends StreamOpened {
  reason: string;
}

/**
 * Every open stream of this process, whatever its kind: the per-account and per-device-token caps, the
 * revocation re-checks (by cache key), metrics and logs. The kinds (stats, events, resources) open their
 * streams here and wire them to their topics.
 */
export class StreamRegistry {
  private readonly open = new Set<OpenStream>();
  private readonly perUser = new Map<string, number>();
  /** Open streams per device token (jti): each gets half of the account's slots (rounded up). */
  private readonly perToken = new Map<string, number>();
  private readonly byKey = new Map<string, Set<OpenStream>>();
  private closing = false;

  constructor(private readonly deps: RegistryDeps) {}

  get size(): number {
    return this.open.size;
  }

  /** Opens an SSE response for `user` after the caps; the caller wires it to its topic. */
  start(req: StreamRequest, kind: StreamKind, user: string, allowed: (p: Principal) => boolean): OpenStream {
    const { limits, options, logger } = this.deps;
    if (this.closing) throw new AppError("service_unavailable", "server is shutting down", { headers: { "Retry-After": "5" } });
    const { principal, token } = req;
    const count = this.perUser.get(user) ?? 0;
    if (count >= limits.maxStreamsPerUser) {
      throw new AppError("too_many_streams", `at most ${limits.maxStreamsPerUser} open streams per account`, { headers: { "Retry-After": "5" } });
    }
    // One device token (handed to a dashboard or a third party) gets a share of the account's slots, not all.
    const tokenKey = principal.kind === "device_token" ? principal.tokenRef : undefined;
    const tokenShare = Math.ceil(limits.maxStreamsPerUser / 2);
    if (tokenKey !== undefined && (this.perToken.get(tokenKey) ?? 0) >= tokenShare) {
      throw new AppError("too_many_streams", `at most ${tokenShare} open streams per device token (half of the account's ${limits.maxStreamsPerUser})`, { headers: { "Retry-After": "5" } });
    }
    let stream: OpenStream | undefined;
    const conn = req.open({
      heartbeatMs: limits.sseHeartbeatMs,
      retryMs: options.retryMs,
      maxBufferedBytes: options.maxBufferedBytes,
      timers: this.deps.timers,
      onHeartbeat: () => void stream?.recheck().catch((err: unknown) => logger.error({ err }, "stream token re-check failed")),
    });
    stream = new OpenStream(kind, user, conn, token, principal, allowed, this.deps.authenticator, options.maxBufferedBytes, logger, this.deps.timers);
    const s = stream;
    this.add(s, tokenKey);
    this.deps.metrics.streams.inc({ kind });
    const reqId = req.requestId;
    logger.debug({ reqId, kind, user }, "stream opened");
    // Registered first, so it runs before the topic's own close listener.
    conn.onClose((reason) => {
      this.remove(s, tokenKey);
      this.deps.metrics.streams.dec({ kind });
      logger.info({ reqId, kind, user, reason }, "stream closed");
      this.deps.onClosed?.({ kind, user, reason });
    });
    this.deps.onOpened?.({ kind, user });
    // A revocation between the token's check and now found no stream to end: check again at once.
    if (req.authVersion !== this.deps.authenticator.cache.version) {
      s.recheck().catch((err: unknown) => logger.error({ err }, "stream token re-check failed"));
    }
    return s;
  }

  /** A revocation-cache key was invalidated: the streams opened with it re-check their token. */
  invalidated(key: string): void {
    const streams = this.byKey.get(key);
    if (!streams) return;
    for (const s of [...streams]) {
      s.recheck().catch((err: unknown) => this.deps.logger.error({ err }, "stream token re-check failed"));
    }
  }

  /** Ends every stream (final `end` event, reason `shutdown`) and refuses new ones. */
  closeAll(): void {
    this.closing = true;
    for (const s of [...this.open]) s.conn.end("shutdown");
  }

  private add(s: OpenStream, tokenKey: string | undefined): void {
    this.open.add(s);
    this.perUser.set(s.user, (this.perUser.get(s.user) ?? 0) + 1);
    if (tokenKey !== undefined) this.perToken.set(tokenKey, (this.perToken.get(tokenKey) ?? 0) + 1);
    for (const k of s.keys) {
      let set = this.byKey.get(k);
      if (!set) this.byKey.set(k, (set = new Set()));
      set.add(s);
    }
  }

  private remove(s: OpenStream, tokenKey: string | undefined): void {
    this.open.delete(s);
    decrement(this.perUser, s.user);
    if (tokenKey !== undefined) decrement(this.perToken, tokenKey);
    for (const k of s.keys) {
      const set = this.byKey.get(k);
      set?.delete(s);
      if (set?.size === 0) this.byKey.delete(k);
    }
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n <= 0) counts.delete(key);
  else counts.set(key, n);
}

/**
 * Hub and cache listeners run inside someone else's emit (a device's message handler, a revocation): an
 * exception there would reach the process's uncaught handler. None may escape. `logger` is read when needed, so
 * a class field may wrap its listener before the constructor has run.
 */
export function guarded<A extends unknown[]>(logger: () => Logger, what: string, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      logger().error({ err }, `stream ${what} listener failed`);
    }
  };
}
