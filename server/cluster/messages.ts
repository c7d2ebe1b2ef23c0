import type { ErrorCode as AppErrorCode } from "../errors.js";
import type { SessionStats } from "../gateway/device-session.js";
import type { CallVerb, ResourceApi } from "../relay/kinds.js";

/** Extra time a remote call waits beyond the device timeout before the bridge gives up on the holder node. */
export const REMOTE_MARGIN_MS = 1_000;
/** Remote stats refresh at most this often per device (byte counters). */
export const TRAFFIC_PUBLISH_MS = 1_000;
/** Default {@link ClusterOptions.nodeTimeoutMs}: a node silent this long is dead (THINGRELAY_NODE_TIMEOUT_MS). */
export const NODE_TIMEOUT_MS = 6_000;

/** Default {@link ClusterOptions.revokeAckTimeoutMs}. */
export const REVOKE_ACK_TIMEOUT_MS = 2_000;

/** `<prefix>.revoke`: drop a revocation-cache entry; with `ack`, answer `{ack, node}` on the message's reply subject. */
export type RevokeNote = { key: string; node: string; ack?: number };

export interface ClusterOptions {
  /**
   * How long a revoking request waits for the acknowledgements of the other live nodes (each has dropped the
   * entry when it acknowledges). A node that has not acknowledged by then is logged (`cluster_revoke_unacked`)
   * and the request answers anyway; that node's cache entry expires within its TTL (60 s) at the latest.
   */
  revokeAckTimeoutMs?: number;
  /**
   * A node whose heartbeat (sent every third of this) has not arrived for this long is dead: its devices are
   * shown offline and calls to them answer device_offline. Detection takes at most 4/3 of it (the sweep runs
   * with the heartbeat), 8 s with the default 6 s.
   */
  nodeTimeoutMs?: number;
}

/** `<prefix>.dev.<user>.<device>`: what one node asks of the node holding a device. */
export type DeviceOp =
  | { op: "call"; resource: string; in?: unknown; hasInput: boolean; timeoutMs: number; verb?: CallVerb }
  | { op: "stats" }
  | { op: "api" }
  | { op: "resource_api"; resource: string; timeoutMs: number }
  | { op: "stream"; node: string; resource: string; interval: number | null }
  | { op: "kick"; code: number; reason: string }
  | { op: "notify"; kind: string; payload: unknown };

export type Reply =
  | { ok: true; hasOut?: boolean; out?: unknown; stats?: SessionStats; resources?: Record<string, { kind: string }>; api?: ResourceApi }
  | { ok: false; code: AppErrorCode; status: number; message: string; headers: Record<string, string> };

/** `<prefix>.evt.<user>.<device>`: a device event of one node, for every other node. */
export type ClusterEvent =
  | { kind: "online"; node: string; user: string; device: string; ts: number; ip: string }
  | { kind: "offline"; node: string; user: string; device: string; ts: number }
  | { kind: "data"; node: string; user: string; device: string; resource: string; out: unknown; ts: number }
  | { kind: "traffic"; node: string; user: string; device: string; stats: SessionStats }
  | { kind: "account"; node: string; user: string; device: string; type: "call"; data: Record<string, unknown> };

/**
 * `<prefix>.kick`: a kick for every node (besides the `kick` op to the holder): nodes admitting the device close the
 * new session instead of registering it.
 */
export type KickNote = { node: string; user: string; device: string; code: number; reason: string };

/** `<prefix>.node`: a node's heartbeat (`alive`) or its goodbye when it closes (`gone`). */
export type NodeBeat = { node: string; state: "alive" | "gone" };

export type AccountEventData = { device: string } & Record<string, unknown>;

/** What the bridge tells the parts of this node (typed events of {@link ClusterBridge}). */
export interface ClusterEventMap {
  /** Another node's {@link ClusterBridge.notify} note for a device held here (issue 18). */
  notify: [user: string, device: string, kind: string, payload: unknown];
  /** Another node's account event (a queued call finished) for this node's streams. */
  account: [user: string, type: "call", data: AccountEventData];
  /** Another node's subscribers' wish for a resource stream of a device held here (null = none left there). */
  stream: [user: string, device: string, resource: string, node: string, interval: number | null];
}

