import { randomBytes } from "node:crypto";

/** One event of a stream, as written to every subscriber (`id:`, `event:`, `data:`). */
export interface StreamEvent<T = unknown> {
  /** Position in its log; increases by one per appended event. */
  readonly seq: number;
  /** `<epoch>-<seq>`: what the client sends back as `Last-Event-ID`. */
  readonly id: string;
  readonly event: string;
  readonly data: T;
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
 * The bounded buffer behind one stream topic (an account's events, one device resource, one device's stats).
 * Ids are `<epoch>-<seq>`: the epoch is random per log, so an id from another log (another topic, an earlier
 * server process, a topic that was dropped and created again) never matches and is simply not resumed.
 */
export class EventLog<T = unknown> {
  readonly epoch = randomBytes(4).toString("hex");
  private seq = 0;
  private readonly ring: Array<StreamEvent<T>> = [];

  constructor(private readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('"capacity" must be a positive integer');
  }

  /** Id of the latest event (or `<epoch>-0` before the first one): the stream's current position. */
  get lastId(): string {
    return `${this.epoch}-${this.seq}`;
  }

  append(event: string, data: T): StreamEvent<T> {
    this.seq++;
    const ev: StreamEvent<T> = { seq: this.seq, id: `${this.epoch}-${this.seq}`, event, data };
    this.ring.push(ev);
    if (this.ring.length > this.capacity) this.ring.shift();
    return ev;
  }

  /**
   * Events after `lastEventId`, oldest first; `null` when the id cannot be resumed from this log: not ours,
   * malformed, from the future, or so old that events after it have already left the buffer.
   */
  since(lastEventId: unknown): Array<StreamEvent<T>> | null {
    const id = parseEventId(lastEventId);
    if (!id || id.epoch !== this.epoch || id.seq > this.seq) return null;
    const oldest = this.ring[0]?.seq ?? this.seq + 1;
    if (id.seq < oldest - 1) return null;
    return this.ring.filter((e) => e.seq > id.seq);
  }
}
