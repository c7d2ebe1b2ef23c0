import { createHash } from "node:crypto";

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

/** Keys longer than this are stored as their SHA-256, so a key's size is bounded whatever the caller passes. */
export const MAX_KEY_LENGTH = 128;

/**
 * Fixed-window counter per key, bounded in memory: at most `maxKeys` keys of at most {@link MAX_KEY_LENGTH}
 * characters (~200 bytes each with the map entry, see docs/security.md). Windows are kept in the order they
 * started, so the ones that have ended are dropped from the front on every call (amortised O(1)); when the
 * table is still full the oldest live window is dropped.
 */
export class WindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    readonly limit: number,
    readonly windowMs: number,
    private readonly clock: Clock = systemClock,
    readonly maxKeys = 50_000,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('"limit" must be a positive integer');
    if (!Number.isInteger(windowMs) || windowMs < 1) throw new RangeError('"windowMs" must be a positive integer');
    if (!Number.isInteger(maxKeys) || maxKeys < 1) throw new RangeError('"maxKeys" must be a positive integer');
  }

  /** Counts one event for `key` and says whether it is within the limit. */
  hit(key: string): LimitResult {
    const w = this.current(boundedKey(key));
    w.count += 1;
    return this.result(w);
  }

  /** Says whether `key` is over the limit without counting. */
  peek(key: string): LimitResult {
    const now = this.clock.now();
    this.expire(now);
    const w = this.windows.get(boundedKey(key));
    if (!w || now - w.start >= this.windowMs) return ALLOWED;
    return { allowed: w.count < this.limit, retryAfterS: Math.max(1, Math.ceil((w.start + this.windowMs - now) / 1000)) };
  }

  /**
   * Takes back one event counted by {@link hit} in the current window (a reservation that turned out not to
   * count, e.g. an attempt that was refused or succeeded). A no-op once the window has rolled over.
   */
  release(key: string): void {
    const w = this.windows.get(boundedKey(key));
    if (w && w.count > 0 && this.clock.now() - w.start < this.windowMs) w.count -= 1;
  }

  reset(key: string): void {
    this.windows.delete(boundedKey(key));
  }

  /** Keys tracked (windows that ended are dropped as the limiter is used). */
  get size(): number {
    return this.windows.size;
  }

  private current(key: string): { start: number; count: number } {
    const now = this.clock.now();
    this.expire(now);
    let w = this.windows.get(key);
    if (!w || now - w.start >= this.windowMs) {
      if (w) this.windows.delete(key);
      // Full of live windows: drop the oldest (Map iterates in insertion order = window start order).
      while (this.windows.size >= this.maxKeys) {
        const oldest = this.windows.keys().next();
        if (oldest.done) break;
        this.windows.delete(oldest.value);
      }
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    return w;
  }

  private result(w: { start: number; count: number }): LimitResult {
    if (w.count <= this.limit) return ALLOWED;
    return { allowed: false, retryAfterS: Math.max(1, Math.ceil((w.start + this.windowMs - this.clock.now()) / 1000)) };
  }

  /** Drops the windows that have ended: they sit at the front, in start order. */
  private expire(now: number): void {
    for (const [k, w] of this.windows) {
      if (now - w.start < this.windowMs) break;
      this.windows.delete(k);
    }
  }
}

function boundedKey(key: string): string {
  return key.length <= MAX_KEY_LENGTH ? key : `#${createHash("sha256").update(key).digest("base64url")}`;
}

/**
 * Slots for work in progress (unauthenticated sockets, sign-ins), bounded in all and per key, so a few
 * clients cannot take every slot. {@link acquire} gives an idempotent release, or the reason it refused.
 */
export class SlotPool {
  private total = 0;
  private readonly byKey = new Map<string, number>();

  constructor(readonly max: number, readonly maxPerKey: number) {}

  get inUse(): number {
    return this.total;
  }

  held(key: string): number {
    return this.byKey.get(key) ?? 0;
  }

  acquire(key: string): { release: () => void } | { refused: "full" | "key_full" } {
    if (this.total >= this.max) return { refused: "full" };
    const n = this.byKey.get(key) ?? 0;
    if (n >= this.maxPerKey) return { refused: "key_full" };
    this.total++;
    this.byKey.set(key, n + 1);
    let done = false;
    return {
      release: () => {
        if (done) return;
        done = true;
        this.total--;
        const left = (this.byKey.get(key) ?? 1) - 1;
        if (left <= 0) this.byKey.delete(key);
        else this.byKey.set(key, left);
      },
    };
  }
}
