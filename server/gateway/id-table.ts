/**
 * The pending calls of a device session by call id: a `Map<number, V>` for numeric ids that allocates nothing per
 * call (issue 15). An open-addressing table (linear probing, deletion by backward shift, so no tombstones), ids in a
 * `Float64Array`, values in a plain array; it only allocates when it grows past twice the most calls it ever held.
 *
 * Why not a `Map`: a `Map` whose entries are added and deleted on every call (one per relay call, a few dozen in
 * flight) rebuilds its hash table every few dozen calls, and V8 links each replaced table to the one that replaced
 * it. A replaced table that the young-generation GC had already moved to the old generation keeps its successor
 * alive until the next full GC, and that one the next: with `--trace-gc-nvp`, ~150 KB were promoted per scavenge
 * at 24k calls/s, and the sampling heap profiler (objects that outlive a scavenge) put the largest share of them
 * in `Map.prototype.set`/`delete` under `JsonSession.call`, with the calls' promises and frames they held.
 *
 * Ids are what sessions hand out in sequence (JSON sessions: from a random start up to 2^53; Thinger sessions:
 * u16), so `id & mask` (ToInt32, exact modulo 2^32) spreads them evenly. A lookup of any other number (an id a
 * device made up: fractional, NaN, huge) just finds nothing.
 */
export class IdTable<V> {
  private ids = new Float64Array(16);
  private values: Array<V | undefined> = new Array<V | undefined>(16).fill(undefined);
  private mask = 15;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(id: number): boolean {
    return this.slotOf(id) >= 0;
  }

  get(id: number): V | undefined {
    const i = this.slotOf(id);
    return i >= 0 ? this.values[i] : undefined;
  }

  /** Adds or replaces the value under `id`. */
  set(id: number, value: V): this {
    const existing = this.slotOf(id);
    if (existing >= 0) {
      this.values[existing] = value;
      return this;
    }
    if ((this.count + 1) * 2 > this.values.length) this.grow();
    let i = id & this.mask;
    while (this.values[i] !== undefined) i = (i + 1) & this.mask;
    this.ids[i] = id;
    this.values[i] = value;
    this.count++;
    return this;
  }

  /** Removes `id`; false when it was not there. */
  delete(id: number): boolean {
    let i = this.slotOf(id);
    if (i < 0) return false;
    this.values[i] = undefined;
    this.count--;
    // Backward shift: move up every later entry of the run whose home slot is not in the cyclic range (i, j].
    const mask = this.mask;
    for (let j = (i + 1) & mask; this.values[j] !== undefined; j = (j + 1) & mask) {
      const home = this.ids[j]! & mask;
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      this.ids[i] = this.ids[j]!;
      this.values[i] = this.values[j];
      this.values[j] = undefined;
      i = j;
    }
    return true;
  }

  /** A snapshot of the entries (for expiry sweeps and closing: the table may change while they are handled). */
  entries(): Array<[number, V]> {
    const out: Array<[number, V]> = [];
    for (let i = 0; i < this.values.length; i++) {
      const v = this.values[i];
      if (v !== undefined) out.push([this.ids[i]!, v]);
    }
    return out;
  }

  private slotOf(id: number): number {
    const mask = this.mask;
    for (let i = id & mask; this.values[i] !== undefined; i = (i + 1) & mask) {
      if (this.ids[i] === id) return i;
    }
    return -1;
  }

  private grow(): void {
    const ids = this.ids;
    const values = this.values;
    this.ids = new Float64Array(values.length * 2);
    this.values = new Array<V | undefined>(values.length * 2).fill(undefined);
    this.mask = values.length * 2 - 1;
    this.count = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v !== undefined) this.set(ids[i]!, v);
    }
  }
}
