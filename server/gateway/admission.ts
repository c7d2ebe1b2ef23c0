import type { Limits } from "../config.js";
import type { Logger } from "../log.js";
import { Repositories } from "../store/repos.js";
import type { CredentialHasher } from "../auth/passwords.js";
import { WindowLimiter } from "../auth/limiter.js";

/** Failed device authentications per address and minute before further attempts are refused. */
export const DEVICE_AUTH_FAILURES_PER_MINUTE = 20;

/** Why a new device socket is refused before it may even authenticate. */
export type Refusal = "throttled" | "busy";

/**
 * Device authentication shared by every device listener (the JSON gateway, the Thinger legacy and IOTMP
 * listeners): the cap on unauthenticated sockets (global and per address), the per-address throttle of failed
 * attempts, the credential check against the device registry, and the "seen now" stamp. One instance per
 * server, so failures on one protocol count against the others.
 */
export class DeviceAdmission {
  private pendingSockets = 0;
  private readonly pendingByIp = new Map<string, number>();
  private readonly failures = new WindowLimiter(DEVICE_AUTH_FAILURES_PER_MINUTE, 60_000);
  private readonly touched = new Set<string>();
  private touchQueued = false;

  constructor(
    private readonly repos: Repositories,
    private readonly credentials: CredentialHasher,
    private readonly logger: Logger,
    private readonly limits: Pick<Limits, "maxPendingSockets" | "authDeadlineMs">,
  ) {}

  /** Unauthenticated sockets across the server. */
  get unauthenticated(): number {
    return this.pendingSockets;
  }

  get authDeadlineMs(): number {
    return this.limits.authDeadlineMs;
  }

  /** Whether a new socket from `ip` must be refused before authentication (null: admit it). */
  refusal(ip: string): Refusal | null {
    if (this.pendingSockets >= this.limits.maxPendingSockets) return "busy";
    if (!this.failures.peek(ip).allowed) return "throttled";
    // One address may hold at most a quarter of the unauthenticated slots, so it cannot starve the others.
    if ((this.pendingByIp.get(ip) ?? 0) >= Math.max(1, Math.floor(this.limits.maxPendingSockets / 4))) return "busy";
    return null;
  }

  /**
   * Counts an unauthenticated socket from `ip` until the returned `release` is called (idempotent; true on
   * the first call only).
   */
  hold(ip: string): () => boolean {
    this.pendingSockets++;
    this.pendingByIp.set(ip, (this.pendingByIp.get(ip) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return false;
      released = true;
      this.pendingSockets--;
      const n = (this.pendingByIp.get(ip) ?? 1) - 1;
      if (n <= 0) this.pendingByIp.delete(ip);
      else this.pendingByIp.set(ip, n);
      return true;
    };
  }

  /** Counts a failed attempt (bad frame, silence past the deadline, wrong credentials) against `ip`. */
  failed(ip: string): void {
    this.failures.hit(ip);
  }

  /**
   * The credential check: true when the device is registered and `credentials` match. Unknown devices and wrong
   * credentials look the same to the caller; a failure is logged and counted against `ip`. Store errors throw.
   */
  async verify(user: string, device: string, credentials: string, ip: string): Promise<boolean> {
    const doc = await this.repos.devices.findOne({ _id: Repositories.deviceKey(user, device) });
    if (doc && this.credentials.verify(credentials, doc.credentialsHash)) return true;
    this.failed(ip);
    this.logger.info({ user, device, ip }, "device authentication failed");
    return false;
  }

  /**
   * Records "seen now" (lastConnectionTs) for a device. The writes of one event-loop turn go out as one
   * updateMany: nedb serialises every write as its own file append, and one write per session open and
   * close made a graceful shutdown under 10,000 devices wait ~10 s for the store (BENCHMARKS.md, storm).
   */
  touch(key: string): void {
    this.touched.add(key);
    if (this.touchQueued) return;
    this.touchQueued = true;
    setImmediate(() => {
      this.touchQueued = false;
      const keys = [...this.touched];
      this.touched.clear();
      this.repos.devices.updateMany({ _id: { $in: keys } }, { $set: { lastConnectionTs: Date.now() } }).catch(() => {});
    });
  }
}
