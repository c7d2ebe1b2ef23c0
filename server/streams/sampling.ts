/** Greatest common divisor of two non-negative integers. */
export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

interface Entry {
  intervalMs: number;
  nextDue: number;
}

/**
 * Who gets which value of one streamed resource. The device samples at the greatest common divisor (GCD) of
 * the subscribers' intervals; each value is then given to the subscribers that are due:
 *
 * - interval 0: every value the device sends (pushed with `device.stream()`, and samples requested by others);
 * - interval I > 0: at most one value per I, on a fixed grid from its first value. Half a GCD tick of slack
 *   absorbs the jitter of the device's timer and of the network, so an every-2nd-tick subscriber does not
 *   slip to every 3rd tick when a sample arrives a few milliseconds early. A pushed value that arrives when a
 *   subscriber is due takes that interval's slot.
 *
 * Pure (time is passed in), so the schedule is tested without a clock.
 */
export class SampleScheduler<K> {
  private readonly subs = new Map<K, Entry>();
  private current = 0;

  get size(): number {
    return this.subs.size;
  }

  /** Interval (ms) to ask the device for: GCD of the positive intervals, 0 when every subscriber only wants pushes. */
  get gcd(): number {
    return this.current;
  }

  /** Adds (or re-adds) a subscriber. Returns true when the GCD changed. */
  add(key: K, intervalMs: number): boolean {
    if (!Number.isInteger(intervalMs) || intervalMs < 0) throw new RangeError('"intervalMs" must be a non-negative integer');
    this.subs.set(key, { intervalMs, nextDue: -Infinity });
    return this.recompute();
  }

  /** Removes a subscriber. Returns true when the GCD changed. */
  remove(key: K): boolean {
    if (!this.subs.delete(key)) return false;
    return this.recompute();
  }

  /** Starts every subscriber's grid afresh (the device reconnected: its next value goes to everyone). */
  reset(): void {
    for (const s of this.subs.values()) s.nextDue = -Infinity;
  }

  /**
   * Decides whether `key` gets a value that arrived at `now` (ms), and advances its schedule if so. `tickMs` is
   * the interval the device actually samples at (smaller than {@link gcd} when other nodes ask for more).
   */
  admit(key: K, now: number, tickMs = this.current): boolean {
    const s = this.subs.get(key);
    if (!s) return false;
    if (s.intervalMs === 0) return true;
    const slack = Math.floor(Math.min(tickMs || this.current, this.current) / 2);
    if (now + slack < s.nextDue) return false;
    // Keep the grid unless we fell a whole interval behind (device was offline, values were missing).
    s.nextDue = now + slack >= s.nextDue + s.intervalMs ? now + s.intervalMs : s.nextDue + s.intervalMs;
    return true;
  }

  /** The subscribers due for a value that arrived at `now`, in insertion order. */
  take(now: number, tickMs = this.current): K[] {
    const out: K[] = [];
    for (const key of this.subs.keys()) if (this.admit(key, now, tickMs)) out.push(key);
    return out;
  }

  private recompute(): boolean {
    let g = 0;
    for (const s of this.subs.values()) if (s.intervalMs > 0) g = gcd(g, s.intervalMs);
    const changed = g !== this.current;
    this.current = g;
    return changed;
  }
}
