/**
 * Scenario 6 — cluster mode (issue 9): the cost of the cross-node hop. Two nodes (test/bench/cluster-node.ts)
 * joined through one nats-server, one SDK device on node A, measured in the same run and interleaved:
 *   single — wrk → node A, device on A;
 *   cross  — wrk → node B → NATS → node A → device → back.
 * The nodes are the production server (dist/server/main.js, MONGODB_URL + NATS_URL) on one FerretDB of the
 * scenario's own (MongoDB's stand-in, built from test/ferretdb/ — `npm run ferretdb:build`). Without the
 * FerretDB binary it falls back to the old set-up: each node on its own copy of one seeded embedded store
 * (test/bench/cluster-node.ts), which answers the measured, read-only path alike.
 */
import { cpSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { api } from "../../helpers/api.js";
import { type BenchOptions, type Row, fmt, log } from "../lib/context.js";
import { startFleet } from "../lib/fleet.js";
import { median, round } from "../lib/stats.js";
import { BENCH_DIR, cpuSeconds, freePort, spawnChild } from "../lib/proc.js";
import { benchAccount, BENCH_USER, registerDevices, removeDir, startThingrelay, waitTcp, type ThingrelayProc } from "../lib/targets.js";
import { runWrk, type WrkResult } from "../lib/wrk.js";
import { ferretdbAvailable, freshDatabase, startFerretDb, withDatabase } from "../../helpers/ferretdb.js";

export const NATS_SERVER = "/usr/sbin/nats-server";
const PREFIX = `/v2/users/${BENCH_USER.user}/devices/d`;
const SUFFIX = "/temperature";

/** Relay-side processes whose CPU is counted per call (in both modes, so the two figures compare). */
type Part = "nodeA" | "nodeB" | "nats";

type Measured = WrkResult & { cpuUs: Record<Part, number>; relayCpuUs: number; deviceCpuUs: number };

export interface ClusterSummary {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  errors: number;
  /** CPU µs per call of node A + node B + nats-server (median of runs), and of each of them. */
  relayCpuUs: number;
  cpuUs: Record<Part, number>;
  deviceCpuUs: number;
  runs: Array<{ rps: number; p50: number; p90: number; p99: number; errors: number; durationS: number; relayCpuUs: number; cpuUs: Record<Part, number> }>;
}

export interface ClusterResults {
  /** Where the nodes keep their data: one shared FerretDB, or copies of one embedded store (no FerretDB binary). */
  store: "ferretdb" | "embedded copies";
  durationS: number;
  reps: number;
  single: { c1: ClusterSummary; c64: ClusterSummary };
  cross: { c1: ClusterSummary; c64: ClusterSummary };
  /** Cross-node hop: added latency at c=1 (ms) and cross/single ratios. */
  hop: Record<string, number>;
  /** With --profile: a directory per node holding its CPU profiles (one per thread, written when it stops). */
  profileDirs?: Record<string, string>;
}

function summarise(rs: Measured[]): ClusterSummary {
  const med = (f: (r: Measured) => number, d: number) => round(median(rs.map(f)), d);
  return {
    rps: med((r) => r.rps, 0), p50: med((r) => r.p50, 3), p90: med((r) => r.p90, 3), p99: med((r) => r.p99, 3),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    relayCpuUs: med((r) => r.relayCpuUs, 1),
    cpuUs: { nodeA: med((r) => r.cpuUs.nodeA, 1), nodeB: med((r) => r.cpuUs.nodeB, 1), nats: med((r) => r.cpuUs.nats, 1) },
    deviceCpuUs: med((r) => r.deviceCpuUs, 1),
    runs: rs.map((r) => ({
      rps: round(r.rps, 0), p50: r.p50, p90: r.p90, p99: r.p99, errors: r.errors, durationS: round(r.durationS, 2),
      relayCpuUs: round(r.relayCpuUs, 1), cpuUs: { nodeA: round(r.cpuUs.nodeA, 1), nodeB: round(r.cpuUs.nodeB, 1), nats: round(r.cpuUs.nats, 1) },
    })),
  };
}

/** A node of the bench cluster: the production server on the shared MongoDB (FerretDB). */
async function startMongoNode(name: string, mongodbUrl: string, natsUrl: string, cleanups: Array<() => Promise<void>>, profileDir?: string): Promise<ThingrelayProc> {
  const node = await startThingrelay({
    nodeArgs: profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    name, env: { MONGODB_URL: mongodbUrl, NATS_URL: natsUrl },
  });
  cleanups.push(async () => {
    await node.stop();
    removeDir(node.dataDir);
  });
  return node;
}

/** A node of the bench cluster on its own copy of the seeded data directory (no FerretDB binary). */
async function startNode(name: string, seedDir: string, natsUrl: string, cleanups: Array<() => Promise<void>>, profileDir?: string): Promise<ThingrelayProc> {
  const dir = mkdtempSync(join(tmpdir(), `thingrelay-bench-${name}-`));
  // db/ and secret.key (if any): every node must verify the same tokens with the same key.
  cpSync(seedDir, dir, { recursive: true });
  // A directory per node: the tsx loader thread writes a profile of its own next to the main thread's.
  const prof = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const node = await startThingrelay({
    nodeArgs: [...prof, "--import=tsx"],
    name, dataDir: dir, entry: [join(BENCH_DIR, "cluster-node.ts"), "--nats", natsUrl],
  });
  cleanups.push(async () => {
    await node.stop();
    removeDir(dir);
  });
  return node;
}

export async function clusterScenario(o: BenchOptions, rows: Row[]): Promise<ClusterResults> {
  const cleanups: Array<() => Promise<void>> = [];
  try {
    // Seed once with a normal server: bench account, device d0, an access token. Then stop it.
    const shared = ferretdbAvailable();
    let mongodbUrl: string | undefined;
    if (shared) {
      const fdb = await startFerretDb();
      cleanups.push(() => fdb.dispose());
      mongodbUrl = withDatabase(fdb.url, freshDatabase("thingrelay_bench"));
      log(`scenario 6: FerretDB on ${fdb.port} (nodes share it, as they share MongoDB in production)`);
    } else {
      log("scenario 6: no FerretDB binary (npm run ferretdb:build): each node gets a copy of one seeded embedded store");
    }
    log("scenario 6: seeding the store (bench account, device d0)");
    const seed = await startThingrelay(mongodbUrl ? { env: { MONGODB_URL: mongodbUrl } } : {});
    cleanups.push(async () => removeDir(seed.dataDir));
    const token = await benchAccount(seed.base);
    await registerDevices(seed.base, token, "d", 0, 1);
    await seed.stop();

    const natsPort = await freePort();
    const nats = spawnChild("nats-server", NATS_SERVER, ["-a", "127.0.0.1", "-p", String(natsPort)]);
    cleanups.push(async () => void (await nats.stop()));
    await waitTcp(natsPort);
    const natsUrl = `nats://127.0.0.1:${natsPort}`;
    log(`scenario 6: nats-server on ${natsPort}, starting nodes A and B`);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const profileDirs = o.profile ? { nodeA: join(o.outDir, "profiles", `cluster-node-a-${stamp}`), nodeB: join(o.outDir, "profiles", `cluster-node-b-${stamp}`) } : undefined;
    for (const d of Object.values(profileDirs ?? {})) mkdirSync(d, { recursive: true });
    const a = mongodbUrl
      ? await startMongoNode("cluster-node-a", mongodbUrl, natsUrl, cleanups, profileDirs?.nodeA)
      : await startNode("cluster-node-a", seed.dataDir, natsUrl, cleanups, profileDirs?.nodeA);
    const b = mongodbUrl
      ? await startMongoNode("cluster-node-b", mongodbUrl, natsUrl, cleanups, profileDirs?.nodeB)
      : await startNode("cluster-node-b", seed.dataDir, natsUrl, cleanups, profileDirs?.nodeB);
    const dev = startFleet({ url: a.wsUrl, count: 1, noSourceAddresses: true });
    cleanups.push(dev.close);
    await dev.ready;

    const pids: Record<Part, number> = { nodeA: a.pid, nodeB: b.pid, nats: nats.proc.pid! };
    const targets = [{ name: "single" as const, node: a }, { name: "cross" as const, node: b }];
    for (const t of targets) {
      const r = await api(t.node.base, "GET", `${PREFIX}0${SUFFIX}`, { token });
      if (r.status !== 200 || JSON.stringify(r.body) !== '{"out":21.5}') throw new Error(`${t.name} (port ${t.node.port}) answered ${r.status} ${r.text}`);
    }
    const wrk = async (node: ThingrelayProc, c: number, durationS: number): Promise<Measured> => {
      const parts = Object.keys(pids) as Part[];
      const before = parts.map((p) => cpuSeconds([pids[p]]));
      const d0 = cpuSeconds(dev.pids);
      const r = await runWrk({ base: node.base, prefix: PREFIX, suffix: SUFFIX, devices: 1, connections: c, durationS, token });
      const perCall = (sec: number) => (r.requests > 0 ? (sec * 1e6) / r.requests : NaN);
      const cpuUs = Object.fromEntries(parts.map((p, i) => [p, perCall(cpuSeconds([pids[p]]) - before[i]!)])) as Record<Part, number>;
      return { ...r, cpuUs, relayCpuUs: cpuUs.nodeA + cpuUs.nodeB + cpuUs.nats, deviceCpuUs: perCall(cpuSeconds(dev.pids) - d0) };
    };

    log(`scenario 6: warm-up ${o.warmupS}s per mode`);
    for (const t of targets) await wrk(t.node, 64, o.warmupS);
    const raw = { single: { c1: [] as Measured[], c64: [] as Measured[] }, cross: { c1: [] as Measured[], c64: [] as Measured[] } };
    // Interleaved, as scenario 1: drift in the machine's load hits both modes alike.
    for (let rep = 0; rep < o.reps; rep++) {
      for (const t of targets) {
        const r1 = await wrk(t.node, 1, o.durationS);
        const r64 = await wrk(t.node, 64, o.durationS);
        raw[t.name].c1.push(r1);
        raw[t.name].c64.push(r64);
        const errors = r1.errors + r64.errors;
        log(`  rep ${rep + 1} ${t.name.padEnd(6)} c=1 ${fmt.int(r1.rps)} req/s p50 ${fmt.ms(r1.p50, 3)} p99 ${fmt.ms(r1.p99, 3)} | c=64 ${fmt.int(r64.rps)} req/s p50 ${fmt.ms(r64.p50, 3)}, ${r64.relayCpuUs.toFixed(1)} µs CPU/call${errors ? ` ERRORS ${errors}` : ""}`);
      }
    }
    const single = { c1: summarise(raw.single.c1), c64: summarise(raw.single.c64) };
    const cross = { c1: summarise(raw.cross.c1), c64: summarise(raw.cross.c64) };
    const hop: Record<string, number> = {
      added_p50_c1_ms: round(cross.c1.p50 - single.c1.p50, 3),
      added_p99_c1_ms: round(cross.c1.p99 - single.c1.p99, 3),
      p50_c1_cross_vs_single: round(cross.c1.p50 / single.c1.p50, 3),
      p99_c1_cross_vs_single: round(cross.c1.p99 / single.c1.p99, 3),
      throughput_c1_cross_vs_single: round(cross.c1.rps / single.c1.rps, 3),
      throughput_c64_cross_vs_single: round(cross.c64.rps / single.c64.rps, 3),
      relay_cpu_c64_cross_vs_single: round(cross.c64.relayCpuUs / single.c64.relayCpuUs, 3),
    };

    const s6 = "6 cluster";
    rows.push({ scenario: s6, metric: "set-up", value: shared ? "2 server processes (dist/server/main.js) on one FerretDB + nats-server" : "2 nodes on copies of one embedded store + nats-server (no FerretDB binary)", verdict: "info" });
    const cpu = (s: ClusterSummary) => `relay CPU ${s.relayCpuUs} µs/call: A ${s.cpuUs.nodeA}, B ${s.cpuUs.nodeB}, nats ${s.cpuUs.nats}`;
    for (const [label, s] of [["single node (wrk → A, device on A)", single], ["cross node (wrk → B → NATS → A)", cross]] as const) {
      rows.push({ scenario: s6, metric: `${label} c=64 throughput`, value: `${fmt.int(s.c64.rps)} req/s (p50 ${fmt.ms(s.c64.p50)}, p99 ${fmt.ms(s.c64.p99)}; ${cpu(s.c64)})`, verdict: "info" });
      rows.push({ scenario: s6, metric: `${label} c=1 latency`, value: `p50 ${fmt.ms(s.c1.p50, 3)}, p99 ${fmt.ms(s.c1.p99, 3)} (${fmt.int(s.c1.rps)} req/s)`, verdict: "info" });
    }
    const plus = (x: number) => `${x >= 0 ? "+" : ""}${fmt.ms(x, 3)}`;
    rows.push({ scenario: s6, metric: "latency added by the cross-node hop, c=1", value: `p50 ${plus(hop.added_p50_c1_ms!)} (${fmt.ratio(hop.p50_c1_cross_vs_single!)}), p99 ${plus(hop.added_p99_c1_ms!)} (${fmt.ratio(hop.p99_c1_cross_vs_single!)})`, verdict: "info" });
    rows.push({ scenario: s6, metric: "cross / single: throughput c=64, c=1; relay CPU per call c=64", value: `${fmt.ratio(hop.throughput_c64_cross_vs_single!)}, ${fmt.ratio(hop.throughput_c1_cross_vs_single!)}; ${fmt.ratio(hop.relay_cpu_c64_cross_vs_single!)}`, verdict: "info" });
    const errs = [single, cross].reduce((acc, m) => acc + m.c1.errors + m.c64.errors, 0);
    if (errs > 0) rows.push({ scenario: s6, metric: "wrk errors (non-2xx, socket, timeout)", value: String(errs), verdict: "missed" });
    return { store: shared ? "ferretdb" : "embedded copies", durationS: o.durationS, reps: o.reps, single, cross, hop, ...(profileDirs ? { profileDirs } : {}) };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}
