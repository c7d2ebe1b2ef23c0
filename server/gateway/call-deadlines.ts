import { AppError } from "../errors.js";
import { CALL_TIMEOUT_SLACK_MS } from "./device-session.js";
import type { TimerHandle, Timers } from "../timers.js";
import type { CallCancel } from "./call-cancel.js";
import type { IdTable } from "./id-table.js";

/** A pending call as the deadlines see it: when it falls due (on the session's `timers`) and how to fail it. */
export interface DeadlineCall {
  at: number;
  timeoutMs: number;
  reject(e: unknown): void;
  /** The caller's cancel, released when the call settles (issue 13.7). */
  cancel?: CallCancel;
}

/**
 * The pending calls of one device session (JSON and Thinger alike), kept in the session's map: {@link add} and
 * {@link take} are the only ways in and out, so a call's cancel is wired and released in one place. The call
 * timeouts: one timer for the earliest deadline instead
 * of a `setTimeout` and `clearTimeout` per call (issue 15), on the session's injected `timers` (issue 13.6).
 * Settled calls leave it armed: when it fires it fails what is due with `device_timeout` and re-arms for the
 * earliest deadline left, so a busy session sets about one timer per call timeout, not one per call.
 */
export class CallDeadlines<P extends DeadlineCall> {
  private timer: TimerHandle | undefined = undefined;
  private timerAt = Infinity;
  private stopped = false;

  constructor(
    private readonly timers: Timers,
    private readonly pending: IdTable<P>,
  ) {}

  /**
   * Adds a call under `id`: failed at its deadline, and at once with the cancel's reason when the caller goes away
   * (its in-flight slot is freed then; the device's late answer matches nothing).
   */
  add(id: number, p: P): void {
    p.cancel?.on((reason) => this.take(id)?.reject(reason));
    this.pending.set(id, p);
    this.watch(p.at);
  }

  /** Removes a pending call to settle it (its cancel released); undefined for an id not pending. */
  take(id: number): P | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    p.cancel?.off();
    return p;
  }

  /** The deadline of a call made now with `timeoutMs`. */
  at(timeoutMs: number): number {
    return this.timers.now() + timeoutMs;
  }

  /** A call due at `at` was added to the pending map. */
  private watch(at: number): void {
    if (at < this.timerAt && !this.stopped) this.arm(at);
  }

  /** The session closed: no timer is left armed. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  /** Arms the timer for `at`, rounded up to the slack, unless it is armed for that slot already. */
  private arm(at: number): void {
    const slot = Math.ceil(at / CALL_TIMEOUT_SLACK_MS) * CALL_TIMEOUT_SLACK_MS;
    if (slot === this.timerAt) return;
    if (this.timer !== undefined) this.timers.clearTimeout(this.timer);
    this.timerAt = slot;
    this.timer = this.timers.setTimeout(() => this.expire(), Math.max(0, slot - this.timers.now()));
    // A pending call never holds the process open alone: its device's socket does, and closing settles it.
    this.timer.unref?.();
  }

  /** The timer fired: fails the calls that are due, re-arms for the earliest deadline left. */
  private expire(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.timers.now();
    let next = Infinity;
    for (const [id, p] of this.pending.entries()) {
      if (p.at <= now) {
        this.take(id);
        p.reject(new AppError("device_timeout", `device did not answer within ${p.timeoutMs} ms`));
      } else if (p.at < next) next = p.at;
    }
    if (next !== Infinity && !this.stopped) this.arm(next);
  }
}
