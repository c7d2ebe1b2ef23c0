/**
 * Scenario 2 alone, for investigating the per-device cost (issue 15): one device vs the same call spread over
 * `--many` devices, on this build and optionally on another (`--alt DIR`, a checkout with dist/ built),
 * interleaved, with server and device CPU per call. `--profile` runs the servers under `--cpu-prof` and reports
 * the self time per call of the one-device and the spread runs separately (samples cut to the wrk windows), so
 * the spread phase is profiled alone. Not part of `npm run bench`:
 *
 *   node --import=tsx test/bench/spread.ts --many 100 --reps 3 --duration 3 [--alt /tmp/base] [--alt-first] [--profile]
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startFleet, type Fleet } from "./lib/fleet.js";
import { cpuSeconds, ROOT, spawnTs, stopAll } from "./lib/proc.js";
import { BENCH_USER, benchAccount, registerDevices, removeDir, startThingrelay, type ThingrelayProc } from "./lib/targets.js";
import { runWrk } from "./lib/wrk.js";
import { median } from "./lib/stats.js";

const { values: a } = parseArgs({
  options: {
    many: { type: "string", default: "100" }, reps: { type: "string", default: "3" }, duration: { type: "string", default: "3" },
    warmup: { type: "string", default: "1" }, alt: { type: "string" }, "alt-first": { type: "boolean", default: false },
    profile: { type: "boolean", default: false }, "alt-env": { type: "string" }, floor: { type: "boolean", default: false }, "no-single": { type: "boolean", default: false }, perf: { type: "string" },
  },
});
const many = Number(a.many);
const PREFIX = `/v2/users/${BENCH_USER.user}/devices/d`;
const SUFFIX = "/temperature";

/** What is measured: a thingrelay, or (--floor) the bare floor (test/bench/floor.ts). */
type Server = Pick<ThingrelayProc, "pid" | "base" | "wsUrl" | "stop"> & { dataDir?: string };

interface Target {
  name: string;
  srv: Server;
  token?: string;
  fleets: Fleet[];
  profDir?: string;
  runs: Record<"single" | "spread", Array<{ rps: number; cpu: number; dev: number; harness: number; t0: bigint; t1: bigint; requests: number }>>;
}

async function setUpFloor(firstAddress: number): Promise<Target> {
  const child = spawnTs("floor", "floor.ts", [], { ipc: false, ...(a.perf ? { nodeArgs: ["--perf-basic-prof"] } : {}) });
  const port = Number((await child.waitFor(/^FLOOR_PORT=(\d+)$/))[1]);
  const srv: Server = { pid: child.proc.pid!, base: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, stop: async () => void (await child.stop()) };
  const fleets = [startFleet({ url: srv.wsUrl, count: 1, noSourceAddresses: true })];
  if (many > 1) fleets.push(startFleet({ url: srv.wsUrl, from: 1, count: many - 1, perChild: 5000, firstAddress }));
  await Promise.all(fleets.map((f) => f.ready));
  return { name: "floor", srv, fleets, runs: { single: [], spread: [] } };
}

async function setUp(name: string, root: string | undefined, firstAddress: number): Promise<Target> {
  const profDir = a.profile ? mkdtempSync(join(tmpdir(), `spread-prof-${name}-`)) : undefined;
  const nodeArgs = [...(profDir ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []), ...(a.perf ? ["--perf-basic-prof"] : [])];
  // --alt-env K=V,K2=V2: the alt server runs with these variables (e.g. `--alt . --alt-env LOG_LEVEL=info`).
  const env = name === "alt" && a["alt-env"] ? Object.fromEntries(a["alt-env"].split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)] as [string, string])) : undefined;
  const srv = await startThingrelay({ name, ...(root ? { root } : {}), nodeArgs, ...(env ? { env } : {}) });
  const token = await benchAccount(srv.base);
  await registerDevices(srv.base, token, "d", 0, many);
  const one = startFleet({ url: srv.wsUrl, count: 1, noSourceAddresses: true });
  const fleets = [one];
  if (many > 1) fleets.push(startFleet({ url: srv.wsUrl, from: 1, count: many - 1, perChild: 5000, firstAddress }));
  await Promise.all(fleets.map((f) => f.ready));
  return { name, srv, token, fleets, ...(profDir ? { profDir } : {}), runs: { single: [], spread: [] } };
}

async function measure(t: Target, devices: number, durationS: number) {
  const pids = [t.srv.pid];
  const dpids = t.fleets.flatMap((f) => f.pids);
  const s0 = cpuSeconds(pids);
  const d0 = cpuSeconds(dpids);
  // This process reads the servers' stdout (their log lines at LOG_LEVEL=info): its CPU competes too.
  const h0 = cpuSeconds([process.pid]);
  const t0 = process.hrtime.bigint();
  // --perf DIR: perf samples of the server's CPU time (not wall time) during this run, one file per run.
  const perf = a.perf && durationS > Number(a.warmup)
    ? process.env.SPREAD_PERF_STAT
      ? spawn("perf", ["stat", "-e", process.env.SPREAD_PERF_EVENTS ?? "task-clock,context-switches,cpu-migrations", "-p", [t.srv.pid, ...dpids].join(","), "--per-thread", "-o", join(a.perf, `${t.name}-${devices}-${++perfSeq}.stat`)], { stdio: "ignore" })
      : spawn("perf", ["record", "-e", "cpu-clock", "-F", "1999", "-g", "-p", String(t.srv.pid), "-o", join(a.perf, `${t.name}-${devices}-${++perfSeq}.data`)], { stdio: "ignore" })
    : undefined;
  const r = await runWrk({ base: t.srv.base, prefix: PREFIX, suffix: SUFFIX, devices, connections: 64, durationS, ...(t.token ? { token: t.token } : {}) });
  const t1 = process.hrtime.bigint();
  if (perf) {
    perf.kill("SIGINT");
    await new Promise((res) => perf.once("exit", res));
  }
  if (perf) process.stdout.write(`  ${t.name} ${devices} devices: ${r.requests} requests\n`);
  if (r.errors > 0) process.stdout.write(`  ${t.name}: ${r.errors} wrk errors ${JSON.stringify(r.errorDetail)}\n`);
  return { rps: r.rps, requests: r.requests, cpu: ((cpuSeconds(pids) - s0) * 1e6) / r.requests, dev: ((cpuSeconds(dpids) - d0) * 1e6) / r.requests, harness: ((cpuSeconds([process.pid]) - h0) * 1e6) / r.requests, t0, t1 };
}

let perfSeq = 0;
const targets: Target[] = [];
try {
  const order = a.alt ? (a["alt-first"] ? [["alt", a.alt], ["this", undefined]] : [["this", undefined], ["alt", a.alt]]) : [["this", undefined]];
  let addr = 2;
  if (a.floor) targets.push(await setUpFloor(addr++));
  else for (const [name, root] of order) {
    targets.push(await setUp(name!, root, addr));
    addr += Math.ceil(many / 5000) + 1;
  }
  for (const t of targets) {
    await measure(t, many, Number(a.warmup));
    await measure(t, 1, Number(a.warmup));
  }
  for (let rep = 0; rep < Number(a.reps); rep++) {
    for (const t of targets) {
      if (!a["no-single"]) t.runs.single.push(await measure(t, 1, Number(a.duration)));
      t.runs.spread.push(await measure(t, many, Number(a.duration)));
    }
    process.stdout.write(`rep ${rep + 1}: ${targets.map((t) => `${t.name} one ${Math.round(t.runs.single.at(-1)?.rps ?? 0)} | ${many} ${Math.round(t.runs.spread.at(-1)!.rps)} req/s`).join("; ")}\n`);
  }
  for (const t of targets) {
    const med = (k: "single" | "spread", f: "rps" | "cpu" | "dev" | "harness") => median(t.runs[k].map((r) => r[f]));
    process.stdout.write(`${t.name}: one device ${Math.round(med("single", "rps"))} req/s, server ${med("single", "cpu").toFixed(1)} µs/call, devices ${med("single", "dev").toFixed(1)} µs/call\n`);
    process.stdout.write(`${t.name}: ${many} devices ${Math.round(med("spread", "rps"))} req/s, server ${med("spread", "cpu").toFixed(1)} µs/call, devices ${med("spread", "dev").toFixed(1)} µs/call, harness ${med("spread", "harness").toFixed(1)} µs/call; ratio ${(med("spread", "rps") / med("single", "rps")).toFixed(2)}×\n`);
  }
} finally {
  for (const t of targets) {
    for (const f of t.fleets) await f.close().catch(() => {});
    await t.srv.stop().catch(() => {});
    if (t.srv.dataDir) removeDir(t.srv.dataDir);
  }
  await stopAll();
}

if (a.profile) for (const t of targets) if (t.profDir) report(t);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** Self time per call of each function, in the one-device and the spread wrk windows, largest difference first. */
function report(t: Target): void {
  const file = readdirSync(t.profDir!).find((f) => f.endsWith(".cpuprofile"));
  if (!file) return void process.stdout.write(`${t.name}: no profile written\n`);
  const prof = JSON.parse(readFileSync(join(t.profDir!, file), "utf8")) as { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number };
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const windows = (k: "single" | "spread") => t.runs[k].map((r) => [Number(r.t0 / 1000n), Number(r.t1 / 1000n)] as const);
  const per = (k: "single" | "spread") => {
    const w = windows(k);
    const calls = t.runs[k].reduce((s, r) => s + r.requests, 0);
    const m = new Map<string, number>();
    let ts = prof.startTime;
    for (let i = 0; i < prof.samples.length; i++) {
      ts += prof.timeDeltas[i]!;
      if (!w.some(([s, e]) => ts >= s && ts <= e)) continue;
      const n = byId.get(prof.samples[i]!)!;
      const fn = n.callFrame.functionName || "(anonymous)";
      if (fn === "(idle)") continue;
      const url = n.callFrame.url.startsWith("file://") ? relative(ROOT, fileURLToPath(n.callFrame.url)) : n.callFrame.url;
      const key = `${fn} ${url}:${n.callFrame.lineNumber + 1}`;
      const us = prof.timeDeltas[i + 1] ?? prof.timeDeltas[i]!;
      m.set(key, (m.get(key) ?? 0) + us);
    }
    const total = [...m.values()].reduce((x, y) => x + y, 0);
    return { m, calls, total };
  };
  const s = per("single");
  const p = per("spread");
  process.stdout.write(`\n${t.name} profile (self time, wall-sampled, µs per call): busy one device ${(s.total / s.calls).toFixed(1)}, ${many} devices ${(p.total / p.calls).toFixed(1)}\n`);
  const keys = new Set([...s.m.keys(), ...p.m.keys()]);
  const rows = [...keys].map((k) => ({ k, one: (s.m.get(k) ?? 0) / s.calls, spread: (p.m.get(k) ?? 0) / p.calls }));
  process.stdout.write("  top by spread:\n");
  for (const r of rows.sort((x, y) => y.spread - x.spread).slice(0, 30)) process.stdout.write(`  ${r.spread.toFixed(2).padStart(7)} ${r.one.toFixed(2).padStart(7)}  ${r.k}\n`);
  process.stdout.write("  largest growth (spread − one):\n");
  for (const r of rows.sort((x, y) => y.spread - y.one - (x.spread - x.one)).slice(0, 30)) process.stdout.write(`  ${(r.spread - r.one).toFixed(2).padStart(7)} (${r.one.toFixed(2)} → ${r.spread.toFixed(2)})  ${r.k}\n`);
}
