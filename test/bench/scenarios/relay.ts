/**
 * Scenario 1 — relay throughput and latency against the floor and the MQTT peer, measured side by side.
 * Scenario 2 — the same call spread evenly over many devices, against one device, on the same server.
 */
import { cpSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api } from "../../helpers/api.js";
import { type BenchOptions, type Row, fmt, log, verdict } from "../lib/context.js";
import { startFleet } from "../lib/fleet.js";
import { median, round } from "../lib/stats.js";
import { benchAccount, BENCH_USER, registerDevices, removeDir, startFloor, startKoaFloor, startPeer, startThingrelay, type ThingrelayProc } from "../lib/targets.js";
import { runWrk, type WrkResult } from "../lib/wrk.js";
import { cpuSeconds, spawnTs } from "../lib/proc.js";
import { createServer } from "node:net";
import type { ThingerFleetEvent, ThingerFleetStart } from "../thinger-fleet.js";
import { CRED_PREFIX } from "../lib/targets.js";

const PREFIX = `/v2/users/${BENCH_USER.user}/devices/d`;
const SUFFIX = "/temperature";

interface Target {
  name: string;
  base: string;
  token?: string;
  /** Device path prefix (default: the SDK devices `d<i>`). */
  prefix?: string;
  /** Measured at c=64 only. */
  c64only?: boolean;
  /** Processes doing the relaying (server; for the peer: endpoint + broker), for CPU per call. */
  pids: number[];
  /** Processes playing the device(s). */
  devicePids: number[];
}

/** A wrk run plus the CPU the relay side and the device side spent per call during it. */
type Measured = WrkResult & { serverCpuUs: number; deviceCpuUs: number };

export interface RunSummary {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  /** CPU µs per call of the relay-side processes (median of runs): steadier than throughput on a shared machine. */
  serverCpuUs: number;
  deviceCpuUs: number;
  runs: Array<Pick<Measured, "rps" | "p50" | "p90" | "p99" | "errors" | "durationS" | "serverCpuUs" | "deviceCpuUs">>;
}

function summarise(rs: Measured[]): RunSummary {
  return {
    rps: round(median(rs.map((r) => r.rps)), 0),
    p50: round(median(rs.map((r) => r.p50)), 3),
    p90: round(median(rs.map((r) => r.p90)), 3),
    p99: round(median(rs.map((r) => r.p99)), 3),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    serverCpuUs: round(median(rs.map((r) => r.serverCpuUs)), 1),
    deviceCpuUs: round(median(rs.map((r) => r.deviceCpuUs)), 1),
    runs: rs.map((r) => ({
      rps: round(r.rps, 0), p50: r.p50, p90: r.p90, p99: r.p99, errors: r.errors, durationS: round(r.durationS, 2),
      serverCpuUs: round(r.serverCpuUs, 1), deviceCpuUs: round(r.deviceCpuUs, 1),
    })),
  };
}

async function expectOut(t: Target): Promise<void> {
  const r = await api(t.base, "GET", `${t.prefix ?? PREFIX}0${SUFFIX}`, t.token ? { token: t.token } : {});
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
    floorSingle: RunSummary;
    floorSpread: RunSummary;
    floorRatio: number;
  };
}

export async function relayScenarios(o: BenchOptions, rows: Row[]): Promise<RelayResults> {
  const many = o.only.has(2) ? o.manyDevices : 1;
  const cleanups: Array<() => Promise<void>> = [];
  const profileDir = join(o.outDir, "profiles");
  try {
    if (o.profile) mkdirSync(profileDir, { recursive: true });
    // The legacy Thinger listener on a port chosen here (the server logs it only at info level).
    const thingerPort = await freePort();
    const srv = await startThingrelay({ env: { THINGRELAY_THINGER_PORT: String(thingerPort) }, ...(o.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {}) });
    cleanups.push(async () => {
      await srv.stop();
      removeDir(srv.dataDir);
    });
    const token = await benchAccount(srv.base);
    await registerDevices(srv.base, token, "d", 0, many);
    const dev = startFleet({ url: srv.wsUrl, count: 1, noSourceAddresses: true });
    cleanups.push(dev.close);
    await dev.ready;
    const wrk: Wrk = async (t, c, durationS, devices = 1) => {
      const s0 = cpuSeconds(t.pids);
      const d0 = cpuSeconds(t.devicePids);
      const r = await runWrk({ base: t.base, prefix: t.prefix ?? PREFIX, suffix: SUFFIX, devices, connections: c, durationS, ...(t.token ? { token: t.token } : {}) });
      const perCall = (sec: number) => (r.requests > 0 ? (sec * 1e6) / r.requests : NaN);
      return { ...r, serverCpuUs: perCall(cpuSeconds(t.pids) - s0), deviceCpuUs: perCall(cpuSeconds(t.devicePids) - d0) };
    };
    const main: Target = { name: "thingrelay", base: srv.base, token, pids: [srv.pid], devicePids: dev.pids };
    const result: RelayResults = {};
    if (o.only.has(1)) {
      // Side by side on the same server: the same call answered by a legacy-protocol Thinger device.
      await registerDevices(srv.base, token, "l", 0, 1);
      const legacy = await startThingerFleet(thingerPort, "l", 1);
      cleanups.push(legacy.close);
      const legacyTarget: Target = { ...main, name: "thingrelay-legacy", prefix: `/v2/users/${BENCH_USER.user}/devices/l`, devicePids: legacy.pids };
      result.scenario1 = await scenario1(o, rows, main, srv, cleanups, wrk, legacyTarget);
    }
    if (o.only.has(2)) result.scenario2 = await manyDevices(o, rows, main, srv, many, wrk);
    return result;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

type Wrk = (t: Target, c: number, durationS: number, devices?: number) => Promise<Measured>;

/** Another thingrelay on a copy of the store (same accounts, devices and token), with its own device. */
async function extraServer(name: string, main: Target, srv: ThingrelayProc, cleanups: Array<() => Promise<void>>, o: { root?: string; env?: Record<string, string> }): Promise<Target> {
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
  return { ...main, name, base: other.base, pids: [other.pid], devicePids: d.pids };
}

async function scenario1(o: BenchOptions, rows: Row[], main: Target, srv: ThingrelayProc, cleanups: Array<() => Promise<void>>, wrk: Wrk, legacy: Target): Promise<NonNullable<RelayResults["scenario1"]>> {
  log("scenario 1: starting the floor, the Koa floor, Mosquitto + peer");
  const floor = await startFloor();
  cleanups.push(floor.stop);
  const koaFloor = await startKoaFloor();
  cleanups.push(koaFloor.stop);
  const peer = await startPeer(BENCH_USER.user, "d0");
  cleanups.push(peer.stop);
  // The floor's device is the same SDK device as thingrelay's, in its own process.
  const floorDev = startFleet({ url: `ws://127.0.0.1:${floor.port}`, count: 1, noSourceAddresses: true });
  cleanups.push(floorDev.close);
  const koaDev = startFleet({ url: `ws://127.0.0.1:${koaFloor.port}`, count: 1, noSourceAddresses: true });
  cleanups.push(koaDev.close);
  await Promise.all([floorDev.ready, koaDev.ready]);

  const targets: Target[] = [
    { name: "floor", base: floor.base, pids: [floor.child.proc.pid!], devicePids: floorDev.pids },
    { name: "koa-floor", base: koaFloor.base, token: "bench-presence-only", pids: [koaFloor.child.proc.pid!], devicePids: koaDev.pids },
    { name: "peer", base: peer.endpoint.base, pids: peer.pids, devicePids: [peer.device.proc.pid!] },
    main,
    legacy,
  ];
  if (o.alt) targets.push({ ...(await extraServer("alt", main, srv, cleanups, { root: o.alt })) });
  // Logging cost: the same server at LOG_LEVEL=info, its lines drained through a pipe as a process manager would,
  // against a twin at `warn` started the same way (a copy of the data, its own device) and measured right before it:
  // the two processes differ in the log level only. The main server is no such twin: it registered the devices
  // through the API, and V8 sized its heap from that history (--trace-gc: its major GCs started at 48–72 MB of heap,
  // a copy's at ~34 MB, at `warn` and at `info` alike, so the copies ran ~1.7× as many per call), which alone moved
  // a copy's CPU per call by up to +4.6 µs at `warn`.
  if (o.logCost) {
    const warnTwin = { ...(await extraServer("thingrelay-warn", main, srv, cleanups, { env: { LOG_LEVEL: "warn" } })), c64only: true };
    const info = { ...(await extraServer("thingrelay-info", main, srv, cleanups, { env: { LOG_LEVEL: "info" } })), c64only: true };
    targets.splice(targets.indexOf(main) + 1, 0, warnTwin, info);
  }
  for (const t of targets) await expectOut(t);

  log(`scenario 1: warm-up ${o.warmupS}s per target`);
  for (const t of targets) await wrk(t, 64, o.warmupS);
  const raw: Record<string, { c1: Measured[]; c64: Measured[] }> = {};
  for (const t of targets) raw[t.name] = { c1: [], c64: [] };
  // Interleaved repetitions: drift in the machine's load hits every target alike.
  for (let rep = 0; rep < o.reps; rep++) {
    for (const t of targets) {
      const r1 = t.c64only ? undefined : await wrk(t, 1, o.durationS);
      const r64 = await wrk(t, 64, o.durationS);
      if (r1) raw[t.name]!.c1.push(r1);
      raw[t.name]!.c64.push(r64);
      const errors = (r1?.errors ?? 0) + r64.errors;
      log(`  rep ${rep + 1} ${t.name.padEnd(15)} ${r1 ? `c=1 ${fmt.int(r1.rps)} req/s p50 ${fmt.ms(r1.p50, 3)} | ` : ""}c=64 ${fmt.int(r64.rps)} req/s p50 ${fmt.ms(r64.p50, 3)}, ${r64.serverCpuUs.toFixed(1)} µs CPU/call${errors ? ` ERRORS ${errors}` : ""}`);
    }
  }
  const sum: Record<string, { c1: RunSummary; c64: RunSummary }> = {};
  for (const t of targets) sum[t.name] = { c1: summarise(raw[t.name]!.c1), c64: summarise(raw[t.name]!.c64) };
  const tr = sum.thingrelay!;
  const fl = sum.floor!;
  const pe = sum.peer!;
  const kf = sum["koa-floor"]!;
  const ratios: Record<string, number> = {
    throughput_c64_vs_floor: round(tr.c64.rps / fl.c64.rps, 3),
    throughput_c64_vs_koa_floor: round(tr.c64.rps / kf.c64.rps, 3),
    koa_floor_throughput_c64_vs_floor: round(kf.c64.rps / fl.c64.rps, 3),
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
  const lg = sum["thingrelay-legacy"]!;
  ratios.legacy_throughput_c64_vs_sdk = round(lg.c64.rps / tr.c64.rps, 3);
  ratios.legacy_p50_c1_minus_sdk_ms = round(lg.c1.p50 - tr.c1.p50, 3);
  if (sum["thingrelay-info"]) ratios.log_info_throughput_c64_vs_warn = round(sum["thingrelay-info"].c64.rps / sum["thingrelay-warn"]!.c64.rps, 3);
  ratios.cpu_per_call_c64_vs_floor = round(tr.c64.serverCpuUs / fl.c64.serverCpuUs, 3);
  ratios.cpu_per_call_c64_vs_peer = round(tr.c64.serverCpuUs / pe.c64.serverCpuUs, 3);
  const s1 = "1 relay";
  for (const t of targets) {
    const s = sum[t.name]!;
    const label = t.name === "alt" ? `alt build (${o.alt})` : t.name === "thingrelay-info" ? "thingrelay at LOG_LEVEL=info"
      : t.name === "thingrelay-warn" ? "thingrelay at LOG_LEVEL=warn, the info run's twin"
      : t.name === "thingrelay-legacy" ? "thingrelay, legacy Thinger device" : t.name;
    rows.push({ scenario: s1, metric: `${label} c=64 throughput`, value: `${fmt.int(s.c64.rps)} req/s (p50 ${fmt.ms(s.c64.p50)}, p99 ${fmt.ms(s.c64.p99)}; relay CPU ${s.c64.serverCpuUs} µs/call)`, verdict: "info" });
    if (!t.c64only) rows.push({ scenario: s1, metric: `${label} c=1 latency`, value: `p50 ${fmt.ms(s.c1.p50, 3)}, p99 ${fmt.ms(s.c1.p99, 3)} (${fmt.int(s.c1.rps)} req/s)`, verdict: "info" });
  }
  // Targets of issue 15 (the relay within reach of the floors).
  rows.push({ scenario: s1, metric: "throughput c=64 vs Koa floor", value: fmt.ratio(ratios.throughput_c64_vs_koa_floor!), target: "≥ 0.9×", verdict: verdict(ratios.throughput_c64_vs_koa_floor! >= 0.9) });
  rows.push({ scenario: s1, metric: "throughput c=64 vs floor", value: `${fmt.ratio(ratios.throughput_c64_vs_floor!)} (Koa floor: ${fmt.ratio(ratios.koa_floor_throughput_c64_vs_floor!)})`, target: "≥ 0.75×", verdict: verdict(ratios.throughput_c64_vs_floor! >= 0.75) });
  rows.push({ scenario: s1, metric: "p50 c=1 minus floor", value: `${ratios.p50_c1_minus_floor_ms! >= 0 ? "+" : ""}${fmt.ms(ratios.p50_c1_minus_floor_ms!, 3)} (${fmt.ratio(ratios.p50_c1_vs_floor!)})`, target: "≤ +0.1 ms", verdict: verdict(ratios.p50_c1_minus_floor_ms! <= 0.1) });
  rows.push({ scenario: s1, metric: "throughput c=64 vs peer", value: fmt.ratio(ratios.throughput_c64_vs_peer!), target: "≥ 1.3×", verdict: verdict(ratios.throughput_c64_vs_peer! >= 1.3) });
  rows.push({ scenario: s1, metric: "p50 c=1 vs peer", value: fmt.ratio(ratios.p50_c1_vs_peer!), target: "< 1×", verdict: verdict(ratios.p50_c1_vs_peer! < 1) });
  rows.push({ scenario: s1, metric: "relay CPU per call c=64 vs floor", value: `${fmt.ratio(ratios.cpu_per_call_c64_vs_floor!)} (vs peer ${fmt.ratio(ratios.cpu_per_call_c64_vs_peer!)})`, target: "≤ 1.3×", verdict: verdict(ratios.cpu_per_call_c64_vs_floor! <= 1.3) });
  rows.push({ scenario: s1, metric: "legacy Thinger device vs SDK device, c=64 / p50 c=1", value: `${fmt.ratio(ratios.legacy_throughput_c64_vs_sdk)} / ${ratios.legacy_p50_c1_minus_sdk_ms >= 0 ? "+" : ""}${fmt.ms(ratios.legacy_p50_c1_minus_sdk_ms, 3)}`, verdict: "info" });
  if (ratios.alt_throughput_c64_vs_this !== undefined) rows.push({ scenario: s1, metric: "alt build vs this build, c=64", value: fmt.ratio(ratios.alt_throughput_c64_vs_this), verdict: "info" });
  if (ratios.log_info_throughput_c64_vs_warn !== undefined) rows.push({ scenario: s1, metric: "LOG_LEVEL=info vs warn (twin processes), c=64", value: fmt.ratio(ratios.log_info_throughput_c64_vs_warn), target: "≥ 0.85×", verdict: verdict(ratios.log_info_throughput_c64_vs_warn >= 0.85) });
  const errs = Object.values(sum).reduce((a, s) => a + s.c1.errors + s.c64.errors, 0);
  if (errs > 0) rows.push({ scenario: s1, metric: "wrk errors (non-2xx, socket, timeout)", value: String(errs), verdict: "missed" });
  return { durationS: o.durationS, reps: o.reps, targets: sum, ratios };
}

async function manyDevices(
  o: BenchOptions, rows: Row[], main: Target, srv: ThingrelayProc, many: number,
  wrk: Wrk,
): Promise<NonNullable<RelayResults["scenario2"]>> {
  log(`scenario 2: connecting ${many - 1} more devices (d1…d${many - 1}), and ${many} to a fresh floor`);
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const fleet = startFleet({ url: srv.wsUrl, from: 1, count: many - 1, perChild: 5000 });
    cleanups.push(fleet.close);
    // The floor spread over as many devices tells what spreading itself costs on this machine.
    const floor = await startFloor();
    cleanups.push(floor.stop);
    const floorFleet = startFleet({ url: `ws://127.0.0.1:${floor.port}`, from: 0, count: many, perChild: 5000, firstAddress: 30 });
    cleanups.push(floorFleet.close);
    await Promise.all([fleet.ready, floorFleet.ready]);
    const t: Target = { ...main, devicePids: [...main.devicePids, ...fleet.pids] };
    const f: Target = { name: "floor", base: floor.base, pids: [floor.child.proc.pid!], devicePids: floorFleet.pids };
    await wrk(t, 64, o.warmupS, many);
    await wrk(f, 64, o.warmupS, many);
    const runs = { single: [] as Measured[], spread: [] as Measured[], floorSingle: [] as Measured[], floorSpread: [] as Measured[] };
    for (let rep = 0; rep < o.reps; rep++) {
      runs.single.push(await wrk(t, 64, o.durationS, 1));
      runs.spread.push(await wrk(t, 64, o.durationS, many));
      runs.floorSingle.push(await wrk(f, 64, o.durationS, 1));
      runs.floorSpread.push(await wrk(f, 64, o.durationS, many));
      log(`  rep ${rep + 1} thingrelay one device ${fmt.int(runs.single.at(-1)!.rps)} | ${many} devices ${fmt.int(runs.spread.at(-1)!.rps)} req/s; floor ${fmt.int(runs.floorSingle.at(-1)!.rps)} | ${fmt.int(runs.floorSpread.at(-1)!.rps)} req/s`);
    }
    const s = summarise(runs.single);
    const m = summarise(runs.spread);
    const fs = summarise(runs.floorSingle);
    const fm = summarise(runs.floorSpread);
    const ratio = round(m.rps / s.rps, 3);
    const floorRatio = round(fm.rps / fs.rps, 3);
    const s2 = "2 many devices";
    rows.push({ scenario: s2, metric: `${many} devices, c=64`, value: `${fmt.int(m.rps)} req/s (p50 ${fmt.ms(m.p50)}, p99 ${fmt.ms(m.p99)}); CPU/call: server ${m.serverCpuUs} µs (one device ${s.serverCpuUs}), devices ${m.deviceCpuUs} µs (one device ${s.deviceCpuUs})`, verdict: "info" });
    rows.push({ scenario: s2, metric: "vs one device (same run)", value: `${fmt.ratio(ratio)} (one device: ${fmt.int(s.rps)} req/s)`, target: "≥ 0.9×", verdict: verdict(ratio >= 0.9) });
    rows.push({ scenario: s2, metric: `floor: ${many} devices vs one`, value: `${fmt.ratio(floorRatio)} (${fmt.int(fm.rps)} vs ${fmt.int(fs.rps)} req/s); CPU/call: floor ${fm.serverCpuUs} µs (one device ${fs.serverCpuUs}), devices ${fm.deviceCpuUs} µs (one device ${fs.deviceCpuUs})`, verdict: "info" });
    rows.push({ scenario: s2, metric: `${many} devices vs floor with ${many} devices`, value: fmt.ratio(m.rps / fm.rps), verdict: "info" });
    const errors = m.errors + s.errors + fm.errors + fs.errors;
    if (errors > 0) rows.push({ scenario: s2, metric: "wrk errors", value: String(errors), verdict: "missed" });
    return { devices: many, single: s, spread: m, ratio, floorSingle: fs, floorSpread: fm, floorRatio };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

/** A port free right now on 127.0.0.1 (for a listener whose bound port the server does not print). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", () => resolve()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** `count` legacy Thinger devices `${prefix}0…` in one child process, connected. */
export async function startThingerFleet(port: number, prefix: string, count: number, reconnect = { initialMs: 100, maxMs: 1000 }): Promise<{ pids: number[]; close(): Promise<void>; child: ReturnType<typeof spawnTs> }> {
  const child = spawnTs("thinger-fleet", "thinger-fleet.ts");
  const cmd: ThingerFleetStart = {
    cmd: "start", port, user: BENCH_USER.user, prefix, from: 0, count, credPrefix: CRED_PREFIX, concurrency: 100,
    reconnectInitialMs: reconnect.initialMs, reconnectMaxMs: reconnect.maxMs,
  };
  const ready = child.message<ThingerFleetEvent>((m) => m.ev === "ready", 10 * 60_000);
  child.send(cmd);
  await ready;
  return {
    child, pids: [child.proc.pid!],
    async close() {
      await child.stop(5_000);
    },
  };
}
