import type { EventEmitter } from "node:events";
import type { Context } from "koa";
import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import type { Authenticator } from "../auth/authenticator.js";
import type { Metrics } from "../metrics.js";
import { EventLog, ResumeBudget, type StreamEvent } from "./log.js";
import { STREAM_DEFAULTS, type RemoteIntervalListener, type StreamCluster, type StreamOptions } from "./options.js";
import { parseInterval, type StreamRequest, streamRequest } from "./http.js";
import { guarded, StreamRegistry, type StreamRegistryEvents } from "./registry.js";
import { Retention, TopicMap } from "./topics.js";
import { StatsStreams } from "./stats.js";
import { AccountEvents } from "./events.js";
import { ResourceStreams } from "./resources.js";

export interface StreamDeps {
  config: Readonly<Config>;
  logger: Logger;
  hub: Hub;
  authenticator: Authenticator;
  metrics: Metrics;
  /** Device registry lookup (resource streams answer 404 device_not_found for unknown devices). */
  devices: { exists(user: string, device: string): Promise<boolean> };
  /** Cluster mode: resource streams then reach devices held by other nodes, and serve theirs. */
  cluster?: StreamCluster;
  /** Tuning; defaults in {@link STREAM_DEFAULTS}. */
  options?: Partial<StreamOptions>;
}

/**
 * Server-Sent Event streams: a device's stats (stats.ts), a device resource's values (resources.ts), an
 * account's device events (events.ts). This class builds the three on one {@link StreamRegistry} (caps,
 * revocation re-checks) and feeds them the hub's events. Routes parse the request into a {@link StreamRequest}
 * (http.ts) and call the kind's method with plain arguments. See docs/streams.md.
 */
export class StreamService {
  private readonly options: Readonly<StreamOptions>;
  private readonly registry: StreamRegistry;
  private readonly retention: Retention;
  /** Streams opening and closing (`opened`/`closed`, with {@link openCount} after the change). */
  readonly lifecycle: Pick<EventEmitter<StreamRegistryEvents>, "on" | "off" | "once">;
  /** Bytes of all topics' resume buffers together. */
  private readonly budget: ResumeBudget;
  readonly stats: StatsStreams;
  readonly events: AccountEvents;
  readonly resources: ResourceStreams;
  private readonly unsubscribeCache: () => void;

  constructor(protected readonly deps: StreamDeps) {
    this.options = Object.freeze({ ...STREAM_DEFAULTS, ...deps.options });
    for (const k of ["retryMs", "statsThrottleMs", "bufferSize", "bufferBytes", "maxEventBytes", "totalBufferBytes", "maxBufferedBytes"] as const) {
      if (!Number.isInteger(this.options[k]) || this.options[k] < 1) throw new RangeError(`"${k}" must be a positive integer`);
    }
    const { hub, logger } = deps;
    this.budget = new ResumeBudget(this.options.totalBufferBytes);
    this.retention = new Retention(this.options.retainMs, this.options.maxRetainedTopics);
    this.registry = new StreamRegistry({ limits: deps.config.limits, options: this.options, logger, authenticator: deps.authenticator, metrics: deps.metrics });
    this.lifecycle = this.registry;
    this.stats = new StatsStreams(hub, this.registry, logger, this.options.statsThrottleMs);
    this.events = new AccountEvents(this.registry, new TopicMap(this.retention), () => this.newLog(), this.options.retainMs, logger);
    this.resources = new ResourceStreams({
      hub, registry: this.registry, retention: this.retention, newLog: () => this.newLog(), logger, devices: deps.devices, cluster: () => deps.cluster,
    });
    hub.on("online", this.onOnline);
    hub.on("offline", this.onOffline);
    hub.on("data", this.onData);
    deps.cluster?.on("stream", this.setRemoteInterval);
    this.unsubscribeCache = deps.authenticator.cache.onInvalidate(guarded(() => logger, "invalidate", (key: string) => this.registry.invalidated(key)));
  }

  /** Cluster: another node's subscribers' wish for a resource of a device held here (see {@link ResourceStreams}). */
  readonly setRemoteInterval: RemoteIntervalListener = (user, device, resource, node, interval) => {
    this.resources.setRemoteInterval(user, device, resource, node, interval);
  };

  /** Open streams in this process (all accounts, all kinds). */
  get openCount(): number {
    return this.registry.size;
  }

  /** Bytes and events held in all topics' resume buffers (bounded by `totalBufferBytes`). */
  get resumeBuffer(): { bytes: number; events: number; topics: number } {
    return { bytes: this.budget.bytes, events: this.budget.count, topics: this.events.topicCount + this.resources.topics.size };
  }

  /**
   * Route adapter kept for server/relay/routes.ts, which is being reworked on another branch: it parses the
   * request and hands plain arguments to {@link ResourceStreams.open}. Once that branch lands the relay route
   * calls `s.streams.resources.open(streamRequest(ctx), …, parseInterval(ctx.query.interval))` and this goes.
   */
  async resourceStream(ctx: Context, user: string, device: string, resource: string): Promise<void> {
    const intervalMs = parseInterval(ctx.query.interval);
    await this.resources.open(streamRequest(ctx), user, device, resource, intervalMs);
  }

  /** An account event that is not a device's online/offline (issue 18: `call`). Never throws. */
  accountEvent(user: string, type: "call", data: { device: string } & Record<string, unknown>): void {
    this.events.accountEvent(user, type, data);
  }

  /** Ends every stream (final `end` event, reason `shutdown`) and releases all listeners and timers. */
  async close(): Promise<void> {
    this.retention.closing = true;
    this.registry.closeAll();
    this.events.clear();
    this.resources.topics.clear();
    this.deps.hub.off("online", this.onOnline);
    this.deps.hub.off("offline", this.onOffline);
    this.deps.hub.off("data", this.onData);
    this.deps.cluster?.off("stream", this.setRemoteInterval);
    this.stats.close();
    this.unsubscribeCache();
  }

  private newLog<M>(): EventLog<M> {
    const o = this.options;
    return new EventLog<M>({ maxEvents: o.bufferSize, maxBytes: o.bufferBytes, maxEventBytes: o.maxEventBytes, budget: this.budget });
  }

  private readonly onOnline = guarded(() => this.deps.logger, "online", (e: { user: string; device: string; ts: number; ip: string; remote?: boolean }): void => {
    const { user, device, ts, ip } = e;
    this.events.publish(user, "online", { device, ts, ip });
    this.stats.deviceChanged(user, device);
    this.resources.deviceOnline(user, device, e.remote === true);
  });

  private readonly onOffline = guarded(() => this.deps.logger, "offline", (e: { user: string; device: string; ts: number; remote?: boolean }): void => {
    const { user, device, ts } = e;
    this.events.publish(user, "offline", { device, ts });
    this.stats.deviceChanged(user, device);
    this.resources.deviceOffline(user, device, e.remote === true);
  });

  private readonly onData = guarded(() => this.deps.logger, "data", ({ user, device, resource, out, ts }: { user: string; device: string; resource: string; out: unknown; ts: number }): void => {
    this.resources.value(user, device, resource, out, ts);
  });
}

export { MAX_INTERVAL_MS, MIN_INTERVAL_MS, STREAM_DEFAULTS, type StreamCluster, type StreamKind, type StreamOptions } from "./options.js";
export { parseInterval, type StreamRequest, streamRequest } from "./http.js";
export type { StreamEvent };
