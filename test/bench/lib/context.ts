/** Options and reporting shared by the scenarios. */

export interface BenchOptions {
  quick: boolean;
  /** Scenarios to run (1…6). */
  only: Set<number>;
  /** Scenario 3/4 device count. */
  devices: number;
  /** Scenario 2 device count. */
  manyDevices: number;
  /** Scenario 5 subscriber count. */
  subscribers: number;
  /** wrk repetitions per configuration (the median is quoted). */
  reps: number;
  /** Seconds per wrk run. */
  durationS: number;
  warmupS: number;
  /** Start thingrelay with --cpu-prof during scenario 1 and summarise the profile. */
  profile: boolean;
  /** Also measure thingrelay at LOG_LEVEL=info (scenario 1, c=64) to show the logging cost. */
  logCost: boolean;
  outDir: string;
  /** Another checkout (built) measured next to this one in scenario 1: before/after comparisons. */
  alt?: string;
}

/** One line of the final table. */
export interface Row {
  scenario: string;
  metric: string;
  value: string;
  target?: string;
  /** "met", "missed", "info", or "n/a" (not available). */
  verdict?: "met" | "missed" | "info" | "n/a";
}

export function log(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

export const fmt = {
  int: (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : String(x)),
  ms: (x: number, d = 2) => (Number.isFinite(x) ? `${x.toFixed(d)} ms` : String(x)),
  ratio: (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : String(x)),
  mb: (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024 / 1024).toFixed(1)} MB` : String(bytes)),
  kb: (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1024).toFixed(1)} KB` : String(bytes)),
};

export function verdict(ok: boolean): "met" | "missed" {
  return ok ? "met" : "missed";
}
