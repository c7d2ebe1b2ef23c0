import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";

/**
 * A counter by outcome that counts in a plain map on the hot path and hands the counts to prom-client when
 * /metrics is read (prom-client hashes the label object on every `inc`). The exposition is unchanged.
 */
export class OutcomeCounter {
  private readonly pending = new Map<string, number>();
  readonly counter: Counter<"outcome">;

  constructor(name: string, help: string, registry: Registry) {
    const pending = this.pending;
    this.counter = new Counter({
      name, help, labelNames: ["outcome"], registers: [registry],
      collect() {
        for (const [outcome, n] of pending) this.inc({ outcome }, n);
        pending.clear();
      },
    });
  }

  inc(labels: { outcome: string }): void {
    this.pending.set(labels.outcome, (this.pending.get(labels.outcome) ?? 0) + 1);
  }
}

/** Buckets of `thingrelay_relay_duration_seconds` (seconds). */
export const RELAY_LATENCY_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

/** One exported value, in the shape prom-client's registry formats (`sharedLabels`: the series' labels). */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: "histogram";
  values: ExportedValue[];
  aggregator: "sum";
}

/** One outcome's observations: per-bucket counts (not cumulative), their sum and count. */
interface OutcomeSeries {
  labels: { outcome: string };
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram by outcome observed with an array index, no label hashing on the hot path (prom-client's
 * `Histogram.observe` validates and hashes the label object on every call). It is a metric of its own in the
 * registry (prom-client asks any registered metric for `get()`), and `get()`/`getForPromString()` return what
 * prom-client's Histogram returns for the same observations: same names, buckets, `le` labels, order and sums,
 * so /metrics is byte-identical (test/metrics-histogram.test.ts holds it to a real prom-client Histogram).
 */
export class OutcomeHistogram {
  readonly type = "histogram" as const;
  readonly aggregator = "sum" as const;
  readonly upperBounds: readonly number[];
  private readonly series = new Map<string, OutcomeSeries>();

  constructor(readonly name: string, readonly help: string, buckets: readonly number[], registry: Registry) {
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new RangeError('"buckets" must be increasing');
    }
    this.upperBounds = Object.freeze([...buckets]);
    registry.registerMetric(this as never);
  }

  /** Adds one observation (seconds) under `outcome`. */
  observe(outcome: string, value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    let s = this.series.get(outcome);
    if (s === undefined) {
      s = { labels: { outcome }, buckets: new Float64Array(this.upperBounds.length), sum: 0, count: 0 };
      this.series.set(outcome, s);
    }
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        s.buckets[i]! += 1;
        break;
      }
    }
    s.sum += value;
    s.count += 1;
  }

  /** The values as prom-client's Histogram gives them to the registry (labels of the series as `sharedLabels`). */
  async getForPromString(): Promise<ExportedMetric> {
    const bucketName = `${this.name}_bucket`;
    const values: ExportedValue[] = [];
    for (const s of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < this.upperBounds.length; i++) {
        acc += s.buckets[i]!;
        values.push({ labels: { le: this.upperBounds[i]! }, sharedLabels: s.labels, value: acc, metricName: bucketName, exemplar: null });
      }
      values.push(
        { labels: { le: "+Inf" }, sharedLabels: s.labels, value: s.count, metricName: bucketName, exemplar: null },
        { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum`, exemplar: undefined },
        { labels: {}, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count`, exemplar: undefined },
      );
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** As prom-client's `get()`: the series labels spread into each value's labels. */
  async get(): Promise<ExportedMetric> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }

  reset(): void {
    this.series.clear();
  }
}

/** Prometheus metrics served at GET /metrics. One registry per app instance (tests build many). */
export class Metrics {
  readonly registry = new Registry();
  readonly relayCalls: OutcomeCounter;
  readonly relayLatency: OutcomeHistogram;
  readonly grants: Counter<"grant" | "outcome">;
  readonly devices: Gauge;
  readonly streams: Gauge<"kind">;

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: "thingrelay_" });
    this.relayCalls = new OutcomeCounter("thingrelay_relay_calls_total", "Relay calls by outcome code", this.registry);
    this.relayLatency = new OutcomeHistogram("thingrelay_relay_duration_seconds", "Relay call duration", RELAY_LATENCY_BUCKETS, this.registry);
    this.grants = new Counter({ name: "thingrelay_token_grants_total", help: "Token endpoint answers by grant and outcome", labelNames: ["grant", "outcome"], registers: [this.registry] });
    this.devices = new Gauge({ name: "thingrelay_connected_devices", help: "Device sessions held by this process", registers: [this.registry] });
    this.streams = new Gauge({ name: "thingrelay_open_streams", help: "Open SSE streams", labelNames: ["kind"], registers: [this.registry] });
  }
}
