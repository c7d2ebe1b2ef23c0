/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function, top N.
 * Run alone: node --import=tsx test/bench/profile.ts <file.cpuprofile> [top]
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { ROOT } from "./lib/proc.js";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Frame {
  fn: string;
  where: string;
  selfMs: number;
  selfPct: number;
}

function where(url: string, line: number): string {
  if (!url) return "(native)";
  let p = url;
  try {
    if (url.startsWith("file://")) p = relative(ROOT, fileURLToPath(url));
  } catch {
    /* keep url */
  }
  return `${p}:${line + 1}`;
}

/** Self time by function (summed over call sites), largest first, as shares of busy (non-idle) time. */
export function topFrames(file: string, top = 25): { totalMs: number; frames: Frame[]; byArea: Array<{ area: string; pct: number }> } {
  const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName || "(anonymous)";
    const w = where(n.callFrame.url, n.callFrame.lineNumber);
    const key = `${fn}@${w}`;
    const e = agg.get(key) ?? { fn, where: w, us: 0 };
    e.us += us;
    agg.set(key, e);
    // Percentages are of busy time: the server idles while the floor and the peer are measured.
    if (fn !== "(idle)") total += us;
    areas.set(area(n.callFrame.url, fn), (areas.get(area(n.callFrame.url, fn)) ?? 0) + us);
  }
  const frames = [...agg.values()].filter((e) => e.fn !== "(idle)").sort((a, b) => b.us - a.us).slice(0, top)
    .map((e) => ({ fn: e.fn, where: e.where, selfMs: Math.round(e.us / 100) / 10, selfPct: Math.round((e.us / total) * 1000) / 10 }));
  const byArea = [...areas.entries()].filter(([a]) => a !== "(idle)").sort((a, b) => b[1] - a[1]).map(([a, us]) => ({ area: a, pct: Math.round((us / total) * 1000) / 10 }));
  return { totalMs: Math.round(total / 1000), frames, byArea };
}

/** Coarse buckets: our server code, each dependency, node internals, GC, idle. */
function area(url: string, fn: string): string {
  if (fn === "(idle)") return "(idle)";
  if (fn === "(garbage collector)") return "(gc)";
  if (fn === "(program)") return "(program)";
  if (!url) return "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith("node:")) return url.split("/")[0]!;
  if (url.includes("/dist/server/")) return `server/${url.split("/dist/server/")[1]!.split("/")[0]!.replace(/\.js$/, "")}`;
  return url;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: profile.ts <file.cpuprofile> [top]");
  const r = topFrames(file, Number(process.argv[3] ?? 25));
  process.stdout.write(`busy time sampled ${r.totalMs} ms\n\nself time by area:\n`);
  for (const a of r.byArea.slice(0, 20)) process.stdout.write(`  ${a.pct.toFixed(1).padStart(5)}%  ${a.area}\n`);
  process.stdout.write("\ntop functions by self time:\n");
  for (const f of r.frames) process.stdout.write(`  ${f.selfPct.toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}\n`);
}
