import { EventEmitter } from "node:events";
import type { Msg, Subscription } from "nats";
import type { Logger } from "../log.js";
import type { Hub, HubEventMap } from "../gateway/hub.js";
import { CLOSE } from "../gateway/protocol.js";
import type { RevocationCache } from "../auth/authenticator.js";
import type { ResourceApi } from "../relay/kinds.js";
import type { StreamCluster } from "../streams/options.js";
import type { ClusterLink } from "./link.js";
import {
  type AccountEventData, type ClusterEvent, type ClusterEventMap, type ClusterOptions, type DeviceOp, type KickNote, NODE_TIMEOUT_MS,
  REVOKE_ACK_TIMEOUT_MS, type RevokeNote, TRAFFIC_PUBLISH_MS,
} from "./messages.js";
import { NodePresence } from "./presence.js";
import type { RemoteDevices } from "./remote.js";
import { answerDeviceOp, type ResponderDeps } from "./responder.js";

export { type ClusterOptions, NODE_TIMEOUT_MS } from "./messages.js";

/** A revocation waiting for the acknowledgements of the nodes that were live when it was sent. */
interface PendingAck {
  readonly settled: Promise<void>;
  /** `node` acknowledged it (or is gone): the wait ends with the last one. */
  acked(node: string): void;
  end(): void;
}

/**
 * Cluster mode over NATS (DESIGN §7): each node subscribes `thingrelay.dev.<user>.<device>` for the device
 * sessions it holds and answers calls, stats, resource lists and stream requests for them through NATS
 * request/reply (server/cluster/responder.ts). Device events (online, offline, data, traffic) and token
 * revocations are published to every node; a device that connects to a second node takes over and the first
 * node closes its session (4000). No holder answering → NATS "no responders" → `device_offline`.
 *
 * Built after the {@link Hub} (which already holds the same {@link RemoteDevices}); what other nodes send for
 * this node's parts comes out as typed events ({@link ClusterEventMap}).
 */
export class ClusterBridge extends EventEmitter<ClusterEventMap> implements StreamCluster {
  readonly nodeId: string;
  private readonly link: ClusterLink;
  private readonly deviceSubs = new Map<string, Subscription>();
  private readonly subs: Subscription[] = [];
  private readonly trafficAt = new Map<string, number>();
  private readonly applyingRemote = new Set<string>();
  private readonly unhook: Array<() => void> = [];
  private readonly presence: NodePresence;
  private readonly responder: ResponderDeps;
  private unflushed = false;
  private flushing: Promise<void> | undefined;
  /** Revocations sent by this node that live nodes have not all acknowledged yet, by ack id. */
  private readonly acks = new Map<number, PendingAck>();
  private ackSeq = 0;
  private readonly revokeAckTimeoutMs: number;

  constructor(
    private readonly remote: RemoteDevices,
    private readonly hub: Hub,
    private readonly cache: RevocationCache,
    private readonly logger: Logger,
    options: ClusterOptions = {},
  ) {
    super();
    this.setMaxListeners(0);
    this.link = remote.link;
    this.nodeId = this.link.nodeId;
    this.revokeAckTimeoutMs = options.revokeAckTimeoutMs ?? REVOKE_ACK_TIMEOUT_MS;
    if (!Number.isInteger(this.revokeAckTimeoutMs) || this.revokeAckTimeoutMs < 1) throw new RangeError('"revokeAckTimeoutMs" must be a positive integer');
    this.presence = new NodePresence(this.link, logger, options.nodeTimeoutMs ?? NODE_TIMEOUT_MS, {
      gone: (node, why) => this.nodeGone(node, why),
      back: (node) => this.requestSync(node),
    });
    this.responder = {
      link: this.link, hub, logger,
      events: this,
      dropDevice: (key) => this.dropDeviceSubscription(key),
    };
  }

  get nodeTimeoutMs(): number {
    return this.presence.timeoutMs;
  }

  start(): void {
    this.presence.start();
    void this.watchConnection();
    const { link } = this;
    // A node that starts late learns which devices the others hold: they re-announce them on `sync`.
    this.subs.push(link.subscribe<{ node?: unknown; target?: unknown }>(link.subject("sync"), (m) => {
      if (m.node !== this.nodeId && (m.target === undefined || m.target === this.nodeId)) this.announceHeld();
    }));
    this.subs.push(link.subscribe<Partial<Record<keyof RevokeNote, unknown>>>(link.subject("revoke"), (m, msg) => this.onRevoke(m, msg)));
    this.subs.push(link.subscribe<{ ack?: unknown; node?: unknown }>(this.ackSubject, (m) => this.onAck(m)));
    this.subs.push(link.subscribe<Partial<Record<keyof KickNote, unknown>>>(link.subject("kick"), (m) => this.onKick(m)));
    this.subs.push(link.subscribe<ClusterEvent>(link.subject("evt.>"), (e) => this.onEvent(e)));
    this.unhook.push(this.cache.onInvalidate((key) => {
      if (!this.applyingRemote.has(key)) this.publishRevocation(key);
    }));
    this.hookHub();
  }

  /** Publishes this node's device events for the other nodes. */
  private hookHub(): void {
    const on = <K extends keyof HubEventMap>(event: K, fn: (...a: HubEventMap[K]) => void) => {
      this.hub.on(event, fn as never);
      this.unhook.push(() => this.hub.off(event, fn as never));
    };
    const node = this.nodeId;
    on("online", (e) => {
      if (e.remote) return;
      const key = `${e.user}/${e.device}`;
      this.remote.holders.delete(key);
      if (!this.deviceSubs.has(key) && !this.link.closed) {
        this.deviceSubs.set(key, this.link.subscribe<DeviceOp>(this.link.deviceSubject(e.user, e.device), (op, msg) => {
          void answerDeviceOp(this.responder, e.user, e.device, op, msg);
        }));
      }
      this.publishEvent({ kind: "online", node, user: e.user, device: e.device, ts: e.ts, ip: e.ip });
    });
    on("offline", (e) => {
      if (e.remote) return;
      this.dropDeviceSubscription(`${e.user}/${e.device}`);
      this.publishEvent({ kind: "offline", node, user: e.user, device: e.device, ts: e.ts });
    });
    on("data", (e) => {
      if (!e.remote) this.publishEvent({ kind: "data", node, user: e.user, device: e.device, resource: e.resource, out: e.out, ts: e.ts });
    });
    on("traffic", (e) => {
      if (e.remote) return;
      const key = `${e.user}/${e.device}`;
      const now = Date.now();
      if (now - (this.trafficAt.get(key) ?? 0) < TRAFFIC_PUBLISH_MS) return;
      this.trafficAt.set(key, now);
      this.publishEvent({ kind: "traffic", node, user: e.user, device: e.device, stats: this.hub.stats(e.user, e.device) });
    });
  }

  /** Announces every device held here (answer to a `sync`). */
  private announceHeld(): void {
    for (const key of this.deviceSubs.keys()) {
      const [user, device] = key.split("/") as [string, string];
      const s = this.hub.get(user, device);
      if (s) this.publishEvent({ kind: "online", node: this.nodeId, user, device, ts: s.connectedAt, ip: s.ip });
    }
  }

  /**
   * Resolves once every revocation published so far was acknowledged by every node live when it was sent (each
   * acknowledges after dropping the entry), or its wait ({@link ClusterOptions.revokeAckTimeoutMs}) ended, and
   * reached the NATS server. The app awaits this before answering a request, so by the time the revoking call
   * returns every live node refuses what it revoked (a node that did not acknowledge in time is logged).
   * `since`: a {@link revocationMark} taken when the request began; only revocations sent after it are waited for.
   */
  async barrier(since = 0): Promise<void> {
    if (this.unflushed && !this.link.closed) {
      this.unflushed = false;
      // A flush covers every publish made before it; concurrent requests wait for the same one.
      this.flushing = this.link.nc.flush().catch((err: unknown) => this.logger.warn({ err }, "cluster flush failed"));
    }
    if (this.acks.size > 0) {
      const mine: Promise<void>[] = [];
      for (const [id, a] of this.acks) if (id > since) mine.push(a.settled);
      await Promise.all(mine);
    }
    await this.flushing;
  }

  /** The id of the last revocation sent: see {@link barrier}. */
  revocationMark(): number {
    return this.ackSeq;
  }

  /** The other nodes this node hears from (heartbeats or events within the node timeout). */
  liveNodes(): string[] {
    return this.presence.live();
  }

  private get ackSubject(): string {
    return this.link.subject(`revoke-ack.${this.nodeId}`);
  }

  /** Tells every node to drop `key`; the live ones acknowledge (see {@link barrier}). */
  private publishRevocation(key: string): void {
    const { link } = this;
    // While NATS is down nobody could answer: the message goes when it is back, and the entries' TTL bounds the rest.
    const live = link.connected ? this.presence.live() : [];
    if (live.length === 0) {
      if (link.publish(link.subject("revoke"), { key, node: this.nodeId } satisfies RevokeNote)) this.unflushed = true;
      return;
    }
    const ack = ++this.ackSeq;
    if (!link.publish(link.subject("revoke"), { key, node: this.nodeId, ack } satisfies RevokeNote, this.ackSubject)) return;
    this.unflushed = true;
    const waiting = new Set(live);
    let resolve!: () => void;
    const settled = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      this.logger.warn({ event: "cluster_revoke_unacked", nodes: [...waiting], waitedMs: this.revokeAckTimeoutMs },
        "a revocation was not acknowledged in time by every live node; their cached entry expires within 60 s");
      end();
    }, this.revokeAckTimeoutMs);
    timer.unref();
    const end = () => {
      clearTimeout(timer);
      this.acks.delete(ack);
      resolve();
    };
    const acked = (node: string) => {
      if (waiting.delete(node) && waiting.size === 0) end();
    };
    this.acks.set(ack, { settled, acked, end });
  }

  private onAck(m: { ack?: unknown; node?: unknown }): void {
    if (typeof m.ack !== "number" || typeof m.node !== "string") return;
    this.acks.get(m.ack)?.acked(m.node);
  }

  /** Asks the other nodes (or only `target`) to announce the devices they hold. */
  requestSync(target?: string): void {
    this.link.publish(this.link.subject("sync"), target ? { node: this.nodeId, target } : { node: this.nodeId });
  }

  resources(user: string, device: string): Promise<Record<string, { kind: string }>> {
    return this.remote.resources(user, device);
  }

  resourceApi(user: string, device: string, resource: string, timeoutMs: number): Promise<ResourceApi> {
    return this.remote.resourceApi(user, device, resource, timeoutMs);
  }

  /** See {@link RemoteDevices.notify}; the holder node's parts get it as a `notify` event. */
  notify(user: string, device: string, kind: string, payload: unknown): void {
    this.remote.notify(user, device, kind, payload);
  }

  /** Tells the node holding the device what this node's subscribers want; it gets a `stream` event. */
  announceStream(user: string, device: string, resource: string, interval: number | null): void {
    this.remote.announceStream(user, device, resource, interval);
  }

  /** An account event made on this node (issue 18: a queued call finished) for the streams of the other nodes. */
  publishAccountEvent(user: string, type: "call", data: AccountEventData): void {
    this.publishEvent({ kind: "account", node: this.nodeId, user, device: data.device, type, data });
  }

  async close(): Promise<void> {
    for (const u of this.unhook.splice(0)) u();
    for (const a of [...this.acks.values()]) a.end();
    await this.presence.stop();
    if (!this.link.closed) {
      for (const s of this.subs) s.unsubscribe();
      for (const s of this.deviceSubs.values()) s.unsubscribe();
    }
    this.subs.length = 0;
    this.deviceSubs.clear();
  }

  /** Stops answering for a device this node no longer holds. */
  private dropDeviceSubscription(key: string): void {
    if (!this.link.closed) this.deviceSubs.get(key)?.unsubscribe();
    this.deviceSubs.delete(key);
  }

  private publishEvent(e: ClusterEvent): void {
    this.link.publish(this.link.subject(`evt.${e.user}.${e.device}`), e);
  }

  private onEvent(e: ClusterEvent): void {
    if (e.node === this.nodeId) return;
    this.presence.seen(e.node);
    const key = `${e.user}/${e.device}`;
    const ref = { user: e.user, device: e.device, remote: true };
    const holders = this.remote.holders;
    switch (e.kind) {
      case "online": {
        const local = this.hub.get(e.user, e.device);
        // One live session per device across the cluster: the newer session wins; ties go to the larger node id.
        if (local && (local.connectedAt < e.ts || (local.connectedAt === e.ts && this.nodeId < e.node))) {
          // Silent: subscribers here get the remote "online" below, not a spurious "offline".
          this.hub.closeSession(e.user, e.device, CLOSE.replaced, "replaced by a new session on another node", false);
          this.dropDeviceSubscription(key);
        }
        holders.set(key, { node: e.node, ts: e.ts, stats: { connected: true, connected_ts: e.ts, ip_address: e.ip, rx_bytes: 0, tx_bytes: 0 } });
        this.hub.emit("online", { ...ref, ts: e.ts, ip: e.ip });
        return;
      }
      case "offline": {
        const holder = holders.get(key);
        if (holder && holder.node !== e.node) return; // a stale node's late offline
        holders.delete(key);
        this.hub.emit("offline", { ...ref, ts: e.ts });
        return;
      }
      case "data":
        this.hub.emit("data", { ...ref, resource: e.resource, out: e.out, ts: e.ts });
        return;
      case "account":
        this.emit("account", e.user, e.type, { ...e.data, device: e.device });
        return;
      case "traffic": {
        const holder = holders.get(key);
        if (holder && holder.node === e.node) holder.stats = e.stats;
        this.hub.emit("traffic", ref);
        return;
      }
    }
  }

  /** Drops a dead (or closed) node: its devices go offline here, as if it had announced them offline. */
  private nodeGone(node: string, why: "silent" | "closed"): void {
    // A node gone has nothing to acknowledge any more.
    for (const a of [...this.acks.values()]) a.acked(node);
    const ts = Date.now();
    let dropped = 0;
    for (const [key, holder] of [...this.remote.holders]) {
      if (holder.node !== node) continue;
      this.remote.holders.delete(key);
      const [user, device] = key.split("/") as [string, string];
      this.hub.emit("offline", { user, device, remote: true, ts });
      dropped++;
    }
    if (why === "silent") this.logger.warn({ event: "cluster_node_dead", node, devices: dropped, timeoutMs: this.nodeTimeoutMs }, "cluster node silent; its devices are offline");
  }

  /** Follows the NATS connection: down → calls fail fast; back → ask the other nodes to re-announce. */
  private async watchConnection(): Promise<void> {
    try {
      for await (const s of this.link.nc.status()) {
        if (s.type === "disconnect") {
          this.link.connected = false;
          this.logger.warn({ event: "cluster_disconnected" }, "NATS connection lost; remote calls answer 503 until it is back");
        } else if (s.type === "reconnect") {
          this.link.connected = true;
          this.logger.info({ event: "cluster_reconnected" }, "NATS connection back");
          // Heartbeats missed meanwhile made us drop the others' devices (and them ours): re-announce.
          this.presence.beat();
          this.requestSync();
          this.announceHeld();
        }
      }
    } catch {
      // the status iterator ends when the connection closes
    }
  }

  /**
   * Another node's kick: closes the device's session here and one being admitted here. The holder also gets the
   * `kick` op on the device's subject (for nodes that predate this subject); the two arrive back to back, and the
   * second close finds nothing left to close.
   */
  private onKick(m: Partial<Record<keyof KickNote, unknown>>): void {
    if (m.node === this.nodeId || typeof m.user !== "string" || typeof m.device !== "string" || typeof m.code !== "number") return;
    this.hub.kickHere(m.user, m.device, m.code, typeof m.reason === "string" ? m.reason.slice(0, 100) : "");
  }

  /** Another node's revocation: drop the entry here, then acknowledge it when asked to (the sender waits for it). */
  private onRevoke(m: Partial<Record<keyof RevokeNote, unknown>>, msg: Msg): void {
    if (m.node === this.nodeId || typeof m.key !== "string") return;
    this.applyingRemote.add(m.key);
    try {
      this.cache.invalidateLocal(m.key);
    } finally {
      this.applyingRemote.delete(m.key);
    }
    if (typeof m.ack === "number" && msg.reply && !this.link.closed) {
      try {
        msg.respond(this.link.codec.encode({ ack: m.ack, node: this.nodeId }));
      } catch (err) {
        this.logger.warn({ err }, "cluster revocation acknowledgement failed");
      }
    }
  }
}
