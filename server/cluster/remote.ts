import { AppError } from "../errors.js";
import type { CallResult, SessionStats } from "../gateway/device-session.js";
import type { RemoteRelay } from "../gateway/hub.js";
import type { CallVerb, ResourceApi } from "../relay/kinds.js";
import type { ClusterLink } from "./link.js";
import { type DeviceOp, type KickNote, REMOTE_MARGIN_MS } from "./messages.js";

/** The node holding a device elsewhere, with its stats as last announced. */
export interface RemoteHolder {
  node: string;
  ts: number;
  stats: SessionStats;
}

/**
 * The devices other nodes hold, and the requests that reach them (calls, stats, resource lists, kicks, notes).
 * Built before the {@link Hub}, which forwards its calls for devices not held here to it; the
 * {@link ClusterBridge} keeps {@link holders} up to date from the other nodes' events.
 */
export class RemoteDevices implements RemoteRelay {
  /** `user/device` → the node holding it, from its `online` announcement. */
  readonly holders = new Map<string, RemoteHolder>();

  constructor(readonly link: ClusterLink) {}

  /** Stats of a device another node holds (connect time and address from its announcement, byte counters at most ~1 s old). */
  remoteStats(user: string, device: string): SessionStats | undefined {
    return this.holders.get(`${user}/${device}`)?.stats;
  }

  async call(user: string, device: string, resource: string, input: unknown, hasInput: boolean, timeoutMs: number, verb?: CallVerb): Promise<CallResult> {
    const op: DeviceOp = hasInput ? { op: "call", resource, in: input, hasInput, timeoutMs } : { op: "call", resource, hasInput, timeoutMs };
    if (verb) op.verb = verb;
    const r = await this.link.request(user, device, op, timeoutMs + REMOTE_MARGIN_MS);
    return r.hasOut ? { hasOut: true, out: r.out } : { hasOut: false };
  }

  async stats(user: string, device: string): Promise<SessionStats | null> {
    try {
      return (await this.link.request(user, device, { op: "stats" }, 2_000)).stats ?? null;
    } catch (err) {
      if (err instanceof AppError && err.code === "device_offline") return null;
      throw err;
    }
  }

  async resources(user: string, device: string): Promise<Record<string, { kind: string }>> {
    return (await this.link.request(user, device, { op: "api" }, 2_000)).resources ?? {};
  }

  /** A resource's `/api` (kind and state), from the node holding the device. */
  async resourceApi(user: string, device: string, resource: string, timeoutMs: number): Promise<ResourceApi> {
    const r = await this.link.request(user, device, { op: "resource_api", resource, timeoutMs }, timeoutMs + REMOTE_MARGIN_MS);
    if (!r.api) throw new AppError("internal_error", "the node holding the device sent no resource description");
    return r.api;
  }

  kick(user: string, device: string, code: number, reason: string): void {
    this.link.publish(this.link.deviceSubject(user, device), { op: "kick", code, reason } satisfies DeviceOp);
    // Also to every node: one still admitting the device (credentials checked before the change, session not yet
    // registered) holds no subscription to its subject, and would let the session in (gateway/hub.ts Admitting).
    this.link.publish(this.link.subject("kick"), { node: this.link.nodeId, user, device, code, reason } satisfies KickNote);
  }

  /**
   * Fire-and-forget note to whichever node holds the device (issue 18: a property edit to push, a queued
   * call to deliver). Nobody holds it: dropped, as the store has the data for the device's next connect.
   */
  notify(user: string, device: string, kind: string, payload: unknown): void {
    this.link.publish(this.link.deviceSubject(user, device), { op: "notify", kind, payload } satisfies DeviceOp);
  }

  /** Tells the node holding the device what this node's subscribers want (null = none left here). */
  announceStream(user: string, device: string, resource: string, interval: number | null): void {
    this.link.publish(this.link.deviceSubject(user, device), { op: "stream", node: this.link.nodeId, resource, interval } satisfies DeviceOp);
  }
}
