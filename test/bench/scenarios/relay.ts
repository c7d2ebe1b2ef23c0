/**
 * Scenario 1 — relay throughput and latency against the floor and the MQTT peer, measured side by side.
 * Scenario 2 — the same call spread evenly over many devices, against one device, on the same server.
 */
import { cpSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api } from "../../helpers/api.js";
import { type BenchOptions, type Row, fmt, log, verdict } from "../lib/context.js";
import { startFleet, type Fleet } from "../lib/fleet.js";
import { median, round } from "../lib/stats.js";
import { benchAccount, BENCH_USER, registerDevices, removeDir, startFloor, startPeer, startThingrelay, type ThingrelayProc } from "../lib/targets.js";
import { runWrk, type WrkResult } from "../lib/wrk.js";

const PREFIX = `/v2/users/${BENCH_USER.user}/devices/d`;
const SUFFIX = "/temperature";

interface Target {
  name: string;
  base: string;
  token?: string;
  /** Measured at c=64 only. */
  c64only?: boolean;
}

export interface RunSummary {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  runs: Array<Pick<WrkResult, "rps" | "p50" | "p90" | "p99" | "errors" | "durationS">>;
}

function summarise(rs: WrkResult[]): RunSummary {
  return {
    rps: round(median(rs.map((r) => r.rps)), 0),
    p50: round(median(rs.map((r) => r.p50)), 3),
    p90: round(median(rs.map((r) => r.p90)), 3),
    p99: round(median(rs.map((r) => r.p99)), 3),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    runs: rs.map((r) => ({ rps: round(r.rps, 0), p50: r.p50, p90: r.p90, p99: r.p99, errors: r.errors, durationS: round(r.durationS, 2) })),
  };
}

async function expectOut(t: Target): Promise<void> {
  const r = await api(t.base, "GET", `${PREFIX}0${SUFFIX}`, t.token ? { token: t.token } : {});
  if (r.status !== 200 || JSON.stringify(r.body) !== '{"out":21.5}') throw new Error(`${t.name} answered ${r.status} ${r.text}`);
}

export interface RelayResults {
  scenario1?: {
    durationS: number;
    reps: number;
    targets: Record<string, { c1: RunSummary; c64: RunSummary }>;
    ratios: Record<string, number>;
  };
  scenario2?: {
    devices: number;
    single: RunSummary;
    spread: RunSummary;
    ratio: number;
  };
}

export async function relayScenarios(o: BenchOptions, rows: Row[]): Promise<RelayResults> {
  const many = o.only.has(2) ? o.manyDevices : 1;
  const cleanups: Array<() => Promise<void>> = [];
  const profileDir = join(o.outDir, "profiles");
  try {
    if (o.profile) mkdirSync(profileDir, { recursive: true });
    const srv = await startThingrelay(o.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {});
    cleanups.push(async () => {
      await srv.stop();
      removeDir(srv.dataDir);
    });
    const token = await benchAccount(srv.base);
    await registerDevices(srv.base, token, "d", 0, many);
    const dev = startFleet({ url: srv.wsUrl, count: 1, noSourceAddresses: true });
    cleanups.push(dev.close);
    await dev.ready;
    const wrk = (t: Target, c: number, durationS: number, devices = 1) =>
      runWrk({ base: t.base, prefix: PREFIX, suffix: SUFFIX, devices, connections: c, durationS, ...(t.token ? { token: t.token } : {}) });
    const result: RelayResults = {};
    if (o.only.has(1)) result.scenario1 = await scenario1(o, rows, srv, token, cleanups, wrk);
    if (o.only.has(2)) result.scenario2 = await manyDevices(o, rows, srv, token, many, wrk);
    return result;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

type Wrk = (t: Target, c: number, durationS: number, devices?: number) => Promise<WrkResult>;

/** Another thingrelay on a copy of the store (same accounts, devices and token), with its own device. */
async function extraServer(srv: ThingrelayProc, cleanups: Array<() => Promise<void>>, o: { root?: string; env?: Record<string, string> }): Promise<ThingrelayProc> {
  // A copy: the server must stay the only writer of its data directory.
  const dir = mkdtempSync(join(tmpdir(), "thingrelay-bench-data-"));
  cpSync(srv.dataDir, dir, { recursive: true });
  const other = await startThingrelay({ dataDir: dir, ...o });
  cleanups.push(async () => {
    await other.stop();
    removeDir(dir);
  });
  const d = startFleet({ url: other.wsUrl, count: 1, noSourceAddresses: true });
  cleanups.push(d.close);
  await d.ready;
  return other;
}

async function scenario1(o: BenchOptions, rows: Row[], srv: ThingrelayProc, token: string, cleanups: Array<() => Promise<void>>, wrk: Wrk): Promise<NonNullable<RelayResults["scenario1"]>> {
  log("scenario 1: starting the floor, Mosquitto + peer");
  const floor = await startFloor();
  cleanups.push(floor.stop);
  const peer = await startPeer(BENCH_USER.user, "d0");
  cleanups.push(peer.stop);
  // The floor's device is the same SDK device as thingrelay's, in its own process.
  const floorDev = startFleet({ url: `ws://127.0.0.1:${floor.port}`, count: 1, noSourceAddresses: true });
  cleanups.push(floorDev.close);
  await floorDev.ready;

  const targets: Target[] = [
    { name: "floor", base: floor.base },
    { name: "peer", base: peer.endpoint.base },
    { name: "thingrelay", base: srv.base, token },
  ];
  if (o.alt) targets.push({ name: "alt", base: (await extraServer(srv, cleanups, { root: o.alt })).base, token });
  // Logging cost: the same server at LOG_LEVEL=info, its lines drained through a pipe as a process manager would.
  if (o.logCost) targets.push({ name: "thingrelay-info", base: (await extraServer(srv, cleanups, { env: { LOG_LEVEL: "info" } })).base, token, c64only: true });
  for (const t of targets) await expectOut(t);

  log(`scenario 1: warm-up ${o.warmupS}s per target`);
  for (const t of targets) await wrk(t, 64, o.warmupS);
  const raw: Record<string, { c1: WrkResult[]; c64: WrkResult[] }> = {};
  for (const t of targets) raw[t.name] = { c1: [], c64: [] };
  // Interleaved repetitions: drift in the machine's load hits every target alike.
  for (let rep = 0; rep < o.reps; rep++) {
    for (const t of targets) {
      const r1 = t.c64only ? undefined : await wrk(t, 1, o.durationS);
      const r64 = await wrk(t, 64, o.durationS);
      if (r1) raw[t.name]!.c1.push(r1);
      raw[t.name]!.c64.push(r64);
      const errors = (r1?.errors ?? 0) + r64.errors;
      log(`  rep ${rep + 1} ${t.name.padEnd(15)} ${r1 ? `c=1 ${fmt.int(r1.rps)} req/s p50 ${fmt.ms(r1.p50, 3)} | ` : ""}c=64 ${fmt.int(r64.rps)} req/s p50 ${fmt.ms(r64.p50, 3)}${errors ? ` ERRORS ${errors}` : ""}`);
    }
  }
  const sum: Record<string, { c1: RunSummary; c64: RunSummary }> = {};
  for (const t of targets) sum[t.name] = { c1: summarise(raw[t.name]!.c1), c64: summarise(raw[t.name]!.c64) };
  const tr = sum.thingrelay!;
  const fl = sum.floor!;
  const pe = sum.peer!;
  const ratios: Record<string, number> = {
    throughput_c64_vs_floor: round(tr.c64.rps / fl.c64.rps, 3),
    throughput_c64_vs_peer: round(tr.c64.rps / pe.c64.rps, 3),
    p50_c1_minus_floor_ms: round(tr.c1.p50 - fl.c1.p50, 3),
    p50_c1_vs_floor: round(tr.c1.p50 / fl.c1.p50, 3),
    p50_c1_vs_peer: round(tr.c1.p50 / pe.c1.p50, 3),
    throughput_c1_vs_floor: round(tr.c1.rps / fl.c1.rps, 3),
    throughput_c1_vs_peer: round(tr.c1.rps / pe.c1.rps, 3),
  };
  if (sum.alt) {
    ratios.alt_throughput_c64_vs_this = round(sum.alt.c64.rps / tr.c64.rps, 3);
    ratios.alt_p50_c1_minus_this_ms = round(sum.alt.c1.p50 - tr.c1.p50, 3);
  }
  if (sum["thingrelay-info"]) ratios.log_info_throughput_c64_vs_warn = round(sum["thingrelay-info"].c64.rps / tr.c64.rps, 3);
  const s1 = "1 relay";
  for (const t of targets) {
    const s = sum[t.name]!;
    const label = t.name === "alt" ? `alt build (${o.alt})` : t.name === "thingrelay-info" ? "thingrelay at LOG_LEVEL=info" : t.name;
    rows.push({ scenario: s1, metric: `${label} c=64 throughput`, value: `${fmt.int(s.c64.rps)} req/s (p50 ${fmt.ms(s.c64.p50)}, p99 ${fmt.ms(s.c64.p99)})`, verdict: "info" });
    if (!t.c64only) rows.push({ scenario: s1, metric: `${label} c=1 latency`, value: `p50 ${fmt.ms(s.c1.p50, 3)}, p99 ${fmt.ms(s.c1.p99, 3)} (${fmt.int(s.c1.rps)} req/s)`, verdict: "info" });
  }
  rows.push({ scenario: s1, metric: "throughput c=64 vs floor", value: fmt.ratio(ratios.throughput_c64_vs_floor!), target: "≥ 0.85×", verdict: verdict(ratios.throughput_c64_vs_floor! >= 0.85) });
  rows.push({ scenario: s1, metric: "p50 c=1 minus floor", value: `${ratios.p50_c1_minus_floor_ms! >= 0 ? "+" : ""}${fmt.ms(ratios.p50_c1_minus_floor_ms!, 3)} (${fmt.ratio(ratios.p50_c1_vs_floor!)})`, target: "≤ +0.2 ms", verdict: verdict(ratios.p50_c1_minus_floor_ms! <= 0.2) });
  rows.push({ scenario: s1, metric: "throughput c=64 vs peer", value: fmt.ratio(ratios.throughput_c64_vs_peer!), target: "> 1×", verdict: verdict(ratios.throughput_c64_vs_peer! > 1) });
  rows.push({ scenario: s1, metric: "p50 c=1 vs peer", value: fmt.ratio(ratios.p50_c1_vs_peer!), target: "< 1×", verdict: verdict(ratios.p50_c1_vs_peer! < 1) });
  if (ratios.alt_throughput_c64_vs_this !== undefined) rows.push({ scenario: s1, metric: "alt build vs this build, c=64", value: fmt.ratio(ratios.alt_throughput_c64_vs_this), verdict: "info" });
  if (ratios.log_info_throughput_c64_vs_warn !== undefined) rows.push({ scenario: s1, metric: "LOG_LEVEL=info vs warn, c=64", value: fmt.ratio(ratios.log_info_throughput_c64_vs_warn), verdict: "info" });
  const errs = Object.values(sum).reduce((a, s) => a + s.c1.errors + s.c64.errors, 0);
  if (errs > 0) rows.push({ scenario: s1, metric: "wrk errors (non-2xx, socket, timeout)", value: String(errs), verdict: "missed" });
  return { durationS: o.durationS, reps: o.reps, targets: sum, ratios };
}

async function manyDevices(
  o: BenchOptions, rows: Row[], srv: ThingrelayProc, token: string, many: number,
  wrk: Wrk,
): Promise<NonNullable<RelayResults["scenario2"]>> {
  log(`scenario 2: connecting ${many - 1} more devices (d1…d${many - 1})`);
  let fleet: Fleet | undefined;
  try {
    fleet = startFleet({ url: srv.wsUrl, from: 1, count: many - 1, perChild: 5000 });
    await fleet.ready;
    const t: Target = { name: "thingrelay", base: srv.base, token };
    await wrk(t, 64, o.warmupS, many);
    const single: WrkResult[] = [];
    const spread: WrkResult[] = [];
    for (let rep = 0; rep < o.reps; rep++) {
      single.push(await wrk(t, 64, o.durationS, 1));
      spread.push(await wrk(t, 64, o.durationS, many));
      log(`  rep ${rep + 1} one device ${fmt.int(single.at(-1)!.rps)} req/s | ${many} devices ${fmt.int(spread.at(-1)!.rps)} req/s`);
    }
    const s = summarise(single);
    const m = summarise(spread);
    const ratio = round(m.rps / s.rps, 3);
    rows.push({ scenario: "2 many devices", metric: `${many} devices, c=64`, value: `${fmt.int(m.rps)} req/s (p50 ${fmt.ms(m.p50)}, p99 ${fmt.ms(m.p99)})`, verdict: "info" });
    rows.push({ scenario: "2 many devices", metric: "vs one device (same run)", value: `${fmt.ratio(ratio)} (one device: ${fmt.int(s.rps)} req/s)`, target: "≥ 0.9×", verdict: verdict(ratio >= 0.9) });
    if (m.errors + s.errors > 0) rows.push({ scenario: "2 many devices", metric: "wrk errors", value: String(m.errors + s.errors), verdict: "missed" });
    return { devices: many, single: s, spread: m, ratio };
  } finally {
    await fleet?.close();
  }
}
