/**
 * Child processes for the benchmarks: every load generator and every server under test runs in its own
 * process, started through a bash wrapper that raises the soft file-descriptor limit to the hard limit, so
 * neither side of thousands of loopback sockets is capped by the default 1024.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const BENCH_DIR = resolve(ROOT, "test/bench");

/** Raises `ulimit -n` to the hard limit, then execs the command (IPC fd and env survive exec). */
const WRAP = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';

export interface Child {
  proc: ChildProcess;
  name: string;
  /** stdout + stderr so far (capped), for error messages. */
  output(): string;
  /** Resolves with the first match of `re` on stdout (line by line), rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Next IPC message satisfying `pred`. */
  message<T = Record<string, unknown>>(pred: (m: T) => boolean, timeoutMs?: number): Promise<T>;
  send(msg: object): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  ipc?: boolean;
  /** Keep at most this many characters of output (default 64 KiB). */
  keep?: number;
  /** Forward stderr lines to our stderr (default false). */
  echoErr?: boolean;
}

const live = new Set<Child>();

export function spawnChild(name: string, cmd: string, args: string[], o: SpawnOptions = {}): Child {
  const proc = spawn("bash", ["-c", WRAP, "bench-wrap", cmd, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...o.env },
    stdio: o.ipc ? ["ignore", "pipe", "pipe", "ipc"] : ["ignore", "pipe", "pipe"],
  });
  const tail = new Tail(o.keep ?? 64 * 1024);
  const lineWaiters = new Set<(line: string) => void>();
  let partial = "";
  const onData = (chunk: Buffer) => {
    tail.push(chunk);
    // Line splitting only while someone waits for a line (a server at LOG_LEVEL=info writes megabytes).
    if (lineWaiters.size === 0) {
      partial = "";
      return;
    }
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) for (const w of lineWaiters) w(line);
  };
  proc.stdout!.on("data", onData);
  proc.stderr!.on("data", (chunk: Buffer) => {
    tail.push(chunk);
    if (o.echoErr) process.stderr.write(`[${name}] ${chunk.toString()}`);
  });
  const exited = new Promise<number | null>((res) => proc.once("exit", (code, signal) => res(code ?? (signal ? 128 : null))));
  const msgWaiters = new Set<(m: unknown) => void>();
  proc.on("message", (m) => {
    for (const w of [...msgWaiters]) w(m);
  });
  const child: Child = {
    proc, name, exited,
    output: () => tail.text(),
    waitFor(re, timeoutMs = 30_000) {
      return new Promise((resolveP, reject) => {
        const t = setTimeout(() => done(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms\n${tail.text().slice(-2000)}`)), timeoutMs);
        const check = (line: string) => {
          const m = re.exec(line);
          if (m) done(undefined, m);
        };
        const done = (err?: Error, m?: RegExpMatchArray) => {
          clearTimeout(t);
          lineWaiters.delete(check);
          if (err) reject(err);
          else resolveP(m!);
        };
        lineWaiters.add(check);
        void exited.then((code) => done(new Error(`${name} exited (${code}) before printing ${re}\n${tail.text().slice(-2000)}`)));
      });
    },
    message<T>(pred: (m: T) => boolean, timeoutMs = 120_000) {
      return new Promise<T>((resolveP, reject) => {
        const t = setTimeout(() => done(new Error(`${name}: no expected IPC message within ${timeoutMs} ms\n${tail.text().slice(-2000)}`)), timeoutMs);
        const w = (m: unknown) => {
          if (pred(m as T)) done(undefined, m as T);
        };
        const done = (err?: Error, m?: T) => {
          clearTimeout(t);
          msgWaiters.delete(w);
          if (err) reject(err);
          else resolveP(m!);
        };
        msgWaiters.add(w);
        void exited.then((code) => done(new Error(`${name} exited (${code}) while waiting for a message\n${tail.text().slice(-2000)}`)));
      });
    },
    send(msg) {
      proc.send?.(msg);
    },
    async stop(graceMs = 15_000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGTERM");
        const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
        const code = await exited;
        clearTimeout(t);
        live.delete(child);
        return code;
      }
      live.delete(child);
      return exited;
    },
  };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

/**
 * The last `keep` characters of a child's output, kept as the chunks read: a server at LOG_LEVEL=info writes
 * megabytes, and copying a 64 KiB string per chunk read cost this process ~1 µs of CPU per logged request,
 * taken from the two cores the measured server runs on.
 */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly keep: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.keep) this.size -= this.chunks.shift()!.length;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString().slice(-this.keep);
  }
}

/** Starts a TypeScript module from test/bench in its own Node process (tsx loader). */
export function spawnTs(name: string, file: string, args: string[] = [], o: SpawnOptions & { nodeArgs?: string[] } = {}): Child {
  // Investigations: BENCH_CHILD_PROF=<dir> profiles every load generator too (node --cpu-prof).
  const prof = process.env.BENCH_CHILD_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CHILD_PROF}`] : [];
  return spawnChild(name, process.execPath, [...prof, ...(o.nodeArgs ?? []), "--import=tsx", resolve(BENCH_DIR, file), ...args], { ipc: true, ...o });
}

/** Kills every child still running (on exit or error): the benchmark must never leave processes behind. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(3_000)));
}

export function killAllSync(): void {
  for (const c of live) {
    try {
      c.proc.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

/** A TCP port free on 127.0.0.1 right now (for Mosquitto, which cannot report an ephemeral port). */
export function freePort(): Promise<number> {
  return new Promise((resolveP, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolveP(port));
    });
  });
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (VmRSS). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

let clkTck: number | undefined;

/** CPU time (user + system, all threads) used so far by these processes, in seconds (/proc/<pid>/stat). */
export function cpuSeconds(pids: readonly number[]): number {
  clkTck ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* process gone */
    }
  }
  return ticks / clkTck;
}

/** The soft "Max open files" of a running process. */
export function fdLimitOf(pid: number): number {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"));
  if (!m) return NaN;
  return m[1] === "unlimited" ? Infinity : Number(m[1]);
}

/** The pid of the real program behind the bash wrapper (bash execs it, so it is the same pid). */
export function pidOf(c: Child): number {
  return c.proc.pid!;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function until<T>(fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, stepMs = 100, what = "condition"): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(stepMs);
  }
}
