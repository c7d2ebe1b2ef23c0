import { expect } from "chai";
import fc from "fast-check";
import { Backoff } from "../device-sdk/index.js";

/** Reconnect delays of the device SDK: capped exponential backoff with equal jitter, random injected. */
describe("device SDK: Backoff", () => {
  const take = (b: Backoff, n: number) => Array.from({ length: n }, () => b.next());

  it("with no jitter drawn (random = 0) the delays are d/2 for d = initial·2^attempt, capped", () => {
    expect(take(new Backoff(100, 1000, () => 0), 7)).to.deep.equal([50, 100, 200, 400, 500, 500, 500]);
  });

  it("with full jitter drawn (random → 1) the delays reach d, never above the cap", () => {
    expect(take(new Backoff(100, 1000, () => 1), 7)).to.deep.equal([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it("jitter sits between: random = 0.5 gives 3d/4", () => {
    expect(take(new Backoff(100, 1000, () => 0.5), 5)).to.deep.equal([75, 150, 300, 600, 750]);
  });

  it("defaults: 500 ms first, 30 s cap", () => {
    const b = new Backoff(undefined, undefined, () => 1);
    expect(b.initialMs).to.equal(500);
    expect(b.maxMs).to.equal(30_000);
    const delays = take(b, 12);
    expect(delays.slice(0, 3)).to.deep.equal([500, 1000, 2000]);
    expect(delays.at(-1)).to.equal(30_000);
  });

  it("reset() starts again from the first delay", () => {
    const b = new Backoff(100, 1000, () => 1);
    take(b, 5);
    b.reset();
    expect(take(b, 2)).to.deep.equal([100, 200]);
  });

  it("every delay lies in [d/2, d] and never exceeds the cap, whatever the random draws (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 60 }),
        (initial, extra, draws) => {
          const max = initial + extra;
          let i = 0;
          const b = new Backoff(initial, max, () => draws[i % draws.length]!);
          for (let attempt = 0; attempt < draws.length; attempt++, i++) {
            const d = Math.min(max, initial * 2 ** attempt);
            const v = b.next();
            if (!(v >= Math.floor(d / 2) && v <= Math.ceil(d) && v <= max)) return false;
          }
          return true;
        },
      ),
      { numRuns: 300 },
    );
  });

  it("stays finite and capped after very many attempts", () => {
    const b = new Backoff(1, 5000, () => 1);
    const delays = take(b, 2000);
    expect(delays.every((d) => Number.isFinite(d) && d <= 5000)).to.equal(true);
    expect(delays.at(-1)).to.equal(5000);
  });

  it("draws differ between two devices, so a reconnect storm spreads out", () => {
    const a = take(new Backoff(1000, 30_000, () => 0.1), 4);
    const b = take(new Backoff(1000, 30_000, () => 0.9), 4);
    for (let i = 0; i < 4; i++) expect(a[i]).to.not.equal(b[i]);
  });

  it("refuses bad options with precise messages", () => {
    expect(() => new Backoff(0, 10)).to.throw(RangeError, '"initialMs" must be a positive number');
    expect(() => new Backoff(-5, 10)).to.throw(RangeError, '"initialMs"');
    expect(() => new Backoff(Number.NaN, 10)).to.throw(RangeError, '"initialMs"');
    expect(() => new Backoff(100, 50)).to.throw(RangeError, '"maxMs" must be at least "initialMs"');
    expect(() => new Backoff(100, Number.NaN)).to.throw(RangeError, '"maxMs"');
  });
});
