import { expect } from "chai";
import { IdTable } from "../server/gateway/id-table.js";

/** A small seeded generator (mulberry32), so a failing sequence can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function expectSame(table: IdTable<string>, model: Map<number, string>, probe: number[]): void {
  expect(table.size).to.equal(model.size);
  expect(new Map(table.entries())).to.deep.equal(model);
  for (const id of probe) {
    expect(table.get(id), `get(${id})`).to.equal(model.get(id));
    expect(table.has(id), `has(${id})`).to.equal(model.has(id));
  }
}

describe("IdTable (pending calls by id)", () => {
  it("behaves as a Map under the sessions' pattern: ids in sequence, settled out of order, a few left pending long", () => {
    for (const seed of [1, 2, 3, 42, 2024]) {
      const next = random(seed);
      const table = new IdTable<string>();
      const model = new Map<number, string>();
      // JSON sessions start anywhere below 2^47 and count up; ids above 2^32 exercise the ToInt32 spread.
      let id = Math.floor(next() * 2 ** 47);
      for (let step = 0; step < 5000; step++) {
        const inFlight = [...model.keys()];
        if (inFlight.length === 0 || (next() < 0.55 && inFlight.length < 80)) {
          id++;
          table.set(id, `call ${id}`);
          model.set(id, `call ${id}`);
        } else {
          // Mostly the oldest settles first; sometimes any one (out of order); some stay long (timeouts).
          const victim = next() < 0.6 ? inFlight[0]! : inFlight[Math.floor(next() * inFlight.length)]!;
          expect(table.delete(victim)).to.equal(true);
          model.delete(victim);
        }
        if (step % 97 === 0) expectSame(table, model, [...inFlight, id, id + 1, id - 200]);
      }
      expectSame(table, model, [...model.keys()]);
    }
  });

  it("keeps every entry reachable when deletions wrap around the end of the table", () => {
    const table = new IdTable<string>();
    // 16 slots: ids 14, 15, 30, 31 all probe from the table's last two slots and wrap to 0 and 1.
    for (const id of [14, 15, 30, 31, 46]) table.set(id, String(id));
    expect(table.delete(15)).to.equal(true);
    expect(table.get(30)).to.equal("30");
    expect(table.get(31)).to.equal("31");
    expect(table.get(46)).to.equal("46");
    expect(table.delete(14)).to.equal(true);
    expect(table.delete(99)).to.equal(false);
    expectSame(table, new Map([[30, "30"], [31, "31"], [46, "46"]]), [14, 15, 30, 31, 46, 0, 1, 2]);
  });

  it("grows past its first size and keeps what it held", () => {
    const table = new IdTable<number>();
    for (let i = 0; i < 1000; i++) table.set(65535 - i, i);
    expect(table.size).to.equal(1000);
    for (let i = 0; i < 1000; i++) expect(table.get(65535 - i)).to.equal(i);
    table.set(65535, -1);
    expect(table.size).to.equal(1000);
    expect(table.get(65535)).to.equal(-1);
  });

  it("finds nothing for ids a device made up (fractional, negative, NaN, huge, infinite)", () => {
    const table = new IdTable<string>();
    table.set(1, "one");
    table.set(2 ** 40 + 1, "big");
    for (const id of [1.5, -1, Number.NaN, 2 ** 53, Number.POSITIVE_INFINITY, 2 ** 32 + 1, 0]) {
      expect(table.get(id), String(id)).to.equal(undefined);
      expect(table.delete(id), String(id)).to.equal(false);
    }
    expect(table.size).to.equal(2);
  });
});
