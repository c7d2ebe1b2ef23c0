import { expect } from "chai";
import { Histogram, Registry } from "prom-client";
import { Metrics, OutcomeHistogram, RELAY_LATENCY_BUCKETS } from "../server/metrics.js";

/**
 * The relay latency histogram is observed without prom-client's label hashing (issue 15): what /metrics shows
 * must stay exactly what prom-client's own Histogram showed for the same observations.
 */
describe("OutcomeHistogram (the relay latency histogram)", () => {
  const NAME = "thingrelay_relay_duration_seconds";
  const HELP = "Relay call duration";

  function pair(): { ours: OutcomeHistogram; theirs: Histogram<"outcome">; a: Registry; b: Registry } {
    const a = new Registry();
    const b = new Registry();
    const ours = new OutcomeHistogram(NAME, HELP, RELAY_LATENCY_BUCKETS, a);
    const theirs = new Histogram({ name: NAME, help: HELP, labelNames: ["outcome"], buckets: [...RELAY_LATENCY_BUCKETS], registers: [b] });
    return { ours, theirs, a, b };
  }

  // Bucket edges, values between and beyond them, and sums whose float rounding depends on the order of addition.
  const observations: Array<[string, number]> = [
    ["ok", 0.0001], ["ok", 0.0005], ["device_timeout", 30], ["ok", 0.00051], ["ok", 0.1 + 0.2], ["resource_not_found", 0.004],
    ["ok", 60], ["ok", 61], ["device_timeout", 30.000001], ["ok", 0], ["client_closed", 1e-9], ["ok", 0.0024999], ["ok", 2.5],
  ];

  it("exposes, byte for byte, what a prom-client Histogram exposes for the same observations", async () => {
    const { ours, theirs, a, b } = pair();
    expect(await a.metrics()).to.equal(await b.metrics());
    for (const [outcome, v] of observations) {
      ours.observe(outcome, v);
      theirs.observe({ outcome }, v);
    }
    const text = await a.metrics();
    expect(text).to.equal(await b.metrics());
    expect(text).to.include(`${NAME}_bucket{le="0.0005",outcome="ok"} 3\n`);
    expect(text).to.include(`${NAME}_bucket{le="+Inf",outcome="device_timeout"} 2\n`);
  });

  it("gives the same JSON (getMetricsAsJSON) as a prom-client Histogram", async () => {
    const { ours, theirs, a, b } = pair();
    for (const [outcome, v] of observations) {
      ours.observe(outcome, v);
      theirs.observe({ outcome }, v);
    }
    expect(await a.getMetricsAsJSON()).to.deep.equal(await b.getMetricsAsJSON());
  });

  it("starts again from nothing on reset, as prom-client does", async () => {
    const { ours, theirs, a, b } = pair();
    ours.observe("ok", 0.01);
    theirs.observe({ outcome: "ok" }, 0.01);
    a.resetMetrics();
    b.resetMetrics();
    expect(await a.metrics()).to.equal(await b.metrics());
    expect(await a.metrics()).not.to.include("_bucket");
  });

  it("refuses a value that is not a finite number, as prom-client does", () => {
    const { ours, theirs } = pair();
    expect(() => theirs.observe({ outcome: "ok" }, Number.NaN)).to.throw(TypeError);
    expect(() => ours.observe("ok", Number.NaN)).to.throw(TypeError, "Value is not a valid number");
    expect(() => ours.observe("ok", Number.POSITIVE_INFINITY)).to.throw(TypeError);
  });

  it("refuses buckets that are not increasing", () => {
    expect(() => new OutcomeHistogram("x_seconds", "x", [0.1, 0.1], new Registry())).to.throw(RangeError, '"buckets" must be increasing');
  });

  it("is the app's relay latency metric, registered once under its name", async () => {
    const m = new Metrics();
    m.relayLatency.observe("ok", 0.002);
    const text = await m.registry.metrics();
    expect(text).to.include(`# TYPE ${NAME} histogram\n`);
    expect(text).to.include(`${NAME}_bucket{le="0.0025",outcome="ok"} 1\n`);
    expect(text).to.include(`${NAME}_count{outcome="ok"} 1`);
    expect(() => new Histogram({ name: NAME, help: HELP, registers: [m.registry] })).to.throw(/already been registered/);
  });
});
