import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import type { EventLog, StreamEvent } from "./log.js";
import type { OpenStream } from "./open-stream.js";
import { MAX_INTERVAL_MS, type StreamCluster } from "./options.js";
import { guarded, type StreamRegistry } from "./registry.js";
import { gcd, SampleScheduler } from "./sampling.js";
import type { StreamRequest } from "./http.js";
import { type Retention, Topic, TopicMap } from "./topics.js";

/** What resource-stream sampling needs. */
interface ValueMeta {
  ts: number;
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
  get key(): string {
    return `${this.user}/${this.device}/${this.resource}`;
  }
}

export interface ResourceStreamDeps {
  hub: Hub;
  registry: StreamRegistry;
  retention: Retention;
  newLog: () => EventLog<ValueMeta>;
  logger: Logger;
  /** Device registry lookup (resource streams answer 404 device_not_found for unknown devices). */
  devices: { exists(user: string, device: string): Promise<boolean> };
  /** Cluster mode, once joined. */
  cluster: () => StreamCluster | undefined;
}

/**
 * A device resource's values as SSE. Resource streams drive the device: it is asked to sample at the GCD of
 * the subscribers' intervals, asked again after every reconnect, and told to stop when the last subscriber
 * leaves. In cluster mode other nodes' wishes join the GCD.
 */
export class ResourceStreams {
  readonly topics: TopicMap<ResourceTopic>;
  /** Resource topics by `user/device`, to re-subscribe after a device reconnects. */
  private readonly byDevice = new Map<string, Set<ResourceTopic>>();

  constructor(private readonly deps: ResourceStreamDeps) {
    this.topics = new TopicMap<ResourceTopic>(deps.retention, (t) => {
      const dk = `${t.user}/${t.device}`;
      const set = this.byDevice.get(dk);
      set?.delete(t);
      if (set?.size === 0) this.byDevice.delete(dk);
    });
  }

  /**
   * `GET /v2/users/{user}/devices/{device}/{resource}` as SSE, every `intervalMs` (0: only values the device
   * pushes). Authorization was checked by the relay route. The device may be offline: the stream waits for it
   * and subscribes whenever it (re)connects.
   */
  async open(req: StreamRequest, user: string, device: string, resource: string, intervalMs: number): Promise<void> {
    const session = this.deps.hub.get(user, device);
    if (!session && !(await this.deps.devices.exists(user, device))) throw new AppError("device_not_found");
    // A Thinger device whose first describe was lost is asked again: the kind check below must not be skipped.
    if (session?.describeIfUnknown) await session.describeIfUnknown(2_000);
    const kind = session?.resourceKind(resource);
    if (session && kind === undefined) throw new AppError("resource_not_found", `device has no resource "${resource}"`);
    if (kind === "input" || kind === "run") throw new AppError("invalid_request", `"${resource}" is ${kind === "input" ? "an" : "a"} ${kind} resource: only output and io resources can be streamed`);
    const stream = this.deps.registry.start(req, "resource", user, (p) => p.user === user && p.can("AccessDeviceResources", { device, resource }));

    const topic = this.topic(user, device, resource);
    stream.conn.lastId = topic.log.lastId;
    const localBefore = topic.scheduler.gcd;
    topic.scheduler.add(stream, intervalMs);
    for (const ev of topic.log.since(req.lastEventId) ?? []) {
      if (topic.scheduler.admit(stream, ev.meta.ts, topic.interval)) stream.deliver(ev);
    }
    topic.subs.add(stream);
    // Sent on every join, even when the GCD is unchanged: the device answers a `stream` frame with a sample at
    // once, so the new subscriber gets a value now instead of up to one interval later.
    this.sendStream(topic);
    if (topic.subs.size === 1 || topic.scheduler.gcd !== localBefore) this.announce(topic);
    stream.conn.onClose(() => {
      topic.subs.delete(stream);
      if (topic.subs.size === 0) topic.recordUntil = this.topics.now() + this.deps.retention.retainMs;
      const before = topic.interval;
      const localChanged = topic.scheduler.remove(stream);
      if (topic.subs.size === 0 || localChanged) this.announce(topic);
      if (topic.idle) this.sendUnstream(topic);
      else if (topic.interval !== before) this.sendStream(topic);
      this.topics.release(topic.key, topic);
    });
  }

  /**
   * Cluster: another node's subscribers want `interval` ms of a resource of a device held here (null: none
   * left there). Combined with the local subscribers into the one interval sent to the device.
   */
  setRemoteInterval(user: string, device: string, resource: string, node: string, interval: number | null): void {
    if (this.deps.retention.closing || typeof node !== "string" || node.length > 64) return;
    if (interval !== null && (!Number.isInteger(interval) || interval < 0 || interval > MAX_INTERVAL_MS)) return;
    const key = `${user}/${device}/${resource}`;
    if (interval === null && !this.topics.get(key)?.remote.has(node)) return;
    const topic = this.topic(user, device, resource);
    const before = topic.idle ? -1 : topic.interval;
    if (interval === null) topic.remote.delete(node);
    else topic.remote.set(node, interval);
    if (topic.idle) this.sendUnstream(topic);
    else if (topic.interval !== before) this.sendStream(topic);
    this.topics.release(key, topic);
  }

  /** A device session started here (`remote` false) or on another node (`remote` true). */
  deviceOnline(user: string, device: string, remote: boolean): void {
    const topics = this.byDevice.get(`${user}/${device}`);
    if (!topics) return;
    if (remote) {
      // Cluster: the device came up on another node. Tell that node what our subscribers want, and forget what
      // other nodes wished while it was held here: they re-announce to the new holder.
      for (const t of [...topics]) {
        t.remote.clear();
        if (t.subs.size > 0) this.announce(t);
        this.topics.release(t.key, t);
      }
      return;
    }
    // The hub announces a session before the gateway sends it `connected`; a device ignores frames before
    // that one, so the `stream` frames go out right after (same socket, same order).
    queueMicrotask(guarded(() => this.deps.logger, "online", () => {
      for (const t of topics) {
        t.scheduler.reset();
        this.sendStream(t);
      }
    }));
  }

  /** A device session ended here (`remote` false) or on another node. */
  deviceOffline(user: string, device: string, remote: boolean): void {
    const topics = this.byDevice.get(`${user}/${device}`);
    if (!topics || remote) return;
    // Cluster: other nodes' wishes were for the session that just ended. They re-announce when the device
    // is back (they see its `online`), and a wish withdrawn meanwhile could not reach us: forget them all.
    for (const t of [...topics]) {
      if (t.remote.size === 0) continue;
      t.remote.clear();
      this.topics.release(t.key, t);
    }
  }

  /** A value from the device (or, in cluster mode, re-emitted from the node holding it). */
  value(user: string, device: string, resource: string, out: unknown, ts: number): void {
    const topic = this.topics.get(`${user}/${device}/${resource}`);
    if (!topic) return;
    // A topic held only for other nodes' subscribers (cluster) has nobody here to resume: nothing to record.
    if (!topic.recording(this.topics.now())) {
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
  }

  private topic(user: string, device: string, resource: string): ResourceTopic {
    return this.topics.acquire(`${user}/${device}/${resource}`, () => {
      const t = new ResourceTopic(this.deps.newLog(), user, device, resource);
      const dk = `${user}/${device}`;
      let set = this.byDevice.get(dk);
      if (!set) this.byDevice.set(dk, (set = new Set()));
      set.add(t);
      return t;
    });
  }

  private sendStream(t: ResourceTopic): void {
    if (t.idle) return;
    this.deps.hub.get(t.user, t.device)?.stream(t.resource, t.interval);
  }

  /** Cluster: tells the node holding the device what this node's subscribers want. */
  private announce(t: ResourceTopic): void {
    this.deps.cluster()?.announceStream(t.user, t.device, t.resource, t.subs.size > 0 ? t.scheduler.gcd : null);
  }

  private sendUnstream(t: ResourceTopic): void {
    if (this.deps.retention.closing) return;
    this.deps.hub.get(t.user, t.device)?.unstream(t.resource);
  }
}
