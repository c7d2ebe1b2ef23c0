import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Prometheus metrics served at GET /metrics. One registry per app instance (tests build many). */
export class Metrics {
  readonly registry = new Registry();
  readonly relayCalls: Counter<"outcome">;
  readonly relayLatency: Histogram<"outcome">;
  readonly grants: Counter<"grant" | "outcome">;
  readonly devices: Gauge;
  readonly streams: Gauge<"kind">;

  constructor(collectDefaults = false) {
    if (collectDefaults) collectDefaultMetrics({ register: this.registry, prefix: "thingrelay_" });
    this.relayCalls = new Counter({ name: "thingrelay_relay_calls_total", help: "Relay calls by outcome code", labelNames: ["outcome"], registers: [this.registry] });
    this.relayLatency = new Histogram({
      name: "thingrelay_relay_duration_seconds", help: "Relay call duration", labelNames: ["outcome"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: [this.registry],
    });
    this.grants = new Counter({ name: "thingrelay_token_grants_total", help: "Token endpoint answers by grant and outcome", labelNames: ["grant", "outcome"], registers: [this.registry] });
    this.devices = new Gauge({ name: "thingrelay_connected_devices", help: "Device sessions held by this process", registers: [this.registry] });
    this.streams = new Gauge({ name: "thingrelay_open_streams", help: "Open SSE streams", labelNames: ["kind"], registers: [this.registry] });
  }
}
