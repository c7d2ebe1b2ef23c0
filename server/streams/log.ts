import { randomBytes } from "node:crypto";
import { formatEvent } from "./sse.js";

/** One event of a stream, serialised once and written as is to every subscriber (`id:`, `data:`; `event:` only if named). */
export interface StreamEvent<M = unknown> {
  /** Position in its log; increases by one per appended event. */
  readonly seq: number;
  /** `<epoch>-<seq>`: what the client sends back as `Last-Event-ID`. */
  readonly id: string;
  /** Event name; undefined for values (unnamed events, what `EventSource.onmessage` receives). */
  readonly event: string | undefined;
  /** The whole event as written on the wire (see {@link formatEvent}). */
  readonly text: string;
  /** UTF-8 size of `text`: what the resume buffer accounts for. */
  readonly bytes: number;
  /**
   * What subscribers' filters need (the device of an account event, the time of a value). The value itself
   * is kept only inside `text`, so a buffered event costs what it weighs on the wire and no more.
   */
  readonly meta: M;
}

/** Longest `Last-Event-ID` we even look at; anything longer is ignored without parsing. */
export const MAX_EVENT_ID_LENGTH = 64;
const EVENT_ID_RE = /^([0-9a-f]{8})-(\d{1,15})$/;

/** Parses an event id (`<8 hex>-<seq>`); anything else (garbage, too long, absent) is null. */
export function parseEventId(raw: unknown): { epoch: string; seq: number } | null {
  if (typeof raw !== "string" || raw.length === 0 || raw.length > MAX_EVENT_ID_LENGTH) return null;
  const m = EVENT_ID_RE.exec(raw);
  if (!m) return null;
  return { epoch: m[1]!, seq: Number(m[2]) };
}

/**
 * Byte budget shared by every topic's resume buffer. When the sum goes over `maxBytes`, the oldest buffered
 * events of all topics leave first, whichever topic they belong to.
 */
export class ResumeBudget {
  /** Buffered events in append order across all logs (a Map iterates in insertion order; delete is O(1)). */
  private readonly entries = new Map<number, { log: EventLog<unknown>; bytes: number }>();
  private nextKey = 0;
  private used = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError('"maxBytes" must be a non-negative integer');
  }

  /** Bytes buffered across all logs. */
  get bytes(): number {
    return this.used;
  }

  /** Buffered events across all logs. */
  get count(): number {
    return this.entries.size;
  }

  /** @internal Accounts for an event a log just buffered; the log then calls {@link trim}. */
  add(log: EventLog<unknown>, bytes: number): number {
    const key = this.nextKey++;
    this.entries.set(key, { log, bytes });
    this.used += bytes;
    return key;
  }

  /** @internal Evicts the oldest events of all logs while over budget. */
  trim(): void {
    while (this.used > this.maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done) break;
      // The globally oldest event is always its own log's oldest: each log appends in the same order.
      oldest.value[1].log.evictOldest();
    }
  }

  /** @internal An event left its log (evicted, or the log was cleared). */
  release(key: number): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.used -= e.bytes;
  }
}

export interface EventLogLimits {
  /** Most events kept. */
  maxEvents: number;
  /** Most bytes kept (sum of the events' wire size); the oldest leave first. */
  maxBytes?: number;
  /** Larger events are delivered live but never kept: resuming across one is not possible. */
  maxEventBytes?: number;
  /** Budget shared with other logs. */
  budget?: ResumeBudget;
}

interface Kept<M> {
  ev: StreamEvent<M>;
  /** Key in the shared budget, if any. */
  key: number | undefined;
}

/**
 * The bounded resume buffer behind one stream topic (an account's events, one device resource, one device's
 * stats), bounded in events and in bytes, on its own and together with the other topics (shared budget).
 * Ids are `<epoch>-<seq>`: the epoch is random per log, so an id from another log (another topic, an earlier
 * server process, a topic that was dropped and created again) never matches and is simply not resumed. An id
 * is resumed only when every event after it is still buffered: a client never silently misses one.
 */
export class EventLog<M = unknown> {
  readonly epoch = randomBytes(4).toString("hex");
  private seq = 0;
  private readonly ring: Array<Kept<M>> = [];
  private keptBytes = 0;
  private readonly limits: Required<Omit<EventLogLimits, "budget">> & { budget: ResumeBudget | undefined };

  constructor(limits: number | EventLogLimits) {
    const l = typeof limits === "number" ? { maxEvents: limits } : limits;
    if (!Number.isInteger(l.maxEvents) || l.maxEvents < 1) throw new RangeError('"maxEvents" must be a positive integer');
    this.limits = {
      maxEvents: l.maxEvents, maxBytes: l.maxBytes ?? Infinity, maxEventBytes: l.maxEventBytes ?? l.maxBytes ?? Infinity, budget: l.budget,
    };
  }

  /** Id of the latest event (or `<epoch>-0` before the first one): the stream's current position. */
  get lastId(): string {
    return `${this.epoch}-${this.seq}`;
  }

  /** Bytes this log holds. */
  get bytes(): number {
    return this.keptBytes;
  }

  /** Events this log holds. */
  get size(): number {
    return this.ring.length;
  }

  /**
   * Serialises and appends one event; buffers it for resume unless it is larger than the per-event cap.
   * Throws (and consumes no position) when `data` cannot be serialised, e.g. nested too deep for
   * `JSON.stringify` (RangeError) or holding a BigInt (TypeError). `event` undefined: an unnamed event.
   */
  append(event: string | undefined, data: unknown, meta?: M): StreamEvent<M> {
    const id = `${this.epoch}-${this.seq + 1}`;
    const text = formatEvent({ id, event, data });
    this.seq++;
    const ev: StreamEvent<M> = { seq: this.seq, id, event, text, bytes: Buffer.byteLength(text), meta: meta as M };
    if (ev.bytes > this.limits.maxEventBytes || ev.bytes > this.limits.maxBytes) return ev;
    this.ring.push({ ev, key: undefined });
    this.keptBytes += ev.bytes;
    while (this.ring.length > this.limits.maxEvents || this.keptBytes > this.limits.maxBytes) this.evictOldest();
    const kept = this.ring[this.ring.length - 1];
    if (this.limits.budget && kept?.ev === ev) {
      kept.key = this.limits.budget.add(this as EventLog<unknown>, ev.bytes);
      // May evict events of this very log, this one included (then a resume across it is refused).
      this.limits.budget.trim();
    }
    return ev;
  }

  /** Counts an event that is not recorded at all (nobody could resume it): resuming across it is refused. */
  skip(): void {
    this.seq++;
  }

  /**
   * Events after `lastEventId`, oldest first; `null` when the id cannot be resumed from this log: not ours,
   * malformed, from the future, or some event after it is no longer (or never was) buffered.
   */
  since(lastEventId: unknown): Array<StreamEvent<M>> | null {
    const id = parseEventId(lastEventId);
    if (!id || id.epoch !== this.epoch || id.seq > this.seq) return null;
    const after = this.ring.filter((k) => k.ev.seq > id.seq).map((k) => k.ev);
    return after.length === this.seq - id.seq ? after : null;
  }

  /** @internal Drops the oldest buffered event (own limits, or the shared budget). */
  evictOldest(): void {
    const k = this.ring.shift();
    if (!k) return;
    this.keptBytes -= k.ev.bytes;
    if (k.key !== undefined) this.limits.budget?.release(k.key);
  }

  /** Drops every buffered event (the topic is gone), giving their bytes back to the shared budget. */
  clear(): void {
    while (this.ring.length > 0) this.evictOldest();
  }
}
