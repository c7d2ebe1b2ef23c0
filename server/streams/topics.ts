import type { EventLog } from "./log.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

/** A log plus its subscribers; kept a while after the last one leaves so reconnecting clients can resume. */
export class Topic<S, M = unknown> {
  readonly subs = new Set<S>();
  idleTimer: TimerHandle | undefined;
  /** Until when (ms) the topic records without a local subscriber: the resume window after the last left. */
  recordUntil = 0;
  constructor(readonly log: EventLog<M>) {}
  get idle(): boolean {
    return this.subs.size === 0;
  }
  /** Whether an event at `now` is worth buffering: someone listens, or someone who left may still resume. */
  recording(now: number): boolean {
    return this.subs.size > 0 || now < this.recordUntil;
  }
}

/** How long, and how many, idle topics are kept, across every kind of stream together. */
export class Retention {
  /** Idle topics currently kept. */
  retained = 0;
  closing = false;
  /** `timers`: the retention clock (tests pass a fake one). */
  constructor(readonly retainMs: number, readonly maxRetainedTopics: number, readonly timers: Timers = systemTimers) {}
}

/** Topics by key, with retention: an idle topic stays `retainMs` (bounded in number), then is dropped. */
export class TopicMap<T extends Topic<unknown, unknown>> {
  private readonly map = new Map<string, T>();

  constructor(private readonly retention: Retention, private readonly onDrop?: (t: T) => void) {}

  get size(): number {
    return this.map.size;
  }

  /** The retention clock's time (resume windows are measured on it). */
  now(): number {
    return this.retention.timers.now();
  }

  get(key: string): T | undefined {
    return this.map.get(key);
  }

  /** Gets or creates a topic and cancels its retention timer. */
  acquire(key: string, create: () => T): T {
    let t = this.map.get(key);
    if (!t) this.map.set(key, (t = create()));
    this.stopTimer(t);
    return t;
  }

  /** After a subscriber left: keeps an idle topic for `retainMs` (bounded in number), then drops it. */
  release(key: string, t: T): void {
    const r = this.retention;
    if (!t.idle || t.idleTimer || this.map.get(key) !== t) return;
    if (r.closing || r.retained >= r.maxRetainedTopics) {
      this.drop(key, t);
      return;
    }
    r.retained++;
    t.idleTimer = r.timers.setTimeout(() => {
      t.idleTimer = undefined;
      r.retained--;
      if (t.idle) this.drop(key, t);
    }, r.retainMs);
    t.idleTimer.unref?.();
  }

  /** Drops every topic (shutdown). */
  clear(): void {
    for (const [key, t] of [...this.map]) {
      this.stopTimer(t);
      this.drop(key, t);
    }
  }

  private stopTimer(t: T): void {
    if (!t.idleTimer) return;
    this.retention.timers.clearTimeout(t.idleTimer);
    t.idleTimer = undefined;
    this.retention.retained--;
  }

  private drop(key: string, t: T): void {
    if (this.map.get(key) !== t) return;
    this.map.delete(key);
    t.log.clear();
    this.onDrop?.(t);
  }
}
