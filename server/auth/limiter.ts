/** A clock the limiters and timers read, injectable in tests. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export interface LimitResult {
  allowed: boolean;
  /** Seconds until the key may try again (only when not allowed). */
  retryAfterS: number;
}

/** The answer to every allowed hit: one shared object, not one per call (read-only for callers). */
const ALLOWED: LimitResult = Object.freeze({ allowed: true, retryAfterS: 0 });

/**
 * Fixed-window counter per key. Bounded: when more than `maxKeys` keys are tracked, expired windows are
 * swept and, if still full, the oldest keys dropped, so a flood of distinct keys cannot grow memory.
 */
export class WindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly clock: Clock = systemClock,
    private readonly maxKeys = 100_000,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('"limit" must be a positive integer');
    if (!Number.isInteger(windowMs) || windowMs < 1) throw new RangeError('"windowMs" must be a positive integer');
  }

  /** Counts one event for `key` and says whether it is within the limit. */
  hit(key: string): LimitResult {
    const w = this.current(key);
    w.count += 1;
    return this.result(w);
  }

  /** Says whether `key` is over the limit without counting. */
  peek(key: string): LimitResult {
    const now = this.clock.now();
    const w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) return ALLOWED;
    return { allowed: w.count < this.limit, retryAfterS: Math.max(1, Math.ceil((w.start + this.windowMs - now) / 1000)) };
  }

  /**
   * Takes back one event counted by {@link hit} in the current window (a reservation that turned out not to
   * count, e.g. an attempt that was refused or succeeded). A no-op once the window has rolled over.
   */
  release(key: string): void {
    const w = this.windows.get(key);
    if (w && w.count > 0 && this.clock.now() - w.start < this.windowMs) w.count -= 1;
  }

  reset(key: string): void {
    this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }

  private current(key: string): { start: number; count: number } {
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (!w && this.windows.size >= this.maxKeys) this.sweep(now);
      w = { start: now, count: 0 };
      this.windows.delete(key);
      this.windows.set(key, w);
    }
    return w;
  }

  private result(w: { start: number; count: number }): LimitResult {
    if (w.count <= this.limit) return ALLOWED;
    return { allowed: false, retryAfterS: Math.max(1, Math.ceil((w.start + this.windowMs - this.clock.now()) / 1000)) };
  }

  private sweep(now: number): void {
    for (const [k, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(k);
    // Still full: drop the oldest tenth (Map iterates in insertion order).
    if (this.windows.size >= this.maxKeys) {
      let n = Math.ceil(this.maxKeys / 10);
      for (const k of this.windows.keys()) {
        if (n-- <= 0) break;
        this.windows.delete(k);
      }
    }
  }
}
