import type { Limits } from "../config.js";
import type { Logger } from "../log.js";
import { Repositories } from "../store/repos.js";
import type { CredentialHasher } from "../auth/passwords.js";
import { SlotPool, WindowLimiter } from "../auth/limiter.js";
import { addressKey } from "../auth/address.js";
import type { Admitting, Hub } from "./hub.js";

/** Failed device authentications allowed per address (IPv6: per /64) per minute. */
export const DEVICE_AUTH_FAILURES_PER_MINUTE = 20;

/** Devices per "seen now" update (see {@link DeviceAdmission.touch}). */
const TOUCH_CHUNK = 256;

/** Why a new device socket is refused before it may even authenticate. */
export interface Refusal {
  refused: "throttled" | "busy";
  /** Seconds after which trying again may succeed. */
  retryAfterS: number;
}

/**
 * One unauthenticated device socket, admitted: it holds a slot of the unauthenticated pool and a reserved
 * failed attempt of its address until it settles.
 */
export interface AdmissionHold {
  /** The attempt failed (bad first frame, silence past the deadline, wrong credentials): it stays counted. */
  failed(): void;
  /**
   * Frees the slot (idempotent; true on the first call only). An attempt that did not fail by then — it
   * authenticated, or the peer left without trying — is given back.
   */
  release(): boolean;
}

/**
 * Device authentication shared by every device listener (the JSON gateway, the Thinger legacy and IOTMP
 * listeners): the cap on unauthenticated sockets (global and per address, IPv6 per /64), the per-address
 * throttle of failed attempts, the credential check against the device registry, and the "seen now" stamp.
 * One instance per server, so failures on one protocol count against the others.
 *
 * An attempt is counted as failed *before* its check and given back when it succeeds (as the password grant
 * does), so a parallel burst of wrong guesses gets at most the limit checked; the per-address share of the
 * pool is taken at once, so one address cannot fill the pool and starve every other device.
 */
export class DeviceAdmission {
  private readonly pending: SlotPool;
  private readonly failures: WindowLimiter;
  private readonly touched = new Set<string>();
  private touchQueued = false;
  /** Settles once the touches recorded so far are written (or their write failed). */
  private touchesWritten: Promise<void> = Promise.resolve();

  constructor(
    private readonly repos: Repositories,
    private readonly credentials: CredentialHasher,
    private readonly logger: Logger,
    private readonly limits: Pick<Limits, "maxPendingSockets" | "maxPendingPerAddress" | "authDeadlineMs"> & { deviceAuthFailuresPerMinute?: number },
  ) {
    // One address: its own limit, and never more than a quarter of all the slots.
    this.failures = new WindowLimiter(limits.deviceAuthFailuresPerMinute ?? DEVICE_AUTH_FAILURES_PER_MINUTE, 60_000);
    this.pending = new SlotPool(limits.maxPendingSockets, Math.min(limits.maxPendingPerAddress, Math.max(1, Math.floor(limits.maxPendingSockets / 4))));
  }

  /** Unauthenticated sockets across the server. */
  get unauthenticated(): number {
    return this.pending.inUse;
  }

  get authDeadlineMs(): number {
    return this.limits.authDeadlineMs;
  }

  /** Admits a new socket from `ip` (a slot and a reserved attempt), or says why not. */
  admit(ip: string): AdmissionHold | Refusal {
    const key = addressKey(ip);
    const slot = this.pending.acquire(key);
    if ("refused" in slot) return { refused: "busy", retryAfterS: 1 };
    const attempt = this.failures.hit(key);
    if (!attempt.allowed) {
      this.failures.release(key);
      slot.release();
      return { refused: "throttled", retryAfterS: attempt.retryAfterS };
    }
    let failed = false;
    let released = false;
    return {
      failed: () => {
        failed = true;
      },
      release: () => {
        if (released) return false;
        released = true;
        slot.release();
        if (!failed) this.failures.release(key);
        return true;
      },
    };
  }

  /**
   * The credential check: true when the device is registered, `credentials` match and its account is enabled.
   * Unknown devices, wrong credentials and disabled accounts look the same to the caller; a failure is logged.
   * Store errors throw.
   */
  async verify(user: string, device: string, credentials: string, ip: string): Promise<boolean> {
    const [doc, owner] = await Promise.all([
      this.repos.devices.findOne({ _id: Repositories.deviceKey(user, device) }),
      this.repos.users.findOne({ _id: user }),
    ]);
    if (doc && this.credentials.verify(credentials, doc.credentialsHash) && owner && owner.enabled !== false) return true;
    this.logger.info({ user, device, ip }, "device authentication failed");
    return false;
  }

  /**
   * {@link verify}, watching for kicks of the device from before the store is read (see {@link Admitting}): the
   * watch is returned when the credentials are good (the caller looks at it right before it registers the session,
   * then ends it), undefined otherwise.
   */
  async verifyAdmitting(hub: Pick<Hub, "admitting">, user: string, device: string, credentials: string, ip: string): Promise<Admitting | undefined> {
    const watch = hub.admitting(user, device);
    try {
      if (await this.verify(user, device, credentials, ip)) return watch;
    } catch (err) {
      watch.done();
      throw err;
    }
    watch.done();
    return undefined;
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
    const earlier = this.touchesWritten;
    this.touchesWritten = new Promise<void>((resolve) => {
      setImmediate(() => {
        this.touchQueued = false;
        const keys = [...this.touched];
        this.touched.clear();
        // In chunks: nedb matches `$in` by scanning its list for every candidate, O(keys²) in one update
        // (0.25 s of CPU for the 10,000 touches of a restart).
        const ts = Date.now();
        const writes: Array<Promise<unknown>> = [];
        for (let i = 0; i < keys.length; i += TOUCH_CHUNK) {
          writes.push(this.repos.devices.updateMany({ _id: { $in: keys.slice(i, i + TOUCH_CHUNK) } }, { $set: { lastConnectionTs: ts } }));
        }
        void Promise.allSettled(writes).then(() => resolve());
      });
    }).then(() => earlier);
  }

  /** Resolves once every "seen now" recorded so far is in the store (or its write failed): the write has no other signal. */
  touchedWritten(): Promise<void> {
    return this.touchesWritten;
  }
}

/** True when {@link DeviceAdmission.admit} refused the socket. */
export function isRefusal(x: AdmissionHold | Refusal): x is Refusal {
  return "refused" in x;
}
