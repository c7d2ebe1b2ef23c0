import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import { cacheKey, type Authenticator } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { Metrics } from "../metrics.js";
import { EventLog, ResumeBudget, type StreamEvent } from "./log.js";
import { gcd, SampleScheduler } from "./sampling.js";
import { SseConnection } from "./sse.js";

export interface StreamDeps {
  config: Readonly<Config>;
  logger: Logger;
  hub: Hub;
  authenticator: Authenticator;
  metrics: Metrics;
  /** Device registry lookup (resource streams answer 404 device_not_found for unknown devices). */
  devices: { exists(user: string, device: string): Promise<boolean> };
  /** Tuning; defaults in {@link STREAM_DEFAULTS}. */
  options?: Partial<StreamOptions>;
}

export interface StreamOptions {
  /** `retry:` sent to EventSource clients (ms). */
  retryMs: number;
  /** Shortest gap between two stats updates caused by byte-counter changes (ms). */
  statsThrottleMs: number;
  /** Events kept per topic for `Last-Event-ID` resume. */
  bufferSize: number;
  /** Bytes (wire size) kept per topic for resume; the oldest events leave first. */
  bufferBytes: number;
  /** Events larger than this (wire size) are delivered live but never kept for resume. */
  maxEventBytes: number;
  /** Bytes kept for resume across all topics together; the oldest events (of any topic) leave first. */
  totalBufferBytes: number;
  /** How long a topic nobody listens to keeps its buffer (and keeps recording) for resuming clients (ms). */
  retainMs: number;
  /** Most idle topics retained at once; beyond this an idle topic is dropped at once. */
  maxRetainedTopics: number;
  /** Bytes queued for a client that does not read before its stream is dropped. */
  maxBufferedBytes: number;
}

export const STREAM_DEFAULTS: Readonly<StreamOptions> = Object.freeze({
  retryMs: 3000,
  statsThrottleMs: 1000,
  bufferSize: 100,
  bufferBytes: 256 * 1024,
  maxEventBytes: 64 * 1024,
  totalBufferBytes: 32 * 1024 * 1024,
  retainMs: 60_000,
  maxRetainedTopics: 1000,
  maxBufferedBytes: 1024 * 1024,
});

/** Shortest and longest `?interval=` of resource streams (ms). Tenths of a second keep the GCD ≥ 100 ms. */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 86_400_000;

export type StreamKind = "stats" | "resource" | "events";

/**
 * What resource streams need from cluster mode (server/cluster/bridge.ts): tell the node holding a device what
 * this node's subscribers want, and hear what other nodes' subscribers want for devices held here. Values of a
 * device held elsewhere arrive as that node's `data` events re-emitted on the local hub.
 */
export interface StreamCluster {
  /** This node's wish for one device resource: the GCD of its subscribers' intervals, null when none are left. */
  announceStream(user: string, device: string, resource: string, interval: number | null): void;
  streamSink: { setRemoteInterval(user: string, device: string, resource: string, node: string, interval: number | null): void } | undefined;
}

/** Parses `?interval=` (seconds, at most one decimal; 0 = only values the device pushes) into ms. */
export function parseInterval(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "string" || !/^\d{1,6}(\.\d)?$/.test(value)) {
    throw new AppError("invalid_request", '"interval" must be a number of seconds with at most one decimal (0 = device-pushed values only)');
  }
  const ms = Math.round(Number(value) * 1000);
  if (ms !== 0 && (ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS)) {
    throw new AppError("invalid_request", `"interval" must be 0 or from ${MIN_INTERVAL_MS / 1000} to ${MAX_INTERVAL_MS / 1000} seconds`);
  }
  return ms;
}

/** Whether the stream's (current) principal may see one event; per-event checks of `*` streams. */
type Admit = (p: Principal) => boolean;

/** One open SSE response and who opened it. */
class OpenStream {
  /** Revocation-cache keys whose invalidation makes this stream re-check its token. */
  readonly keys: string[];
  /** The token's permissions as last checked: per-event filters use these. */
  private principal: Principal;
  private expiryTimer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private recheckAgain = false;
  /** Events that arrived while a re-check was in flight, delivered (or not) under its outcome. */
  private held: Array<{ ev: StreamEvent; admit: Admit | undefined }> = [];
  private heldBytes = 0;

  constructor(
    readonly kind: StreamKind,
    readonly user: string,
    readonly conn: SseConnection,
    private readonly token: string,
    principal: Principal,
    /** Whether a (re-authenticated) principal may still read this stream. */
    private readonly allowed: (p: Principal) => boolean,
    private readonly authenticator: Authenticator,
    /** Most bytes held during a re-check before the stream is dropped as if it were a slow reader. */
    private readonly maxHeldBytes: number,
  ) {
    this.principal = principal;
    const ref = principal.kind === "session" ? cacheKey.family(principal.tokenRef)
      : principal.kind === "device_token" ? cacheKey.deviceToken(principal.tokenRef) : cacheKey.userToken(principal.tokenRef);
    this.keys = [ref, cacheKey.user(principal.user)];
    this.armExpiry(principal.expiresAt);
    conn.onClose(() => {
      clearTimeout(this.expiryTimer);
      this.held = [];
      this.heldBytes = 0;
    });
  }

  /**
   * Sends one event if the stream's principal admits it. While a re-check is in flight (a token edited or
   * revoked a moment ago) the event waits for its outcome, so it is judged by the permissions in force now.
   */
  deliver(ev: StreamEvent, admit?: Admit): void {
    if (this.conn.isClosed) return;
    if (this.checking) {
      this.heldBytes += ev.bytes;
      if (this.heldBytes > this.maxHeldBytes) {
        this.conn.abort("slow_consumer");
        return;
      }
      this.held.push({ ev, admit });
      return;
    }
    if (admit && !admit(this.principal)) return;
    this.conn.sendText(ev.id, ev.text);
  }

  private flushHeld(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const h of held) this.deliver(h.ev, h.admit);
  }

  /** Re-authenticates the token (revocation, expiry, changed permissions); ends the stream if it no longer holds. */
  recheck(): Promise<void> {
    if (this.conn.isClosed) return Promise.resolve();
    if (this.checking) {
      // An invalidation while a check is in flight may have raced it: check once more afterwards.
      this.recheckAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.recheckAgain = false;
        let p: Principal;
        try {
          p = await this.authenticator.authenticate(this.token);
        } catch {
          // A re-check (heartbeat, invalidation) that lands just after the expiry is an expiry, not a revocation.
          const exp = this.principal.expiresAt;
          this.conn.end(exp !== null && Date.now() >= exp ? "token_expired" : "token_revoked");
          return;
        }
        if (!this.allowed(p)) {
          this.conn.end("forbidden");
          return;
        }
        this.principal = p;
        this.armExpiry(p.expiresAt);
      } while (this.recheckAgain && !this.conn.isClosed);
    })().finally(() => {
      this.checking = undefined;
      // Under the new permissions (or dropped with the stream if it ended).
      this.flushHeld();
    });
    return this.checking;
  }

  private armExpiry(expiresAt: number | null): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (expiresAt === null || this.conn.isClosed) return;
    const left = expiresAt - Date.now();
    if (left <= 0) {
      this.conn.end("token_expired");
      return;
    }
    // setTimeout holds at most 2^31-1 ms (~24.8 days); a longer-lived token re-arms on the way.
    this.expiryTimer = setTimeout(() => this.armExpiry(expiresAt), Math.min(left, 2 ** 31 - 1));
    this.expiryTimer.unref();
  }
}

/** A log plus its subscribers; kept a while after the last one leaves so reconnecting clients can resume. */
class Topic<S, M = unknown> {
  readonly subs = new Set<S>();
  idleTimer: NodeJS.Timeout | undefined;
  /** Until when (ms) the topic records without a local subscriber: the resume window after the last left. */
  recordUntil = 0;
  constructor(readonly log: EventLog<M>) {}
  get idle(): boolean {
    return this.subs.size === 0;
  }
  /** Whether an event now is worth buffering: someone listens, or someone who left may still resume. */
  get recording(): boolean {
    return this.subs.size > 0 || Date.now() < this.recordUntil;
  }
}

interface EventSub {
  stream: OpenStream;
  device: string | undefined;
}

/** What account-event filters need. */
interface EventMeta {
  device: string;
}

/** What resource-stream sampling needs. */
interface ValueMeta {
  ts: number;
}

interface StatsTopic {
  readonly user: string;
  readonly device: string;
  readonly log: EventLog;
  readonly subs: Set<OpenStream>;
  lastSentAt: number;
  lastBytes: string;
  timer: NodeJS.Timeout | undefined;
}

class ResourceTopic extends Topic<OpenStream, ValueMeta> {
  readonly scheduler = new SampleScheduler<OpenStream>();
  /** Intervals other cluster nodes asked for (by node id), for a device held here. */
  readonly remote = new Map<string, number>();
  constructor(log: EventLog<ValueMeta>, readonly user: string, readonly device: string, readonly resource: string) {
    super(log);
  }
  override get idle(): boolean {
    return this.subs.size === 0 && this.remote.size === 0;
  }
  /** Interval to ask the device for: GCD over local subscribers and other nodes' wishes. */
  get interval(): number {
    let g = this.scheduler.gcd;
    for (const i of this.remote.values()) g = gcd(g, i);
    return g;
  }
}

/**
 * Server-Sent Event streams: a device's stats, a device resource's values, an account's device events.
 *
 * Every stream counts against the account's cap, re-checks its token on every revocation in this process and
 * on every heartbeat, ends when the token expires, and releases everything it holds (hub listeners, timers,
 * device subscriptions) when the client goes away. Resource streams drive the device: it is asked to sample
 * at the GCD of the subscribers' intervals, asked again after every reconnect, and told to stop when the last
 * subscriber leaves. See docs/streams.md.
 */
export class StreamService {
  private readonly options: Readonly<StreamOptions>;
  private readonly open = new Set<OpenStream>();
  private readonly perUser = new Map<string, number>();
  private readonly byKey = new Map<string, Set<OpenStream>>();
  private readonly events = new Map<string, Topic<EventSub, EventMeta>>();
  private readonly resources = new Map<string, ResourceTopic>();
  /** Resource topics by `user/device`, to re-subscribe after a device reconnects. */
  private readonly resourcesByDevice = new Map<string, Set<ResourceTopic>>();
  private readonly stats = new Map<string, StatsTopic>();
  private retained = 0;
  /** Bytes of all topics' resume buffers together. */
  private readonly budget: ResumeBudget;
  private closing = false;
  private cluster: StreamCluster | undefined;
  private readonly unsubscribeCache: () => void;

  constructor(protected readonly deps: StreamDeps) {
    this.options = Object.freeze({ ...STREAM_DEFAULTS, ...deps.options });
    for (const k of ["retryMs", "statsThrottleMs", "bufferSize", "bufferBytes", "maxEventBytes", "totalBufferBytes", "maxBufferedBytes"] as const) {
      if (!Number.isInteger(this.options[k]) || this.options[k] < 1) throw new RangeError(`"${k}" must be a positive integer`);
    }
    this.budget = new ResumeBudget(this.options.totalBufferBytes);
    deps.hub.on("online", this.onOnline);
    deps.hub.on("offline", this.onOffline);
    deps.hub.on("data", this.onData);
    this.unsubscribeCache = deps.authenticator.cache.onInvalidate(this.onInvalidate);
  }

  /** Joins cluster mode: resource streams then reach devices held by other nodes, and serve theirs. */
  attachCluster(cluster: StreamCluster): void {
    this.cluster = cluster;
    cluster.streamSink = this;
  }

  /** Open streams in this process (all accounts, all kinds). */
  get openCount(): number {
    return this.open.size;
  }

  /** Bytes and events held in all topics' resume buffers (bounded by `totalBufferBytes`). */
  get resumeBuffer(): { bytes: number; events: number; topics: number } {
    return { bytes: this.budget.bytes, events: this.budget.count, topics: this.events.size + this.resources.size };
  }

  private newLog<M>(): EventLog<M> {
    const o = this.options;
    return new EventLog<M>({ maxEvents: o.bufferSize, maxBytes: o.bufferBytes, maxEventBytes: o.maxEventBytes, budget: this.budget });
  }

  /**
   * Hub and cache listeners run inside someone else's emit (a device's message handler, a revocation): an
   * exception there would reach the process's uncaught handler. None may escape.
   */
  private guard<A extends unknown[]>(what: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        this.deps.logger.error({ err }, `stream ${what} listener failed`);
      }
    };
  }

  // ---------------------------------------------------------------------------------------------- stats

  /** `GET /v1/users/{user}/devices/{device}/stats` as SSE: the current stats at once, then every change. */
  async statsStream(ctx: Context, user: string, device: string): Promise<void> {
    const stream = this.start(ctx, "stats", user, (p) => p.user === user && p.can("GetDeviceStats", { device }));
    const key = `${user}/${device}`;
    let topic = this.stats.get(key);
    if (!topic) {
      const s = this.deps.hub.stats(user, device);
      topic = { user, device, log: new EventLog(1), subs: new Set(), lastSentAt: 0, lastBytes: `${s.rx_bytes}/${s.tx_bytes}`, timer: undefined };
      this.stats.set(key, topic);
      if (this.stats.size === 1) this.deps.hub.on("traffic", this.onTraffic);
    }
    const t = topic;
    t.subs.add(stream);
    // Stats are state, not a log: the current snapshot supersedes anything missed, so Last-Event-ID is not used.
    stream.conn.send({ id: t.log.lastId, data: this.deps.hub.stats(user, device) });
    stream.conn.onClose(() => {
      t.subs.delete(stream);
      if (t.subs.size > 0 || this.stats.get(key) !== t) return;
      clearTimeout(t.timer);
      this.stats.delete(key);
      if (this.stats.size === 0) this.deps.hub.off("traffic", this.onTraffic);
    });
  }

  private publishStats(t: StatsTopic): void {
    clearTimeout(t.timer);
    t.timer = undefined;
    const data = this.deps.hub.stats(t.user, t.device);
    t.lastSentAt = Date.now();
    t.lastBytes = `${data.rx_bytes}/${data.tx_bytes}`;
    const ev = t.log.append(undefined, data);
    for (const s of t.subs) s.deliver(ev);
  }

  private readonly onTraffic = this.guard("traffic", ({ user, device }: { user: string; device: string }): void => {
    const t = this.stats.get(`${user}/${device}`);
    if (!t || t.timer) return;
    // Byte counters change on every frame: coalesce to at most one update per statsThrottleMs.
    const wait = Math.max(0, t.lastSentAt + this.options.statsThrottleMs - Date.now());
    t.timer = setTimeout(() => {
      t.timer = undefined;
      const s = this.deps.hub.stats(t.user, t.device);
      try {
        if (`${s.rx_bytes}/${s.tx_bytes}` !== t.lastBytes) this.publishStats(t);
      } catch (err) {
        this.deps.logger.error({ err }, "stream stats update failed");
      }
    }, wait);
    t.timer.unref();
  });

  // --------------------------------------------------------------------------------------------- events

  /**
   * `GET /v1/users/{user}/events`: `online` and `offline` events of the account's devices, optionally of one
   * device. Resumes from `Last-Event-ID` while the account's buffer still holds the events after it.
   *
   * The route lets the stream open when the token allows ReadEvents on at least one device (`*`); every
   * event, live or replayed, then goes through `can("ReadEvents", { device })` with the token's current
   * permissions, so a device the token denies never shows, even after an edit of the token.
   */
  async eventStream(ctx: Context, user: string, device: string | undefined): Promise<void> {
    const stream = this.start(ctx, "events", user, (p) => p.user === user && p.can("ReadEvents", { device: device ?? "*" }));
    const topic = this.acquire(this.events, user, () => new Topic<EventSub, EventMeta>(this.newLog<EventMeta>()));
    const sub: EventSub = { stream, device };
    stream.conn.lastId = topic.log.lastId;
    for (const ev of topic.log.since(ctx.get("Last-Event-ID")) ?? []) {
      if (device === undefined || ev.meta.device === device) stream.deliver(ev, readEvents(ev.meta.device));
    }
    topic.subs.add(sub);
    stream.conn.onClose(() => {
      topic.subs.delete(sub);
      if (topic.subs.size === 0) topic.recordUntil = Date.now() + this.options.retainMs;
      this.release(this.events, user, topic);
    });
  }

  /**
   * An account event that is not a device's online/offline (issue 18: `call`, a queued call that finished).
   * Shown to streams whose token may read the device's events, like the others.
   */
  accountEvent(user: string, type: "call", data: { device: string } & Record<string, unknown>): void {
    try {
      this.publishEvent(user, type, data);
    } catch (err) {
      this.deps.logger.warn({ err, user }, "account event dropped");
    }
  }

  private publishEvent(user: string, type: "online" | "offline" | "call", data: { device: string } & Record<string, unknown>): void {
    const topic = this.events.get(user);
    if (!topic) return;
    if (!topic.recording) {
      topic.log.skip();
      return;
    }
    // Unnamed like every value: the kind travels in the data (`type`), so onmessage can tell them apart.
    const ev = topic.log.append(undefined, { type, ...data }, { device: data.device });
    const admit = readEvents(data.device);
    for (const sub of topic.subs) {
      if (sub.device === undefined || sub.device === data.device) sub.stream.deliver(ev, admit);
    }
  }

  // ------------------------------------------------------------------------------------------ resources

  /**
   * `GET /v2/users/{user}/devices/{device}/{resource}` as SSE, `?interval=` seconds (0 or absent: only values
   * the device pushes). Authorization was checked by the relay route. The device may be offline: the stream
   * waits for it and subscribes whenever it (re)connects.
   */
  async resourceStream(ctx: Context, user: string, device: string, resource: string): Promise<void> {
    const intervalMs = parseInterval(ctx.query.interval);
    const session = this.deps.hub.get(user, device);
    if (!session && !(await this.deps.devices.exists(user, device))) throw new AppError("device_not_found");
    const kind = session?.resources?.get(resource);
    if (session?.resources && kind === undefined) throw new AppError("resource_not_found", `device has no resource "${resource}"`);
    if (kind === "input" || kind === "run") throw new AppError("invalid_request", `"${resource}" is ${kind === "input" ? "an" : "a"} ${kind} resource: only output and io resources can be streamed`);
    const stream = this.start(ctx, "resource", user, (p) => p.user === user && p.can("AccessDeviceResources", { device, resource }));

    const key = `${user}/${device}/${resource}`;
    const topic = this.resourceTopic(user, device, resource);
    stream.conn.lastId = topic.log.lastId;
    const localBefore = topic.scheduler.gcd;
    topic.scheduler.add(stream, intervalMs);
    for (const ev of topic.log.since(ctx.get("Last-Event-ID")) ?? []) {
      if (topic.scheduler.admit(stream, ev.meta.ts, topic.interval)) stream.deliver(ev);
    }
    topic.subs.add(stream);
    // Sent on every join, even when the GCD is unchanged: the device answers a `stream` frame with a sample at
    // once, so the new subscriber gets a value now instead of up to one interval later.
    this.sendStream(topic);
    if (topic.subs.size === 1 || topic.scheduler.gcd !== localBefore) this.announce(topic);
    stream.conn.onClose(() => {
      topic.subs.delete(stream);
      if (topic.subs.size === 0) topic.recordUntil = Date.now() + this.options.retainMs;
      const before = topic.interval;
      const localChanged = topic.scheduler.remove(stream);
      if (topic.subs.size === 0 || localChanged) this.announce(topic);
      if (topic.idle) this.sendUnstream(topic);
      else if (topic.interval !== before) this.sendStream(topic);
      this.release(this.resources, key, topic);
    });
  }

  private resourceTopic(user: string, device: string, resource: string): ResourceTopic {
    return this.acquire(this.resources, `${user}/${device}/${resource}`, () => {
      const t = new ResourceTopic(this.newLog<ValueMeta>(), user, device, resource);
      const dk = `${user}/${device}`;
      let set = this.resourcesByDevice.get(dk);
      if (!set) this.resourcesByDevice.set(dk, (set = new Set()));
      set.add(t);
      return t;
    });
  }

  /**
   * Cluster: another node's subscribers want `interval` ms of a resource of a device held here (null: none
   * left there). Combined with the local subscribers into the one interval sent to the device.
   */
  setRemoteInterval(user: string, device: string, resource: string, node: string, interval: number | null): void {
    if (this.closing || typeof node !== "string" || node.length > 64) return;
    if (interval !== null && (!Number.isInteger(interval) || interval < 0 || interval > MAX_INTERVAL_MS)) return;
    const key = `${user}/${device}/${resource}`;
    if (interval === null && !this.resources.get(key)?.remote.has(node)) return;
    const topic = this.resourceTopic(user, device, resource);
    const before = topic.idle ? -1 : topic.interval;
    if (interval === null) topic.remote.delete(node);
    else topic.remote.set(node, interval);
    if (topic.idle) this.sendUnstream(topic);
    else if (topic.interval !== before) this.sendStream(topic);
    this.release(this.resources, key, topic);
  }

  private sendStream(t: ResourceTopic): void {
    if (t.idle) return;
    this.deps.hub.get(t.user, t.device)?.send(JSON.stringify({ type: "stream", resource: t.resource, interval: t.interval }));
  }

  /** Cluster: tells the node holding the device what this node's subscribers want. */
  private announce(t: ResourceTopic): void {
    this.cluster?.announceStream(t.user, t.device, t.resource, t.subs.size > 0 ? t.scheduler.gcd : null);
  }

  private sendUnstream(t: ResourceTopic): void {
    if (this.closing) return;
    this.deps.hub.get(t.user, t.device)?.send(JSON.stringify({ type: "unstream", resource: t.resource }));
  }

  private readonly onData = this.guard("data", ({ user, device, resource, out, ts }: { user: string; device: string; resource: string; out: unknown; ts: number }): void => {
    const topic = this.resources.get(`${user}/${device}/${resource}`);
    if (!topic) return;
    // A topic held only for other nodes' subscribers (cluster) has nobody here to resume: nothing to record.
    if (!topic.recording) {
      topic.log.skip();
      return;
    }
    let ev: StreamEvent<ValueMeta>;
    try {
      ev = topic.log.append(undefined, { out: out === undefined ? null : out, ts }, { ts });
    } catch (err) {
      // JSON.stringify throws on values nested too deep (RangeError), BigInts, cycles. Dropped for every
      // subscriber; the value itself is never logged.
      this.deps.logger.warn({ user, device, resource, err: { type: (err as Error)?.name } }, "stream value dropped: it cannot be serialised");
      return;
    }
    for (const s of topic.scheduler.take(ts, topic.interval)) s.deliver(ev);
  });

  // ------------------------------------------------------------------------------------ shared plumbing

  private readonly onOnline = this.guard("online", (e: { user: string; device: string; ts: number; ip: string }): void => {
    const { user, device, ts, ip } = e;
    this.publishEvent(user, "online", { device, ts, ip });
    const st = this.stats.get(`${user}/${device}`);
    if (st) this.publishStats(st);
    const topics = this.resourcesByDevice.get(`${user}/${device}`);
    if (topics && (e as { remote?: boolean }).remote === true) {
      // Cluster: the device came up on another node. Tell that node what our subscribers want, and forget what
      // other nodes wished while it was held here: they re-announce to the new holder.
      for (const t of [...topics]) {
        t.remote.clear();
        if (t.subs.size > 0) this.announce(t);
        this.release(this.resources, `${t.user}/${t.device}/${t.resource}`, t);
      }
    } else if (topics) {
      // The hub announces a session before the gateway sends it `connected`; a device ignores frames before
      // that one, so the `stream` frames go out right after (same socket, same order).
      queueMicrotask(this.guard("online", () => {
        for (const t of topics) {
          t.scheduler.reset();
          this.sendStream(t);
        }
      }));
    }
  });

  private readonly onOffline = this.guard("offline", (e: { user: string; device: string; ts: number }): void => {
    const { user, device, ts } = e;
    this.publishEvent(user, "offline", { device, ts });
    const st = this.stats.get(`${user}/${device}`);
    if (st) this.publishStats(st);
    const topics = this.resourcesByDevice.get(`${user}/${device}`);
    if (topics && (e as { remote?: boolean }).remote !== true) {
      // Cluster: other nodes' wishes were for the session that just ended. They re-announce when the device
      // is back (they see its `online`), and a wish withdrawn meanwhile could not reach us: forget them all.
      for (const t of [...topics]) {
        if (t.remote.size === 0) continue;
        t.remote.clear();
        this.release(this.resources, `${t.user}/${t.device}/${t.resource}`, t);
      }
    }
  });

  private readonly onInvalidate = this.guard("invalidate", (key: string): void => {
    const streams = this.byKey.get(key);
    if (!streams) return;
    for (const s of [...streams]) {
      s.recheck().catch((err: unknown) => this.deps.logger.error({ err }, "stream token re-check failed"));
    }
  });

  /** Opens an SSE response for `user` after the per-account cap; the caller wires it to its topic. */
  private start(ctx: Context, kind: StreamKind, user: string, allowed: (p: Principal) => boolean): OpenStream {
    if (this.closing) throw new AppError("service_unavailable", "server is shutting down", { headers: { "Retry-After": "5" } });
    const principal = ctx.state.principal as Principal | undefined;
    const token = ctx.state.token as string | undefined;
    if (!principal || token === undefined) throw new Error("stream opened without requireAuth");
    const count = this.perUser.get(user) ?? 0;
    if (count >= this.deps.config.limits.maxStreamsPerUser) {
      throw new AppError("too_many_streams", `at most ${this.deps.config.limits.maxStreamsPerUser} open streams per account`, { headers: { "Retry-After": "5" } });
    }
    let stream: OpenStream | undefined;
    const conn = new SseConnection(ctx, {
      heartbeatMs: this.deps.config.limits.sseHeartbeatMs,
      retryMs: this.options.retryMs,
      maxBufferedBytes: this.options.maxBufferedBytes,
      onHeartbeat: () => void stream?.recheck().catch((err: unknown) => this.deps.logger.error({ err }, "stream token re-check failed")),
    });
    stream = new OpenStream(kind, user, conn, token, principal, allowed, this.deps.authenticator, this.options.maxBufferedBytes);
    const s = stream;
    this.open.add(s);
    this.perUser.set(user, count + 1);
    for (const k of s.keys) {
      let set = this.byKey.get(k);
      if (!set) this.byKey.set(k, (set = new Set()));
      set.add(s);
    }
    this.deps.metrics.streams.inc({ kind });
    const reqId = ctx.state.requestId as string | undefined;
    this.deps.logger.debug({ reqId, kind, user }, "stream opened");
    // Registered first, so it runs before the topic's own close listener.
    conn.onClose((reason) => {
      this.open.delete(s);
      const n = (this.perUser.get(user) ?? 1) - 1;
      if (n <= 0) this.perUser.delete(user);
      else this.perUser.set(user, n);
      for (const k of s.keys) {
        const set = this.byKey.get(k);
        set?.delete(s);
        if (set?.size === 0) this.byKey.delete(k);
      }
      this.deps.metrics.streams.dec({ kind });
      this.deps.logger.info({ reqId, kind, user, reason }, "stream closed");
    });
    return s;
  }

  /** Gets or creates a topic and cancels its retention timer. */
  private acquire<T extends Topic<unknown, unknown>>(map: Map<string, T>, key: string, create: () => T): T {
    let t = map.get(key);
    if (!t) map.set(key, (t = create()));
    if (t.idleTimer) {
      clearTimeout(t.idleTimer);
      t.idleTimer = undefined;
      this.retained--;
    }
    return t;
  }

  /** After a subscriber left: keeps an idle topic for `retainMs` (bounded in number), then drops it. */
  private release<T extends Topic<unknown, unknown>>(map: Map<string, T>, key: string, t: T): void {
    if (!t.idle || t.idleTimer || map.get(key) !== t) return;
    if (this.closing || this.retained >= this.options.maxRetainedTopics) {
      this.drop(map, key, t);
      return;
    }
    this.retained++;
    t.idleTimer = setTimeout(() => {
      t.idleTimer = undefined;
      this.retained--;
      if (t.idle) this.drop(map, key, t);
    }, this.options.retainMs);
    t.idleTimer.unref();
  }

  private drop<T extends Topic<unknown, unknown>>(map: Map<string, T>, key: string, t: T): void {
    if (map.get(key) !== t) return;
    map.delete(key);
    t.log.clear();
    if (t instanceof ResourceTopic) {
      const dk = `${t.user}/${t.device}`;
      const set = this.resourcesByDevice.get(dk);
      set?.delete(t);
      if (set?.size === 0) this.resourcesByDevice.delete(dk);
    }
  }

  /** Ends every stream (final `end` event, reason `shutdown`) and releases all listeners and timers. */
  async close(): Promise<void> {
    this.closing = true;
    for (const s of [...this.open]) s.conn.end("shutdown");
    for (const map of [this.events, this.resources] as Array<Map<string, Topic<unknown, unknown>>>) {
      for (const [key, t] of [...map]) {
        if (t.idleTimer) {
          clearTimeout(t.idleTimer);
          t.idleTimer = undefined;
          this.retained--;
        }
        this.drop(map, key, t);
      }
    }
    this.deps.hub.off("online", this.onOnline);
    this.deps.hub.off("offline", this.onOffline);
    this.deps.hub.off("data", this.onData);
    this.deps.hub.off("traffic", this.onTraffic);
    this.unsubscribeCache();
  }
}

/** Account-event filter of `*` streams: the token must allow ReadEvents on the event's device. */
function readEvents(device: string): Admit {
  return (p) => p.can("ReadEvents", { device });
}

export type { StreamEvent };
