import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

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

/** Prometheus metrics served at GET /metrics. One registry per app instance (tests build many). */
export class Metrics {
  readonly registry = new Registry();
  readonly relayCalls: OutcomeCounter;
  readonly relayLatency: Histogram<"outcome">;
  readonly grants: Counter<"grant" | "outcome">;
  readonly devices: Gauge;
  readonly streams: Gauge<"kind">;

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: "thingrelay_" });
    this.relayCalls = new OutcomeCounter("thingrelay_relay_calls_total", "Relay calls by outcome code", this.registry);
    this.relayLatency = new Histogram({
      name: "thingrelay_relay_duration_seconds", help: "Relay call duration", labelNames: ["outcome"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry],
    });
    this.grants = new Counter({ name: "thingrelay_token_grants_total", help: "Token endpoint answers by grant and outcome", labelNames: ["grant", "outcome"], registers: [this.registry] });
    this.devices = new Gauge({ name: "thingrelay_connected_devices", help: "Device sessions held by this process", registers: [this.registry] });
    this.streams = new Gauge({ name: "thingrelay_open_streams", help: "Open SSE streams", labelNames: ["kind"], registers: [this.registry] });
  }
}
