/**
 * A fake clock for injected timers (server/timers.ts `Timers`, the SDK's `timers` option): time moves only when a
 * test calls `advance`, which runs every timer that falls due, in order, letting promise callbacks settle between
 * them. Structurally compatible with both interfaces, so one fake serves the server and the SDK.
 */
interface Pending {
  id: number;
  at: number;
  fn: () => void;
  every?: number;
}

export interface FakeHandle {
  readonly id: number;
  unref(): FakeHandle;
  ref(): FakeHandle;
  hasRef(): boolean;
}

export class FakeClock {
  private t: number;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(start = 1_700_000_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): FakeHandle {
    return this.add(fn, ms);
  }

  setInterval(fn: () => void, ms: number): FakeHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(h: unknown): void {
    if (h && typeof h === "object" && "id" in h) this.pending.delete((h as FakeHandle).id);
  }

  clearInterval(h: unknown): void {
    this.clearTimeout(h);
  }

  /** How many timers are scheduled (tests assert a schedule was armed or cleared). */
  get size(): number {
    return this.pending.size;
  }

  /** Moves time forward by `ms`, running every timer due on the way (each followed by a microtask flush). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const next = this.nextDue(end);
      if (!next) break;
      this.t = next.at;
      if (next.every !== undefined) next.at += next.every;
      else this.pending.delete(next.id);
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }

  private nextDue(end: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending.values()) if (p.at <= end && (!best || p.at < best.at || (p.at === best.at && p.id < best.id))) best = p;
    return best;
  }

  private add(fn: () => void, ms: number, every?: number): FakeHandle {
    const id = ++this.seq;
    this.pending.set(id, { id, at: this.t + Math.max(0, ms), fn, every });
    const handle: FakeHandle = { id, unref: () => handle, ref: () => handle, hasRef: () => true };
    return handle;
  }
}

/** Lets queued promise callbacks and I/O-free continuations run. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
