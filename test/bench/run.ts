/**
 * thingrelay benchmarks (issue 6). Not tests: nothing here asserts, everything is reported.
 *
 *   npm run bench                       full run (≈ 10–15 min on 2 cores)
 *   npm run bench -- --quick            every scenario in small form (CI)
 *   npm run bench -- --devices 100000   scenario 3/4 with 100,000 devices
 *   npm run bench -- --only 1,2 --profile --write-md
 *   npm run bench -- --only 6           cluster mode: the cross-node hop over NATS
 *   npm run bench -- --sdk-size         only the device SDK's size (min+gzip), nothing built or run
 *
 * Options: --quick, --only <list>, --devices N, --many N, --subscribers N, --reps N, --duration S,
 * --warmup S, --profile (node --cpu-prof on the server during scenario 1, 5, and on both nodes in 6), --log-cost (scenario 1 again at
 * LOG_LEVEL=info), --no-build, --write-md (put the table into BENCHMARKS.md), --out DIR, --alt DIR (also
 * measure the build in another checkout DIR in scenario 1, side by side: before/after a change).
 *
 * Results: one table on stdout, JSON in .bench-results/ (latest.json / latest-quick.json and a
 * timestamped copy). Progress goes to stderr.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { type BenchOptions, type Row, log } from "./lib/context.js";
import { ROOT, killAllSync, stopAll } from "./lib/proc.js";
import { relayScenarios } from "./scenarios/relay.js";
import { sessionScenarios } from "./scenarios/sessions.js";
import { thingerStorm } from "./scenarios/thinger-storm.js";
import { fanoutScenario } from "./scenarios/fanout.js";
import { clusterScenario, NATS_SERVER } from "./scenarios/cluster.js";
import { topFrames } from "./profile.js";
import { sdkSizeRow } from "./sdk-size.js";

function parseArgs(argv: string[]): BenchOptions & { build: boolean; writeMd: boolean } {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument "${a}"`);
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) flags.set(k, v);
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) flags.set(k, argv[++i]!);
    else flags.set(k, true);
  }
  const known = ["quick", "only", "devices", "many", "subscribers", "reps", "duration", "warmup", "profile", "log-cost", "no-build", "write-md", "out", "alt"];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k} (known: ${known.map((x) => `--${x}`).join(" ")})`);
  const quick = flags.has("quick");
  const num = (k: string, d: number) => {
    const v = flags.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k} must be a positive number`);
    return n;
  };
  const only = flags.get("only");
  return {
    quick,
    only: new Set(typeof only === "string" ? only.split(",").map(Number) : [1, 2, 3, 4, 5, 6]),
    devices: Math.round(num("devices", quick ? 1_000 : 10_000)),
    manyDevices: Math.round(num("many", quick ? 100 : 1_000)),
    subscribers: Math.round(num("subscribers", quick ? 500 : 10_000)),
    reps: Math.round(num("reps", 3)),
    durationS: num("duration", quick ? 1 : 8),
    warmupS: num("warmup", quick ? 1 : 3),
    profile: flags.has("profile"),
    logCost: flags.has("log-cost") || (!quick && !flags.has("only")),
    outDir: resolve(ROOT, typeof flags.get("out") === "string" ? (flags.get("out") as string) : ".bench-results"),
    build: !flags.has("no-build"),
    ...(typeof flags.get("alt") === "string" ? { alt: resolve(flags.get("alt") as string) } : {}),
    writeMd: flags.has("write-md"),
  };
}

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    if (m) return m[1]!.trim();
  } catch {
    /* not Linux */
  }
  return cpus()[0]?.model ?? "unknown";
}

function tool(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0]!.trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ""}${e.stderr ?? ""}`.split("\n")[0]!.trim() || "unavailable";
  }
}

export function table(rows: Row[]): string {
  const mark = { met: "✔ met", missed: "✘ missed", info: "", "n/a": "n/a" } as const;
  const head = ["scenario", "metric", "value", "target", ""];
  const body = rows.map((r) => [r.scenario, r.metric, r.value, r.target ?? "", r.verdict ? mark[r.verdict] : ""]);
  const md = [
    `| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`,
    ...body.map((cells) => `| ${cells.map((c) => c.replace(/\|/g, "\\|")).join(" | ")} |`),
  ];
  return md.join("\n");
}

function newestProfile(dir: string, since: number): string | undefined {
  try {
    return readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => join(dir, f))
      .filter((f) => statSync(f).mtimeMs >= since).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  if (process.argv.includes("--sdk-size")) {
    process.stdout.write(`${table([await sdkSizeRow()])}\n`);
    return;
  }
  const o = parseArgs(process.argv.slice(2));
  const startedAt = new Date();
  const t0 = performance.now();
  mkdirSync(o.outDir, { recursive: true });
  if (o.build) {
    log("building the server (tsc -p tsconfig.build.json)");
    for (const dir of o.alt ? [ROOT, o.alt] : [ROOT]) {
      execFileSync(process.execPath, [resolve(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: dir, stdio: "inherit" });
    }
  }
  const rows: Row[] = [await sdkSizeRow()];
  const results: Record<string, unknown> = {};
  const durations: Record<string, number> = {};
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    const s = performance.now();
    try {
      return await fn();
    } catch (err) {
      log(`${name} FAILED: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      rows.push({ scenario: name, metric: "run", value: `failed: ${(err instanceof Error ? err.message : String(err)).split("\n")[0]}`, verdict: "missed" });
      results[`${name}_error`] = String(err);
      return undefined;
    } finally {
      durations[name] = Math.round((performance.now() - s) / 100) / 10;
      await stopAll();
    }
  };

  const profiles: Record<string, ReturnType<typeof topFrames> & { file: string }> = {};
  const profiled = async (key: string, since: number) => {
    if (!o.profile) return;
    const file = newestProfile(join(o.outDir, "profiles"), since - 1000);
    if (!file) return;
    profiles[key] = { file, ...topFrames(file, 25) };
    log(`cpu profile (${key}): ${file}`);
  };
  if (o.only.has(1) || o.only.has(2)) {
    const since = Date.now();
    const r = await timed("relay (1, 2)", () => relayScenarios(o, rows));
    if (r) results.relay = r;
    await profiled("relay", since);
  }
  if (o.only.has(3) || o.only.has(4)) {
    const r = await timed("sessions (3, 4)", () => sessionScenarios(o, rows));
    if (r) results.sessions = r;
  }
  if (o.only.has(4)) {
    const r = await timed("legacy Thinger storm (4)", () => thingerStorm(o, rows));
    if (r) results.thingerStorm = r;
  }
  if (o.only.has(5)) {
    const since = Date.now();
    const r = await timed("fan-out (5)", () => fanoutScenario(o, rows));
    if (r) results.fanout = r;
    await profiled("fanout", since);
  }
  if (o.only.has(6)) {
    const r = await timed("cluster (6)", () => clusterScenario(o, rows));
    if (r) results.cluster = r;
    // The nodes have stopped, so their profiles are written; the busiest one is the main thread's.
    for (const [node, dir] of Object.entries(r?.profileDirs ?? {})) {
      const best = readdirSync(dir).filter((f) => f.endsWith(".cpuprofile")).map((f) => ({ file: join(dir, f), ...topFrames(join(dir, f), 25) }))
        .sort((x, y) => y.totalMs - x.totalMs)[0];
      if (best) profiles[`cluster ${node}`] = best;
      log(best ? `cpu profile (cluster ${node}): ${best.file}` : `no cpu profile in ${dir}`);
    }
  }
  if (Object.keys(profiles).length > 0) results.profiles = profiles;

  const totalS = Math.round((performance.now() - t0) / 100) / 10;
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const meta = {
    command, quick: o.quick, startedAt: startedAt.toISOString(), totalS, durations,
    node: process.version, cpu: cpuModel(), cpus: cpus().length, memoryGB: Math.round(totalmem() / 1024 ** 3),
    wrk: tool("wrk", ["--version"]), mosquitto: tool("/usr/sbin/mosquitto", ["-h"]),
    ...(o.only.has(6) ? { natsServer: tool(NATS_SERVER, ["--version"]) } : {}),
    options: { ...o, only: [...o.only] },
    serverEnv: "NODE_ENV=test THINGRELAY_PASSWORD_COST=10 LOG_LEVEL=warn THINGRELAY_RATE_LIMIT=1000000000 THINGRELAY_MAX_PENDING_SOCKETS=200000 THINGRELAY_MAX_STREAMS=1000000",
  };
  const out = { meta, rows, results };
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-");
  writeFileSync(join(o.outDir, `${o.quick ? "quick" : "full"}-${stamp}.json`), JSON.stringify(out, null, 2));
  writeFileSync(join(o.outDir, o.quick ? "latest-quick.json" : "latest.json"), JSON.stringify(out, null, 2));

  const md = table(rows);
  process.stdout.write(`\nthingrelay benchmarks — ${meta.cpu} (${meta.cpus} CPUs), Node ${meta.node}, ${o.quick ? "QUICK" : "full"} run, ${totalS} s\n\n${md}\n\n`);
  for (const [key, p] of Object.entries(profiles)) {
    process.stdout.write(`server CPU profile, ${key} scenarios (busy ${p.totalMs} ms), self time by area:\n`);
    for (const a of p.byArea.slice(0, 12)) process.stdout.write(`  ${a.pct.toFixed(1).padStart(5)}%  ${a.area}\n`);
    process.stdout.write("top functions:\n");
    for (const f of p.frames.slice(0, 15)) process.stdout.write(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}\n`);
    process.stdout.write("\n");
  }
  process.stdout.write(`results: ${join(o.outDir, o.quick ? "latest-quick.json" : "latest.json")}\n`);
  if (o.writeMd) writeTable(md, meta);
}

/** Replaces the generated block of BENCHMARKS.md with this run's table. */
function writeTable(md: string, meta: { command: string; cpu: string; cpus: number; node: string; startedAt: string; totalS: number }): void {
  const file = resolve(ROOT, "BENCHMARKS.md");
  const begin = "<!-- bench:table:begin -->";
  const end = "<!-- bench:table:end -->";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    text = `# Benchmarks\n\n${begin}\n${end}\n`;
  }
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`BENCHMARKS.md has no ${begin} … ${end} block`);
  const block = `${begin}\n\`${meta.command}\` — ${meta.startedAt.slice(0, 16).replace("T", " ")} UTC, ${meta.cpu} (${meta.cpus} CPUs), Node ${meta.node}, ${meta.totalS} s\n\n${md}\n${end}`;
  writeFileSync(file, text.slice(0, i) + block + text.slice(j + end.length));
  log("BENCHMARKS.md table updated");
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}
process.on("exit", killAllSync);

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
