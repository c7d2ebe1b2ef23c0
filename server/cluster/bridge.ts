import { randomUUID } from "node:crypto";
import { ErrorCode, JSONCodec, NatsError, type NatsConnection, type Subscription, type Msg } from "nats";
import { AppError, type ErrorCode as AppErrorCode, ERROR_CODES } from "../errors.js";
import type { Logger } from "../log.js";
import type { Hub, HubEventMap } from "../gateway/hub.js";
import type { CallResult, SessionStats } from "../gateway/device-session.js";
import { CLOSE } from "../gateway/protocol.js";
import type { RevocationCache } from "../auth/authenticator.js";
import { type CallVerb, checkVerb, knownKinds, type ResourceApi, resourceApi } from "../relay/kinds.js";

/** Extra time a remote call waits beyond the device timeout before the bridge gives up on the holder node. */
const REMOTE_MARGIN_MS = 1_000;
/** Remote stats refresh at most this often per device (byte counters). */
const TRAFFIC_PUBLISH_MS = 1_000;
/** Default {@link ClusterOptions.nodeTimeoutMs}: a node silent this long is dead (THINGRELAY_NODE_TIMEOUT_MS). */
export const NODE_TIMEOUT_MS = 6_000;

export interface ClusterOptions {
  /** Subject prefix (tests use their own so runs never mix). */
  prefix?: string;
  /**
   * A node whose heartbeat (sent every third of this) has not arrived for this long is dead: its devices are
   * shown offline and calls to them answer device_offline. Detection takes at most 4/3 of it (the sweep runs
   * with the heartbeat), 8 s with the default 6 s.
   */
  nodeTimeoutMs?: number;
}

type DeviceOp =
  | { op: "call"; resource: string; in?: unknown; hasInput: boolean; timeoutMs: number; verb?: CallVerb }
  | { op: "stats" }
  | { op: "api" }
  | { op: "resource_api"; resource: string; timeoutMs: number }
  | { op: "stream"; node: string; resource: string; interval: number | null }
  | { op: "kick"; code: number; reason: string }
  | { op: "notify"; kind: string; payload: unknown };

type Reply =
  | { ok: true; hasOut?: boolean; out?: unknown; stats?: SessionStats; resources?: Record<string, { kind: string }>; api?: ResourceApi }
  | { ok: false; code: AppErrorCode; status: number; message: string; headers: Record<string, string> };

type ClusterEvent =
  | { kind: "online"; node: string; user: string; device: string; ts: number; ip: string }
  | { kind: "offline"; node: string; user: string; device: string; ts: number }
  | { kind: "data"; node: string; user: string; device: string; resource: string; out: unknown; ts: number }
  | { kind: "traffic"; node: string; user: string; device: string; stats: SessionStats }
  | { kind: "account"; node: string; user: string; device: string; type: "call"; data: Record<string, unknown> };

/** `<prefix>.node`: a node's heartbeat (`alive`) or its goodbye when it closes (`gone`). */
type NodeBeat = { node: string; state: "alive" | "gone" };

export interface RemoteStreamSink {
  /** Another node's wish for a device resource stream held here (interval ms; null = no subscribers there). */
  setRemoteInterval(user: string, device: string, resource: string, node: string, interval: number | null): void;
}

/**
 * Cluster mode over NATS (DESIGN §7): each node subscribes `thingrelay.dev.<user>.<device>` for the device
 * sessions it holds and answers calls, stats, resource lists and stream requests for them through NATS
 * request/reply. Device events (online, offline, data, traffic) and token revocations are published to every
 * node; a device that connects to a second node takes over and the first node closes its session (4000).
 * No holder answering → NATS "no responders" → `device_offline`.
 */
export class ClusterBridge {
  readonly nodeId = randomUUID();
  private readonly codec = JSONCodec<unknown>();
  private readonly deviceSubs = new Map<string, Subscription>();
  private readonly subs: Subscription[] = [];
  private readonly remoteHolders = new Map<string, { node: string; ts: number; stats: SessionStats }>();
  private readonly trafficAt = new Map<string, number>();
  private readonly applyingRemote = new Set<string>();
  private readonly unhook: Array<() => void> = [];
  private readonly notifyListeners = new Set<(user: string, device: string, kind: string, payload: unknown) => void>();
  private readonly accountListeners = new Set<(user: string, type: "call", data: { device: string } & Record<string, unknown>) => void>();
  streamSink: RemoteStreamSink | undefined;
  private unflushed = false;
  private flushing: Promise<void> | undefined;
  /** Last sign of life (heartbeat or event) of every other node we know, by node id. */
  private readonly lastSeen = new Map<string, number>();
  /** Nodes declared dead for silence: if one speaks again it is asked to re-announce its devices. */
  private readonly wasDead = new Set<string>();
  private beatTimer: NodeJS.Timeout | undefined;
  /** False while the NATS connection is down: remote calls then answer 503 at once instead of waiting. */
  private connected = true;
  private readonly prefix: string;
  readonly nodeTimeoutMs: number;

  constructor(
    private readonly nc: NatsConnection,
    private readonly hub: Hub,
    private readonly cache: RevocationCache,
    private readonly logger: Logger,
    options: ClusterOptions | string = {},
  ) {
    const o = typeof options === "string" ? { prefix: options } : options;
    this.prefix = o.prefix ?? "thingrelay";
    this.nodeTimeoutMs = o.nodeTimeoutMs ?? NODE_TIMEOUT_MS;
    if (!Number.isInteger(this.nodeTimeoutMs) || this.nodeTimeoutMs < 1) throw new RangeError('"nodeTimeoutMs" must be a positive integer');
  }

  start(): void {
    this.subs.push(this.nc.subscribe(`${this.prefix}.node`, { callback: (err, msg) => !err && this.onBeat(msg) }));
    this.beatTimer = setInterval(() => this.beat(), Math.max(1, Math.floor(this.nodeTimeoutMs / 3)));
    this.beatTimer.unref();
    this.beat();
    void this.watchConnection();
    // A node that starts late learns which devices the others hold: they re-announce them on `sync`.
    this.subs.push(this.nc.subscribe(`${this.prefix}.sync`, { callback: (err, msg) => !err && this.onSync(msg) }));
    this.subs.push(this.nc.subscribe(`${this.prefix}.revoke`, { callback: (err, msg) => !err && this.onRevoke(msg) }));
    this.subs.push(this.nc.subscribe(`${this.prefix}.evt.>`, { callback: (err, msg) => !err && this.onEvent(msg) }));
    this.unhook.push(this.cache.onInvalidate((key) => {
      if (this.applyingRemote.has(key)) return;
      if (this.publish(`${this.prefix}.revoke`, { key, node: this.nodeId })) this.unflushed = true;
    }));
    const on = <K extends keyof HubEventMap>(event: K, fn: (...a: HubEventMap[K]) => void) => {
      this.hub.on(event, fn as never);
      this.unhook.push(() => this.hub.off(event, fn as never));
    };
    on("online", (e) => {
      if (isRemote(e)) return;
      const key = `${e.user}/${e.device}`;
      this.remoteHolders.delete(key);
      if (!this.deviceSubs.has(key) && !this.nc.isClosed()) {
        this.deviceSubs.set(key, this.nc.subscribe(this.deviceSubject(e.user, e.device), { callback: (err, msg) => !err && void this.onDeviceOp(e.user, e.device, msg) }));
      }
      this.publishEvent({ kind: "online", node: this.nodeId, user: e.user, device: e.device, ts: e.ts, ip: e.ip });
    });
    on("offline", (e) => {
      if (isRemote(e)) return;
      const key = `${e.user}/${e.device}`;
      this.dropDeviceSubscription(key);
      this.publishEvent({ kind: "offline", node: this.nodeId, user: e.user, device: e.device, ts: e.ts });
    });
    on("data", (e) => {
      if (isRemote(e)) return;
      this.publishEvent({ kind: "data", node: this.nodeId, user: e.user, device: e.device, resource: e.resource, out: e.out, ts: e.ts });
    });
    on("traffic", (e) => {
      if (isRemote(e)) return;
      const key = `${e.user}/${e.device}`;
      const now = Date.now();
      if (now - (this.trafficAt.get(key) ?? 0) < TRAFFIC_PUBLISH_MS) return;
      this.trafficAt.set(key, now);
      this.publishEvent({ kind: "traffic", node: this.nodeId, user: e.user, device: e.device, stats: this.hub.stats(e.user, e.device) });
    });
  }

  private onSync(msg: Msg | undefined): void {
    if (msg) {
      let m: { node?: unknown; target?: unknown };
      try {
        m = this.codec.decode(msg.data) as typeof m;
      } catch {
        return;
      }
      if (m.node === this.nodeId || (m.target !== undefined && m.target !== this.nodeId)) return;
    }
    for (const key of this.deviceSubs.keys()) {
      const [user, device] = key.split("/") as [string, string];
      const s = this.hub.get(user, device);
      if (s) this.publishEvent({ kind: "online", node: this.nodeId, user, device, ts: s.connectedAt, ip: s.ip });
    }
  }

  /**
   * Resolves once every revocation published so far reached the NATS server, which forwards it to the other
   * nodes before anything sent later. The app awaits this before answering a request, so a revocation has
   * been sent to every node by the time the revoking call returns.
   */
  async barrier(): Promise<void> {
    if (this.unflushed && !this.nc.isClosed()) {
      this.unflushed = false;
      // A flush covers every publish made before it; concurrent requests wait for the same one.
      this.flushing = this.nc.flush().catch((err: unknown) => this.logger.warn({ err }, "cluster flush failed"));
    }
    await this.flushing;
  }

  /** Asks the other nodes (or only `target`) to announce the devices they hold. */
  requestSync(target?: string): void {
    this.publish(`${this.prefix}.sync`, target ? { node: this.nodeId, target } : { node: this.nodeId });
  }

  /** Stats of a device another node holds (connect time and address from its announcement, byte counters at most ~1 s old). */
  remoteStats(user: string, device: string): SessionStats | undefined {
    return this.remoteHolders.get(`${user}/${device}`)?.stats;
  }

  async call(user: string, device: string, resource: string, input: unknown, hasInput: boolean, timeoutMs: number, verb?: CallVerb): Promise<CallResult> {
    const op: DeviceOp = hasInput ? { op: "call", resource, in: input, hasInput, timeoutMs } : { op: "call", resource, hasInput, timeoutMs };
    if (verb) op.verb = verb;
    const r = await this.request(user, device, op, timeoutMs + REMOTE_MARGIN_MS);
    return r.hasOut ? { hasOut: true, out: r.out } : { hasOut: false };
  }

  async stats(user: string, device: string): Promise<SessionStats | null> {
    try {
      return (await this.request(user, device, { op: "stats" }, 2_000)).stats ?? null;
    } catch (err) {
      if (err instanceof AppError && err.code === "device_offline") return null;
      throw err;
    }
  }

  async resources(user: string, device: string): Promise<Record<string, { kind: string }>> {
    return (await this.request(user, device, { op: "api" }, 2_000)).resources ?? {};
  }

  /** A resource's `/api` (kind and state), from the node holding the device. */
  async resourceApi(user: string, device: string, resource: string, timeoutMs: number): Promise<ResourceApi> {
    const r = await this.request(user, device, { op: "resource_api", resource, timeoutMs }, timeoutMs + REMOTE_MARGIN_MS);
    if (!r.api) throw new AppError("internal_error", "the node holding the device sent no resource description");
    return r.api;
  }

  kick(user: string, device: string, code: number, reason: string): void {
    this.publish(this.deviceSubject(user, device), { op: "kick", code, reason } satisfies DeviceOp);
  }

  /**
   * Fire-and-forget note to whichever node holds the device (issue 18: a property edit to push, a queued
   * call to deliver). Nobody holds it: dropped, as the store has the data for the device's next connect.
   */
  notify(user: string, device: string, kind: string, payload: unknown): void {
    this.publish(this.deviceSubject(user, device), { op: "notify", kind, payload } satisfies DeviceOp);
  }

  /** Listens to {@link notify} notes for devices held here; returns the unsubscribe function. */
  onNotify(fn: (user: string, device: string, kind: string, payload: unknown) => void): () => void {
    this.notifyListeners.add(fn);
    return () => this.notifyListeners.delete(fn);
  }

  /** An account event made on this node (issue 18: a queued call finished) for the streams of the other nodes. */
  publishAccountEvent(user: string, type: "call", data: { device: string } & Record<string, unknown>): void {
    this.publishEvent({ kind: "account", node: this.nodeId, user, device: data.device, type, data });
  }

  /** Listens to the other nodes' {@link publishAccountEvent}; returns the unsubscribe function. */
  onAccountEvent(fn: (user: string, type: "call", data: { device: string } & Record<string, unknown>) => void): () => void {
    this.accountListeners.add(fn);
    return () => this.accountListeners.delete(fn);
  }

  /** Tells the node holding the device what this node's subscribers want (null = none left here). */
  announceStream(user: string, device: string, resource: string, interval: number | null): void {
    const op: DeviceOp = { op: "stream", node: this.nodeId, resource, interval };
    this.publish(this.deviceSubject(user, device), op);
  }

  async close(): Promise<void> {
    clearInterval(this.beatTimer);
    for (const u of this.unhook.splice(0)) u();
    // A clean stop says so: the others drop this node's devices at once instead of after nodeTimeoutMs.
    if (this.publish(`${this.prefix}.node`, { node: this.nodeId, state: "gone" } satisfies NodeBeat)) {
      await this.nc.flush().catch(() => undefined);
    }
    if (!this.nc.isClosed()) {
      for (const s of this.subs) s.unsubscribe();
      for (const s of this.deviceSubs.values()) s.unsubscribe();
    }
    this.subs.length = 0;
    this.deviceSubs.clear();
  }

  private deviceSubject(user: string, device: string): string {
    return `${this.prefix}.dev.${user}.${device}`;
  }

  private async request(user: string, device: string, op: DeviceOp, timeout: number): Promise<Extract<Reply, { ok: true }>> {
    // While NATS is down a request would wait for the reconnect or its timeout: fail fast instead.
    if (!this.connected || this.nc.isClosed()) {
      throw new AppError("service_unavailable", "cluster messaging unavailable", { headers: { "Retry-After": "1" } });
    }
    let msg: Msg;
    try {
      msg = await this.nc.request(this.deviceSubject(user, device), this.codec.encode(op), { timeout });
    } catch (err) {
      if (err instanceof NatsError && err.code === ErrorCode.NoResponders) throw new AppError("device_offline");
      if (err instanceof NatsError && err.code === ErrorCode.Timeout) {
        throw new AppError("device_timeout", "the node holding the device did not answer in time", { cause: err });
      }
      throw new AppError("service_unavailable", "cluster messaging unavailable", { cause: err, headers: { "Retry-After": "1" } });
    }
    const reply = this.codec.decode(msg.data) as Reply;
    if (!reply.ok) {
      const code = reply.code in ERROR_CODES ? reply.code : "internal_error";
      throw new AppError(code, reply.message, { status: reply.status, headers: reply.headers });
    }
    return reply;
  }

  private async onDeviceOp(user: string, device: string, msg: Msg): Promise<void> {
    let op: DeviceOp;
    try {
      op = this.codec.decode(msg.data) as DeviceOp;
    } catch {
      return;
    }
    const respond = (r: Reply) => {
      if (msg.reply && !this.nc.isClosed()) msg.respond(this.codec.encode(r));
    };
    try {
      switch (op.op) {
        case "call": {
          // Only a session held here answers: never forward again (hub.call would send it back over NATS).
          const session = this.hub.get(user, device);
          if (!session) {
            this.dropDeviceSubscription(`${user}/${device}`);
            throw new AppError("device_offline");
          }
          await knownKinds(session, op.timeoutMs);
          checkVerb(session, op.resource, op.verb);
          const r = await session.call(op.resource, op.in, op.hasInput, op.timeoutMs);
          respond(r.hasOut ? { ok: true, hasOut: true, out: r.out ?? null } : { ok: true, hasOut: false });
          return;
        }
        case "stats": {
          const session = this.hub.get(user, device);
          if (!session) throw new AppError("device_offline");
          respond({ ok: true, stats: session.stats() });
          return;
        }
        case "api": {
          const s = this.hub.get(user, device);
          if (!s) throw new AppError("device_offline");
          respond({ ok: true, resources: await s.resourceList() });
          return;
        }
        case "resource_api": {
          const session = this.hub.get(user, device);
          if (!session) throw new AppError("device_offline");
          respond({ ok: true, api: await resourceApi(session, op.resource, op.timeoutMs) });
          return;
        }
        case "kick":
          this.hub.closeSession(user, device, op.code, op.reason.slice(0, 100));
          return;
        case "notify":
          for (const fn of this.notifyListeners) fn(user, device, op.kind, op.payload);
          return;
        case "stream":
          if (op.node !== this.nodeId) this.streamSink?.setRemoteInterval(user, device, op.resource, op.node, op.interval);
          return;
      }
    } catch (err) {
      if (err instanceof AppError) respond({ ok: false, code: err.code, status: err.status, message: err.message, headers: err.headers });
      else {
        this.logger.error({ err }, "cluster device op failed");
        respond({ ok: false, code: "internal_error", status: 500, message: "internal server error", headers: {} });
      }
    }
  }

  /** Stops answering for a device this node no longer holds. */
  private dropDeviceSubscription(key: string): void {
    if (!this.nc.isClosed()) this.deviceSubs.get(key)?.unsubscribe();
    this.deviceSubs.delete(key);
  }

  private publishEvent(e: ClusterEvent): void {
    this.publish(`${this.prefix}.evt.${e.user}.${e.device}`, e);
  }

  /** Publishes unless the NATS connection is closed (node shutting down): never throws into hub listeners. */
  private publish(subject: string, payload: unknown): boolean {
    if (this.nc.isClosed()) return false;
    try {
      this.nc.publish(subject, this.codec.encode(payload));
      return true;
    } catch (err) {
      this.logger.warn({ err, subject }, "cluster publish failed");
      return false;
    }
  }

  private onEvent(msg: Msg): void {
    let e: ClusterEvent;
    try {
      e = this.codec.decode(msg.data) as ClusterEvent;
    } catch {
      return;
    }
    if (e.node === this.nodeId) return;
    this.lastSeen.set(e.node, Date.now());
    const key = `${e.user}/${e.device}`;
    const ref = { user: e.user, device: e.device, remote: true };
    switch (e.kind) {
      case "online": {
        const local = this.hub.get(e.user, e.device);
        // One live session per device across the cluster: the newer session wins; ties go to the larger node id.
        if (local && (local.connectedAt < e.ts || (local.connectedAt === e.ts && this.nodeId < e.node))) {
          // Silent: subscribers here get the remote "online" below, not a spurious "offline".
          this.hub.closeSession(e.user, e.device, CLOSE.replaced, "replaced by a new session on another node", false);
          this.dropDeviceSubscription(key);
        }
        this.remoteHolders.set(key, { node: e.node, ts: e.ts, stats: { connected: true, connected_ts: e.ts, ip_address: e.ip, rx_bytes: 0, tx_bytes: 0 } });
        this.hub.emit("online", { ...ref, ts: e.ts, ip: e.ip });
        return;
      }
      case "offline": {
        const holder = this.remoteHolders.get(key);
        if (holder && holder.node !== e.node) return; // a stale node's late offline
        this.remoteHolders.delete(key);
        this.hub.emit("offline", { ...ref, ts: e.ts });
        return;
      }
      case "data":
        this.hub.emit("data", { ...ref, resource: e.resource, out: e.out, ts: e.ts });
        return;
      case "account":
        for (const fn of this.accountListeners) fn(e.user, e.type, { ...e.data, device: e.device });
        return;
      case "traffic": {
        const holder = this.remoteHolders.get(key);
        if (holder && holder.node === e.node) holder.stats = e.stats;
        this.hub.emit("traffic", ref);
        return;
      }
    }
  }

  /** Publishes this node's heartbeat and declares dead the nodes silent for longer than nodeTimeoutMs. */
  private beat(): void {
    this.publish(`${this.prefix}.node`, { node: this.nodeId, state: "alive" } satisfies NodeBeat);
    const now = Date.now();
    for (const [node, seen] of this.lastSeen) {
      if (now - seen > this.nodeTimeoutMs) this.nodeGone(node, "silent");
    }
  }

  private onBeat(msg: Msg): void {
    let b: NodeBeat;
    try {
      b = this.codec.decode(msg.data) as NodeBeat;
    } catch {
      return;
    }
    if (b.node === this.nodeId || typeof b.node !== "string") return;
    if (b.state === "gone") {
      this.nodeGone(b.node, "closed");
      return;
    }
    const known = this.lastSeen.has(b.node);
    this.lastSeen.set(b.node, Date.now());
    // A node we had declared dead is back (it was frozen, or cut from NATS): ask it to re-announce its devices.
    if (!known && this.wasDead.delete(b.node)) this.requestSync(b.node);
  }

  /** Drops a dead (or closed) node: its devices go offline here, as if it had announced them offline. */
  private nodeGone(node: string, why: "silent" | "closed"): void {
    this.lastSeen.delete(node);
    if (why === "silent") this.wasDead.add(node);
    const ts = Date.now();
    let dropped = 0;
    for (const [key, holder] of [...this.remoteHolders]) {
      if (holder.node !== node) continue;
      this.remoteHolders.delete(key);
      const [user, device] = key.split("/") as [string, string];
      const ref = { user, device, remote: true };
      this.hub.emit("offline", { ...ref, ts });
      dropped++;
    }
    if (why === "silent") this.logger.warn({ event: "cluster_node_dead", node, devices: dropped, timeoutMs: this.nodeTimeoutMs }, "cluster node silent; its devices are offline");
  }

  /** Follows the NATS connection: down → calls fail fast; back → ask the other nodes to re-announce. */
  private async watchConnection(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === "disconnect") {
          this.connected = false;
          this.logger.warn({ event: "cluster_disconnected" }, "NATS connection lost; remote calls answer 503 until it is back");
        } else if (s.type === "reconnect") {
          this.connected = true;
          this.logger.info({ event: "cluster_reconnected" }, "NATS connection back");
          // Heartbeats missed meanwhile made us drop the others' devices (and them ours): re-announce.
          this.beat();
          this.requestSync();
          this.onSync(undefined);
        }
      }
    } catch {
      // the status iterator ends when the connection closes
    }
  }

  private onRevoke(msg: Msg): void {
    let m: { key?: unknown; node?: unknown };
    try {
      m = this.codec.decode(msg.data) as typeof m;
    } catch {
      return;
    }
    if (m.node === this.nodeId || typeof m.key !== "string") return;
    this.applyingRemote.add(m.key);
    try {
      this.cache.invalidateLocal(m.key);
    } finally {
      this.applyingRemote.delete(m.key);
    }
  }
}

function isRemote(e: object): boolean {
  return (e as { remote?: boolean }).remote === true;
}
