import { EventEmitter } from "node:events";
import { AppError } from "../errors.js";
import { CLOSE } from "./protocol.js";
import type { CallResult, DeviceSession, SessionEvents, SessionStats } from "./device-session.js";
import type { CallCancel } from "./call-cancel.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

export interface DeviceRef {
  user: string;
  device: string;
  /** Cluster mode: the event is another node's, re-emitted here by the bridge (the device is not held here). */
  remote?: boolean;
}

export interface HubEventMap {
  online: [DeviceRef & { ts: number; ip: string }];
  offline: [DeviceRef & { ts: number }];
  traffic: [DeviceRef];
  data: [DeviceRef & { resource: string; out: unknown; ts: number }];
  describe: [DeviceRef];
}

/** Where calls go for devices this process does not hold (cluster mode: the NATS bridge). */
export interface RemoteRelay {
  /** `verb`: the REST method, checked against the resource's kind by the node holding the device. */
  call(user: string, device: string, resource: string, input: unknown, hasInput: boolean, timeoutMs: number, verb?: "GET" | "POST"): Promise<CallResult>;
  /** Session stats of a device another node holds, as last announced; undefined if none does. */
  remoteStats(user: string, device: string): SessionStats | undefined;
  /** Asks whichever node holds the device to close its session. */
  kick(user: string, device: string, code: number, reason: string): void;
}

export interface SessionInfo {
  device: string;
  ip_address: string;
  connected_ts: number;
  rx_bytes: number;
  tx_bytes: number;
  inflight: number;
  /** Bytes queued towards the device and not yet taken by its socket (backpressure, capped by maxDeviceBufferedBytes). */
  buffered_bytes: number;
}

/** A kick's close code and reason. */
type Kick = { code: number; reason: string };

/**
 * A device being admitted on this process (credentials checked, session not yet registered): a kick of the
 * device meanwhile (credentials changed, device deleted, account disabled…) is recorded here, because there was no
 * session yet for it to close. The listener closes the new session the same way instead of registering it.
 */
export interface Admitting {
  /** The first kick of the device since {@link Hub.admitting}, if any. */
  readonly closedWith: Kick | undefined;
  /** Stops watching (idempotent): the session registered, or the attempt ended. */
  done(): void;
}

/**
 * Live device sessions of this process, keyed `user/device`, whatever protocol each device speaks (the hub
 * only sees {@link DeviceSession}). One session per device: registering a second
 * replaces (and closes) the first, and the first one's late close never unregisters its successor.
 * A single keepalive sweep pings every session and drops those that stayed silent for a whole interval.
 */
export class Hub extends EventEmitter<HubEventMap> implements SessionEvents {
  private readonly sessions = new Map<string, DeviceSession>();
  private readonly perUser = new Map<string, Set<string>>();
  /** Stats of each device's last ended session, so offline devices still report their counters. */
  private readonly lastStats = new Map<string, SessionStats>();
  /** Devices being admitted, per key (see {@link Admitting}); empty keys are removed. */
  private readonly admissions = new Map<string, Set<{ closedWith: Kick | undefined }>>();
  private sweepTimer: TimerHandle | undefined;
  /**
   * `remote`: cluster mode, where calls for devices held by other nodes go (server/cluster/remote.ts).
   * `timers`: the keepalive sweep's clock (tests pass a fake one; issue 13.6). Event timestamps stay wall-clock.
   */
  constructor(private readonly pingIntervalMs: number, private readonly remote?: RemoteRelay, private readonly timers: Timers = systemTimers) {
    super();
    this.setMaxListeners(0);
    if (!Number.isInteger(pingIntervalMs) || pingIntervalMs < 1) throw new RangeError('"pingIntervalMs" must be a positive integer');
  }

  start(): void {
    this.sweepTimer ??= this.timers.setInterval(() => this.sweep(), this.pingIntervalMs);
    this.sweepTimer.unref?.();
  }

  get size(): number {
    return this.sessions.size;
  }

  get(user: string, device: string): DeviceSession | undefined {
    return this.sessions.get(`${user}/${device}`);
  }

  /**
   * Watches for kicks of the device while a new session of it is admitted: take it before the credential check
   * reads the store, look at it right before {@link register}. A kick that came in between was asked after a
   * change the check may not have seen (the store is written before the kick).
   */
  admitting(user: string, device: string): Admitting {
    const key = `${user}/${device}`;
    const entry: { closedWith: Kick | undefined } = { closedWith: undefined };
    let set = this.admissions.get(key);
    if (!set) this.admissions.set(key, (set = new Set()));
    set.add(entry);
    return {
      get closedWith() {
        return entry.closedWith;
      },
      done: () => {
        const current = this.admissions.get(key);
        if (!current?.delete(entry)) return;
        if (current.size === 0) this.admissions.delete(key);
      },
    };
  }

  register(session: DeviceSession): void {
    const old = this.sessions.get(session.key);
    this.sessions.set(session.key, session);
    let set = this.perUser.get(session.user);
    if (!set) this.perUser.set(session.user, (set = new Set()));
    set.add(session.device);
    if (old && old !== session) {
      old.close(CLOSE.replaced, "replaced by a new session");
    }
    this.emit("online", { user: session.user, device: session.device, ts: session.connectedAt, ip: session.ip });
  }

  /** Called when a session's socket closed. Only unregisters the session that is current. */
  /** `announce = false` when the device moved to another node, which announced it online already. */
  unregister(session: DeviceSession, announce = true): void {
    session.markClosed();
    if (this.sessions.get(session.key) !== session) return;
    this.sessions.delete(session.key);
    const set = this.perUser.get(session.user);
    set?.delete(session.device);
    if (set?.size === 0) this.perUser.delete(session.user);
    this.lastStats.set(session.key, { ...session.stats(), connected: false });
    if (announce) this.emit("offline", { user: session.user, device: session.device, ts: Date.now() });
  }

  /**
   * Calls a device resource here or, in cluster mode, on the node holding it. `verb` (the REST method) is for
   * that node's kind check (relay/kinds.ts); for a session held here the relay checked it before calling.
   */
  call(user: string, device: string, resource: string, input: unknown, hasInput: boolean, timeoutMs: number, verb?: "GET" | "POST", cancel?: CallCancel): Promise<CallResult> {
    const s = this.sessions.get(`${user}/${device}`);
    if (s) return s.call(resource, input, hasInput, timeoutMs, cancel);
    if (!this.remote) return Promise.reject(new AppError("device_offline"));
    const forwarded = this.remote.call(user, device, resource, input, hasInput, timeoutMs, verb);
    return cancel ? untilCancelled(forwarded, cancel) : forwarded;
  }

  stats(user: string, device: string): SessionStats {
    const s = this.get(user, device);
    if (s) return s.stats();
    const remote = this.remote?.remoteStats(user, device);
    if (remote) return remote;
    return this.lastStats.get(`${user}/${device}`) ?? { connected: false, connected_ts: null, ip_address: null, rx_bytes: 0, tx_bytes: 0 };
  }

  forget(user: string, device: string): void {
    this.lastStats.delete(`${user}/${device}`);
  }

  list(user: string): SessionInfo[] {
    const out: SessionInfo[] = [];
    for (const device of this.perUser.get(user) ?? []) {
      const s = this.sessions.get(`${user}/${device}`)!;
      out.push({ device, ip_address: s.ip, connected_ts: s.connectedAt, rx_bytes: s.rxBytes, tx_bytes: s.txBytes, inflight: s.inflight, buffered_bytes: s.bufferedBytes });
    }
    return out.sort((a, b) => a.device.localeCompare(b.device));
  }

  closeSession(user: string, device: string, code: number, reason: string, announce = true): boolean {
    const s = this.get(user, device);
    if (!s) return false;
    s.close(code, reason);
    this.unregister(s, announce);
    return true;
  }

  /** Closes the device's session wherever it is: here, or (cluster mode) on the node holding it. */
  kick(user: string, device: string, code: number, reason: string): void {
    this.kickHere(user, device, code, reason);
    this.remote?.kick(user, device, code, reason);
  }

  /**
   * A kick's share on this node: closes the device's session here and a session of it being admitted here (see
   * {@link Admitting}). Kicks follow a change of the device or account (credentials, deletion, disable); a plain
   * {@link closeSession} (closed by its user, replaced by a newer session elsewhere) leaves admissions alone.
   */
  kickHere(user: string, device: string, code: number, reason: string): void {
    for (const a of this.admissions.get(`${user}/${device}`) ?? []) a.closedWith ??= { code, reason };
    this.closeSession(user, device, code, reason);
  }

  /** Closes every session (shutdown): pending calls fail with device_disconnected. */
  closeAll(code: number = CLOSE.goingAway, reason = "server shutting down"): void {
    this.timers.clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const s of [...this.sessions.values()]) {
      s.close(code, reason);
      this.unregister(s);
    }
  }

  /** One pass of the keepalive: terminate sessions silent since the last pass, ping the others. */
  sweep(): void {
    for (const s of [...this.sessions.values()]) {
      if (!s.sweep()) {
        s.terminate();
        this.unregister(s);
      }
    }
  }

  // SessionEvents
  onDescribe(s: DeviceSession): void {
    this.emit("describe", { user: s.user, device: s.device });
  }
  onData(s: DeviceSession, resource: string, out: unknown): void {
    this.emit("data", { user: s.user, device: s.device, resource, out, ts: Date.now() });
  }
  onTraffic(s: DeviceSession): void {
    if (this.listenerCount("traffic") > 0) this.emit("traffic", { user: s.user, device: s.device });
  }
}

/**
 * A forwarded call the caller stopped waiting for: the local wait ends at once (the node holding the device
 * still runs it to its own timeout; its answer is dropped here).
 */
function untilCancelled<T>(p: Promise<T>, cancel: CallCancel): Promise<T> {
  if (cancel.reason) {
    p.catch(() => undefined);
    return Promise.reject(cancel.reason);
  }
  return new Promise<T>((resolve, reject) => {
    cancel.on(reject);
    p.then(resolve, reject).finally(() => cancel.off());
  });
}
