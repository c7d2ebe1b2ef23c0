/**
 * HTTP load with wrk (a separate process). One Lua script serves every target: it adds the bearer header
 * when a token is given, rotates the device in the path over `devices` names (d0 … d{n-1}) and prints a
 * machine-readable summary (latencies in µs) next to wrk's own `--latency` report.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LUA = String.raw`
local token = os.getenv("BENCH_TOKEN") or ""
local prefix = os.getenv("BENCH_PREFIX")
local suffix = os.getenv("BENCH_SUFFIX")
local n = tonumber(os.getenv("BENCH_DEVICES") or "1")
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local i = 0
function init(args)
  -- spread threads over the device list so they do not hit the same device in lock step
  i = (tid or 0) * 7919
end

function request()
  local p = prefix .. (i % n) .. suffix
  i = i + 1
  return wrk.format("GET", p)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,\"status\":%d,\"timeout\":%d,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"mean\":%.1f,\"max\":%.1f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max))
end
`;

let scriptPath: string | undefined;
function script(): string {
  if (!scriptPath) {
    const dir = mkdtempSync(join(tmpdir(), "thingrelay-bench-wrk-"));
    scriptPath = join(dir, "relay.lua");
    writeFileSync(scriptPath, LUA);
  }
  return scriptPath;
}

export interface WrkRun {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  base: string;
  /** Path before the device index, e.g. /v2/users/bench/devices/d */
  prefix: string;
  /** Path after the device index, e.g. /temperature */
  suffix: string;
  devices: number;
  token?: string;
  connections: number;
  threads?: number;
  durationS: number;
}

export interface WrkResult {
  rps: number;
  requests: number;
  durationS: number;
  /** Latencies in ms. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  mean: number;
  max: number;
  /** Socket errors + non-2xx/3xx answers + timeouts. */
  errors: number;
  errorDetail: Record<string, number>;
  /** wrk's own report (with the --latency distribution). */
  text: string;
}

export function runWrk(o: WrkRun): Promise<WrkResult> {
  const args = [
    `-t${o.threads ?? 1}`, `-c${o.connections}`, `-d${o.durationS}s`, "--latency", "--timeout", "10s",
    "-s", script(), `${o.base}${o.prefix}0${o.suffix}`,
  ];
  return new Promise((resolve, reject) => {
    const p = spawn("wrk", args, {
      env: { ...process.env, BENCH_TOKEN: o.token ?? "", BENCH_PREFIX: o.prefix, BENCH_SUFFIX: o.suffix, BENCH_DEVICES: String(o.devices) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (out += c.toString()));
    p.once("error", reject);
    p.once("exit", (code) => {
      const m = /^WRKJSON (\{.*\})$/m.exec(out);
      if (code !== 0 || !m) return reject(new Error(`wrk failed (exit ${code}):\n${out}`));
      const j = JSON.parse(m[1]!) as Record<string, number>;
      const durationS = j.duration_us! / 1e6;
      const errorDetail = { connect: j.connect!, read: j.read!, write: j.write!, status: j.status!, timeout: j.timeout! };
      resolve({
        rps: j.requests! / durationS, requests: j.requests!, durationS,
        p50: j.p50! / 1000, p90: j.p90! / 1000, p99: j.p99! / 1000, p999: j.p999! / 1000, mean: j.mean! / 1000, max: j.max! / 1000,
        errors: Object.values(errorDetail).reduce((a, b) => a + b, 0), errorDetail,
        text: out.replace(/^WRKJSON .*$/m, "").trim(),
      });
    });
  });
}
