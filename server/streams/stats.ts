import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import { EventLog } from "./log.js";
import type { OpenStream } from "./open-stream.js";
import { guarded, type StreamRegistry } from "./registry.js";
import type { StreamRequest } from "./http.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

interface StatsTopic {
  readonly user: string;
  readonly device: string;
  readonly log: EventLog;
  readonly subs: Set<OpenStream>;
  lastSentAt: number;
  lastBytes: string;
  timer: TimerHandle | undefined;
}

/** Device stats as SSE: the current stats at once, then every change (byte counters throttled). */
export class StatsStreams {
  private readonly topics = new Map<string, StatsTopic>();

  constructor(
    private readonly hub: Hub,
    private readonly registry: StreamRegistry,
    private readonly logger: Logger,
    /** Shortest gap between two updates caused by byte-counter changes (ms). */
    private readonly throttleMs: number,
    private readonly timers: Timers = systemTimers,
  ) {}

  /** `GET /v1/users/{user}/devices/{device}/stats` as SSE. The route checked the device exists. */
  open(req: StreamRequest, user: string, device: string): void {
    const stream = this.registry.start(req, "stats", user, (p) => p.user === user && p.can("GetDeviceStats", { device }));
    const key = `${user}/${device}`;
    let topic = this.topics.get(key);
    if (!topic) {
      const s = this.hub.stats(user, device);
      topic = { user, device, log: new EventLog(1), subs: new Set(), lastSentAt: 0, lastBytes: `${s.rx_bytes}/${s.tx_bytes}`, timer: undefined };
      this.topics.set(key, topic);
      if (this.topics.size === 1) this.hub.on("traffic", this.onTraffic);
    }
    const t = topic;
    t.subs.add(stream);
    // Stats are state, not a log: the current snapshot supersedes anything missed, so Last-Event-ID is not used.
    stream.conn.send({ id: t.log.lastId, data: this.hub.stats(user, device) });
    stream.conn.onClose(() => {
      t.subs.delete(stream);
      if (t.subs.size > 0 || this.topics.get(key) !== t) return;
      this.timers.clearTimeout(t.timer);
      this.topics.delete(key);
      if (this.topics.size === 0) this.hub.off("traffic", this.onTraffic);
    });
  }

  /** A device came online or went offline: its stats changed. */
  deviceChanged(user: string, device: string): void {
    const t = this.topics.get(`${user}/${device}`);
    if (t) this.publish(t);
  }

  close(): void {
    this.hub.off("traffic", this.onTraffic);
  }

  private publish(t: StatsTopic): void {
    this.timers.clearTimeout(t.timer);
    t.timer = undefined;
    const data = this.hub.stats(t.user, t.device);
    t.lastSentAt = this.timers.now();
    t.lastBytes = `${data.rx_bytes}/${data.tx_bytes}`;
    const ev = t.log.append(undefined, data);
    for (const s of t.subs) s.deliver(ev);
  }

  private readonly onTraffic = guarded(() => this.logger, "traffic", ({ user, device }: { user: string; device: string }): void => {
    const t = this.topics.get(`${user}/${device}`);
    if (!t || t.timer) return;
    // Byte counters change on every frame: coalesce to at most one update per throttleMs.
    const wait = Math.max(0, t.lastSentAt + this.throttleMs - this.timers.now());
    t.timer = this.timers.setTimeout(() => {
      t.timer = undefined;
      const s = this.hub.stats(t.user, t.device);
      try {
        if (`${s.rx_bytes}/${s.tx_bytes}` !== t.lastBytes) this.publish(t);
      } catch (err) {
        this.logger.error({ err }, "stream stats update failed");
      }
    }, wait);
    t.timer.unref?.();
  });
}
