import type { Logger } from "../log.js";
import type { EventLog } from "./log.js";
import type { Admit, OpenStream } from "./open-stream.js";
import type { StreamRegistry } from "./registry.js";
import type { StreamRequest } from "./http.js";
import { Topic, type TopicMap } from "./topics.js";

interface EventSub {
  stream: OpenStream;
  device: string | undefined;
}

/** What account-event filters need. */
interface EventMeta {
  device: string;
  /** A `call` event's resource: only a token that may call it sees the call (its `out`, its `error`). */
  resource?: string;
}

export type AccountEventType = "online" | "offline" | "call";

/**
 * An account's device events (`online`, `offline`, `call`) as SSE, optionally of one device. Resumes from
 * `Last-Event-ID` while the account's buffer still holds the events after it.
 */
export class AccountEvents {
  constructor(
    private readonly registry: StreamRegistry,
    private readonly topics: TopicMap<Topic<EventSub, EventMeta>>,
    private readonly newLog: () => EventLog<EventMeta>,
    private readonly retainMs: number,
    private readonly logger: Logger,
  ) {}

  /** Accounts with a topic (open streams or a resume window). */
  get topicCount(): number {
    return this.topics.size;
  }

  /** Drops every topic (shutdown). */
  clear(): void {
    this.topics.clear();
  }

  /**
   * `GET /v1/users/{user}/events`. The route lets the stream open when the token allows ReadEvents on at least
   * one device (`*`); every event, live or replayed, then goes through `can("ReadEvents", { device })` with the
   * token's current permissions, so a device the token denies never shows, even after an edit of the token.
   */
  open(req: StreamRequest, user: string, device: string | undefined): void {
    const stream = this.registry.start(req, "events", user, (p) => p.user === user && p.can("ReadEvents", { device: device ?? "*" }));
    const topic = this.topics.acquire(user, () => new Topic<EventSub, EventMeta>(this.newLog()));
    const sub: EventSub = { stream, device };
    stream.conn.lastId = topic.log.lastId;
    for (const ev of topic.log.since(req.lastEventId) ?? []) {
      if (device === undefined || ev.meta.device === device) stream.deliver(ev, admitFor(ev.meta));
    }
    topic.subs.add(sub);
    stream.conn.onClose(() => {
      topic.subs.delete(sub);
      if (topic.subs.size === 0) topic.recordUntil = this.topics.now() + this.retainMs;
      this.topics.release(user, topic);
    });
  }

  /**
   * An account event that is not a device's online/offline (issue 18: `call`, a queued call that finished).
   * Shown to streams whose token may read the device's events and read the call itself (AccessDeviceResources on
   * its resource, as `GET …/calls/{id}` needs: the event carries the call's `out` or `error`). Never throws.
   */
  accountEvent(user: string, type: "call", data: { device: string } & Record<string, unknown>): void {
    try {
      this.publish(user, type, data);
    } catch (err) {
      this.logger.warn({ err, user }, "account event dropped");
    }
  }

  publish(user: string, type: AccountEventType, data: { device: string } & Record<string, unknown>): void {
    const topic = this.topics.get(user);
    if (!topic) return;
    if (!topic.recording(this.topics.now())) {
      topic.log.skip();
      return;
    }
    // Unnamed like every value: the kind travels in the data (`type`), so onmessage can tell them apart.
    const meta: EventMeta = type === "call" && typeof data.resource === "string" ? { device: data.device, resource: data.resource } : { device: data.device };
    const ev = topic.log.append(undefined, { type, ...data }, meta);
    const admit = admitFor(meta);
    for (const sub of topic.subs) {
      if (sub.device === undefined || sub.device === data.device) sub.stream.deliver(ev, admit);
    }
  }
}

/**
 * Account-event filter: the token must allow ReadEvents on the event's device, and for a `call` event also
 * AccessDeviceResources on the call's resource.
 */
function admitFor(meta: EventMeta): Admit {
  const { device, resource } = meta;
  if (resource === undefined) return (p) => p.can("ReadEvents", { device });
  return (p) => p.can("ReadEvents", { device }) && p.can("AccessDeviceResources", { device, resource });
}
