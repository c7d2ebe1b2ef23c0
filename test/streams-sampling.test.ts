import { expect } from "chai";
import fc from "fast-check";
import { gcd, SampleScheduler } from "../server/streams/sampling.js";
import { EventLog, parseEventId } from "../server/streams/log.js";
import { parseInterval } from "../server/streams/service.js";
import { AppError } from "../server/errors.js";

describe("streams: sampling schedule (pure, no clock)", () => {
  it("asks for the GCD of the positive intervals, 0 when all subscribers want pushes only", () => {
    const s = new SampleScheduler<string>();
    expect(s.add("a", 2000)).to.equal(true);
    expect(s.gcd).to.equal(2000);
    expect(s.add("b", 3000)).to.equal(true);
    expect(s.gcd).to.equal(1000);
    expect(s.add("c", 0)).to.equal(false);
    expect(s.gcd).to.equal(1000);
    expect(s.remove("b")).to.equal(true);
    expect(s.gcd).to.equal(2000);
    expect(s.remove("a")).to.equal(true);
    expect(s.gcd).to.equal(0);
    expect(s.remove("nobody")).to.equal(false);
  });

  it("gives each subscriber the samples its interval is due for, despite jitter", () => {
    const s = new SampleScheduler<string>();
    s.add("every2", 2000);
    s.add("every3", 3000);
    s.add("all", 0);
    const got: Record<string, number[]> = { every2: [], every3: [], all: [] };
    // The device samples every 1000 ms (the GCD), each sample up to ±80 ms off.
    const jitter = [0, 40, -60, 80, -80, 10, -30];
    for (let k = 0; k <= 6; k++) {
      for (const who of s.take(k * 1000 + jitter[k]!)) got[who]!.push(k);
    }
    expect(got.every2).to.deep.equal([0, 2, 4, 6]);
    expect(got.every3).to.deep.equal([0, 3, 6]);
    expect(got.all).to.deep.equal([0, 1, 2, 3, 4, 5, 6]);
  });

  it("a pushed value between samples does not reach a subscriber that is not due", () => {
    const s = new SampleScheduler<string>();
    s.add("a", 1000);
    expect(s.take(0)).to.deep.equal(["a"]);
    expect(s.take(200)).to.deep.equal([]);
    expect(s.take(1000)).to.deep.equal(["a"]);
  });

  it("after a gap (device offline) the grid restarts instead of bursting", () => {
    const s = new SampleScheduler<string>();
    s.add("a", 1000);
    s.take(0);
    expect(s.take(10_000)).to.deep.equal(["a"]);
    expect(s.take(10_200)).to.deep.equal([]);
    expect(s.take(11_000)).to.deep.equal(["a"]);
  });

  it("reset() makes the next value due for everyone (device reconnected)", () => {
    const s = new SampleScheduler<string>();
    s.add("a", 5000);
    s.take(0);
    expect(s.take(100)).to.deep.equal([]);
    s.reset();
    expect(s.take(200)).to.deep.equal(["a"]);
  });

  it("property: over any run of GCD ticks, an interval-I subscriber gets exactly one value per I", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 60 }),
      (ia, ib, ticks) => {
        const s = new SampleScheduler<string>();
        s.add("a", ia * 100);
        s.add("b", ib * 100);
        const g = gcd(ia * 100, ib * 100);
        let a = 0;
        for (let k = 0; k < ticks; k++) if (s.take(k * g).includes("a")) a++;
        return a === Math.ceil((ticks * g) / (ia * 100));
      },
    ), { seed: 5, numRuns: 300 });
  });
});

describe("streams: event log and Last-Event-ID", () => {
  it("ids are <epoch>-<seq>; since() returns the events after a known id", () => {
    const log = new EventLog(3);
    expect(log.lastId).to.equal(`${log.epoch}-0`);
    const a = log.append("x", 1, 1);
    const b = log.append("x", 2, 2);
    expect(a.id).to.equal(`${log.epoch}-1`);
    expect(a.text).to.equal(`id: ${log.epoch}-1\nevent: x\ndata: 1\n\n`);
    expect(log.since(a.id)!.map((e) => e.meta)).to.deep.equal([2]);
    expect(log.since(b.id)).to.deep.equal([]);
    expect(log.since(`${log.epoch}-0`)!.map((e) => e.meta)).to.deep.equal([1, 2]);
  });

  it("ids from another log, from the future, or older than the buffer are not resumed", () => {
    const log = new EventLog(2);
    for (let i = 1; i <= 5; i++) log.append("x", i, i);
    const other = new EventLog(2);
    expect(log.since(`${other.epoch}-3`)).to.equal(null);
    expect(log.since(`${log.epoch}-6`)).to.equal(null);
    expect(log.since(`${log.epoch}-2`)).to.equal(null);
    expect(log.since(`${log.epoch}-3`)!.map((e) => e.meta)).to.deep.equal([4, 5]);
  });

  it("any string is handled without throwing: garbage and oversized ids are ignored", () => {
    const log = new EventLog(4);
    log.append("x", 1);
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (raw) => {
      const r = log.since(raw);
      return r === null || Array.isArray(r);
    }), { seed: 7, numRuns: 500 });
    expect(parseEventId("a".repeat(10_000))).to.equal(null);
    expect(parseEventId(undefined)).to.equal(null);
    expect(parseEventId("0123abcd-12")).to.deep.equal({ epoch: "0123abcd", seq: 12 });
  });
});

describe("streams: ?interval= parsing", () => {
  it("accepts seconds with one decimal, 0, and absent; rejects the rest with invalid_request", () => {
    expect(parseInterval(undefined)).to.equal(0);
    expect(parseInterval("0")).to.equal(0);
    expect(parseInterval("0.1")).to.equal(100);
    expect(parseInterval("2")).to.equal(2000);
    expect(parseInterval("86400")).to.equal(86_400_000);
    for (const bad of ["", "abc", "-1", "0.05", "1.25", "1e3", "86400.1", " 1", ["1", "2"]]) {
      try {
        parseInterval(bad);
        expect.fail(`accepted ${JSON.stringify(bad)}`);
      } catch (err) {
        expect(err).to.be.instanceOf(AppError);
        expect((err as AppError).code).to.equal("invalid_request");
      }
    }
  });
});
