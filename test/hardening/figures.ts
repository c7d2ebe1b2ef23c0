/**
 * Figures of the hardening suite, shared by every file under test/hardening/. Importing this module installs
 * process-wide counters (unhandled rejections, uncaught exceptions) and one root `after` hook that prints the
 * suite's single line of figures once every file has run.
 */

/** Runs per fast-check property: small by default (CI), `FUZZ_RUNS=5000` for long runs (`npm run test:fuzz`). */
export const FUZZ_RUNS = positiveInt(process.env.FUZZ_RUNS, 60);
/** One seed for every property of the run; `FUZZ_SEED=<n>` replays a run. */
export const FUZZ_SEED = Number.isSafeInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED
  ? Number(process.env.FUZZ_SEED)
  : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;

/** fast-check parameters for one property (never `fc.configureGlobal`: other suites share the process). */
export function fcParams(runs = FUZZ_RUNS): { seed: number; numRuns: number; endOnFailure: boolean } {
  return { seed: FUZZ_SEED, numRuns: runs, endOnFailure: true };
}

function positiveInt(raw: string | undefined, dflt: number): number {
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

const inputs = new Map<string, number>();
let unexpected5xx = 0;
let relay5xx = 0;
let crashes = 0;
let unhandledRejections = 0;
let faultsInjected = 0;
let faultsSurvived = 0;
let dataLost = 0;
const unexpected: string[] = [];

/** Counts one input tried against a surface (token, rest, headers, query, path, ws_pre, ws_post, raw_http…). */
export function tried(surface: string, n = 1): void {
  inputs.set(surface, (inputs.get(surface) ?? 0) + n);
}

/** Relay codes that may legitimately answer 5xx (the device failed, timed out or dropped). */
export const RELAY_5XX = new Set(["device_error", "device_timeout", "device_disconnected"]);

/** Records a 5xx answer; returns true when it is one of the documented relay codes. */
export function saw5xx(status: number, code: string | undefined, what: string): boolean {
  if (code !== undefined && RELAY_5XX.has(code)) {
    relay5xx++;
    return true;
  }
  unexpected5xx++;
  if (unexpected.length < 20) unexpected.push(`${status} ${code ?? "?"} ${what.slice(0, 200)}`);
  return false;
}

export function crashed(what: string): void {
  crashes++;
  if (unexpected.length < 20) unexpected.push(`crash: ${what.slice(0, 200)}`);
}

export function faults(injected: number, survived: number, lost: number): void {
  faultsInjected += injected;
  faultsSurvived += survived;
  dataLost += lost;
}

export function counters(): { unhandledRejections: number; crashes: number; unexpected5xx: number } {
  return { unhandledRejections, crashes, unexpected5xx };
}

process.on("unhandledRejection", () => {
  unhandledRejections++;
});
process.on("uncaughtExceptionMonitor", (err) => {
  crashes++;
  if (unexpected.length < 20) unexpected.push(`uncaught: ${String((err as Error)?.message ?? err).slice(0, 200)}`);
});

after(function printFigures() {
  const per = [...inputs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(" ");
  const total = [...inputs.values()].reduce((a, b) => a + b, 0);
  const line =
    `HARDENING FIGURES: inputs ${per || "none"} (total ${total}) | 5xx=${unexpected5xx} (documented relay 5xx=${relay5xx})` +
    ` | crashes=${crashes} | unhandled_rejections=${unhandledRejections}` +
    ` | faults injected=${faultsInjected} survived=${faultsSurvived} data_lost=${dataLost}` +
    ` | fast-check seed=${FUZZ_SEED} runs=${FUZZ_RUNS}`;
  process.stdout.write(`\n${line}\n`);
  if (unexpected.length > 0) process.stdout.write(`  unexpected: ${unexpected.join(" ; ")}\n`);
});
