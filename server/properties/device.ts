import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import type { ClusterBridge } from "../cluster/bridge.js";
import { JsonSession as DeviceSession } from "../gateway/session.js";
import type { Property, PropertiesService, PropertyChange } from "./service.js";
import { PropertiesService as Props } from "./service.js";

/** What the link needs of a device session: any protocol's session can be told about properties this way. */
export interface PropertySink {
  readonly user: string;
  readonly device: string;
  readonly isClosed: boolean;
  send(text: string): void;
}

/** The `property` frame (docs/protocol.md): on connect, on every change, and as the answer to a request. */
export function propertyFrame(p: Property, id?: number, deleted = false): string {
  return JSON.stringify({ type: "property", ...(id === undefined ? {} : { id }), name: p.property, value: p.value, updated_ts: p.updated_ts, ...(deleted ? { deleted: true } : {}) });
}

/**
 * Connects the {@link PropertiesService} to JSON-protocol device sessions: pushes every property when a device
 * comes online here, pushes each change to the session holding the device (here, or in cluster mode through the
 * bridge to the node holding it), and answers the device's `property_get` / `property_set` frames.
 */
export class DevicePropertyLink {
  private readonly unhook: Array<() => void> = [];
  /**
   * Per session, the `updated_ts` of the newest value of each property pushed to it. The push on connect reads the
   * store first: a change pushed meanwhile must not be followed by the older value read before it (the device keeps
   * the last frame it got), so a push older than what the session has is dropped.
   */
  private readonly pushed = new WeakMap<PropertySink, Map<string, number>>();

  constructor(
    private readonly service: PropertiesService,
    private readonly hub: Hub,
    private readonly logger: Logger,
    private readonly cluster?: ClusterBridge,
  ) {}

  /**
   * The device's session here if it speaks the JSON protocol: only those are pushed properties. Thinger legacy
   * and IOTMP sessions are not: neither protocol has a server → device property message (an unknown frame would
   * desync the legacy client), so those devices read properties on request (server/thinger/requests.ts) and see
   * an edit on their next read, as with Thinger's own server.
   */
  private jsonSession(user: string, device: string): DeviceSession | undefined {
    const s = this.hub.get(user, device) as unknown;
    return s instanceof DeviceSession ? s : undefined;
  }

  start(): void {
    const onOnline = (e: { user: string; device: string; remote?: boolean }) => {
      if (e.remote === true) return;
      const session = this.jsonSession(e.user, e.device);
      if (session) this.pushAll(session);
    };
    this.hub.on("online", onOnline);
    this.unhook.push(() => this.hub.off("online", onOnline));
    const onChange = (c: PropertyChange) => this.deliver(c);
    this.service.on("change", onChange);
    this.unhook.push(() => this.service.off("change", onChange));
    if (this.cluster) {
      const cluster = this.cluster;
      const onNotify = (user: string, device: string, kind: string, payload: unknown) => {
        if (kind !== "property" || typeof payload !== "string") return;
        const session = this.jsonSession(user, device);
        if (!session) return;
        const f = parseChange(payload);
        if (f) this.push(session, f.name, f.updated_ts, payload);
        else session.send(payload);
      };
      cluster.on("notify", onNotify);
      this.unhook.push(() => cluster.off("notify", onNotify));
    }
  }

  close(): void {
    for (const u of this.unhook.splice(0)) u();
  }

  /** Every property of the device, one frame each. Read after `connected` was sent (the store answers later). */
  pushAll(session: PropertySink): void {
    this.service.list(session.user, session.device).then(
      (props) => {
        for (const p of props) this.push(session, p.property, p.updated_ts, propertyFrame(p));
      },
      (err: unknown) => this.logger.warn({ err, user: session.user, device: session.device }, "property push on connect failed"),
    );
  }

  private deliver(c: PropertyChange): void {
    // The device that made the change has its answer already.
    if (c.origin === "device") return;
    const text = propertyFrame(c, undefined, c.deleted);
    const session = this.jsonSession(c.user, c.device);
    if (session) this.push(session, c.property, c.updated_ts, text);
    else if (!this.hub.get(c.user, c.device)) this.cluster?.notify(c.user, c.device, "property", text);
  }

  /** Sends a property frame unless the session was pushed a newer value of that property already. */
  private push(session: PropertySink, name: string, updatedTs: number, text: string): void {
    let seen = this.pushed.get(session);
    if (!seen) this.pushed.set(session, (seen = new Map()));
    const last = seen.get(name);
    if (last !== undefined && last > updatedTs) return;
    seen.set(name, updatedTs);
    session.send(text);
  }

  /** A `property_get` / `property_set` frame from a JSON-protocol device. Answers carry the request's `id`. */
  onDeviceRequest(session: PropertySink, f: Record<string, unknown>): void {
    const id = typeof f.id === "number" && Number.isSafeInteger(f.id) ? f.id : undefined;
    const fail = (err: unknown) => {
      if (!(err instanceof AppError)) this.logger.error({ err, user: session.user, device: session.device }, "device property request failed");
      if (id === undefined) return;
      const code = err instanceof AppError ? err.code : "internal_error";
      const message = err instanceof AppError ? err.message : "server error";
      session.send(JSON.stringify({ type: "error", id, code, message }));
    };
    let name: string;
    try {
      name = Props.checkName(f.name);
    } catch (err) {
      fail(err);
      return;
    }
    const op = f.type === "property_get"
      ? this.service.get(session.user, session.device, name)
      : this.service.set(session.user, session.device, name, f.value, "device");
    op.then((p) => {
      if (id !== undefined) session.send(propertyFrame(p, id));
    }, fail);
  }
}

/** The name and time of a change pushed from another node (a {@link propertyFrame} without `id`). */
function parseChange(text: string): { name: string; updated_ts: number } | undefined {
  try {
    const f = JSON.parse(text) as { name?: unknown; updated_ts?: unknown };
    return typeof f.name === "string" && typeof f.updated_ts === "number" ? { name: f.name, updated_ts: f.updated_ts } : undefined;
  } catch {
    return undefined;
  }
}
