/**
 * Starts `server/main.ts` as a real child process (`node --import=tsx server/main.ts`), for tests that need
 * the process boundary: exit codes, signals (SIGKILL/SIGTERM/SIGSTOP), stdout/stderr, restarts on one
 * DATA_DIR. The child listens on 127.0.0.1 port 0 and prints `THINGRELAY_PORT=<port>` (THINGRELAY_PRINT_PORT=1);
 * {@link startMain} resolves once that line arrives and rejects (with the child's stderr) if it exits first.
 *
 * Every child started here is tracked and SIGKILLed when the test process exits, so a failing test never
 * leaves a server behind. Call {@link stopAllMains} in an `after` hook to reap them earlier.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const MAIN_ENTRY = join(REPO_ROOT, "server", "main.ts");

/** How a child ended: exactly one of `code` and `signal` is non-null. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface MainOptions {
  /**
   * Variables added to (or, with `undefined`, removed from) the child's environment. Defaults: PORT=0,
   * HOST=127.0.0.1, NODE_ENV=test, THINGRELAY_PASSWORD_COST=10, THINGRELAY_PRINT_PORT=1, LOG_LEVEL=info,
   * DATA_DIR=`dataDir`. Server variables of the parent (THINGRELAY_*, MONGODB_URL, NATS_URL, …) are not inherited.
   */
  env?: Record<string, string | undefined>;
  /** DATA_DIR of the child; a fresh temp dir when absent (removed by {@link MainProcess.cleanup}). */
  dataDir?: string;
  /** How long to wait for the port line (or for the exit, in {@link runMain}). Default 30 s. */
  timeoutMs?: number;
  /** Script to run instead of server/main.ts (absolute, or relative to the repository root). */
  entry?: string;
  /** Arguments after the script. */
  args?: string[];
}

export interface MainProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `ws://127.0.0.1:<port>` */
  readonly wsUrl: string;
  readonly dataDir: string;
  /** Everything the child wrote to stdout so far (pino log lines and the bootstrap banner). */
  readonly stdout: string;
  readonly stderr: string;
  /** stdout lines that parse as JSON objects (pino log records). */
  logs(): Array<Record<string, unknown>>;
  /** Resolves when the child has exited (whatever ended it). */
  readonly exited: Promise<ExitInfo>;
  /**
   * Sends a terminating `signal` (default SIGTERM) and resolves once the child has exited; SIGKILLs it if it
   * is still running after `graceMs` (default 15 s). For SIGSTOP/SIGCONT use {@link MainProcess.signal}.
   */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitInfo>;
  /** Sends `signal` without waiting (SIGSTOP to freeze the server, SIGCONT to resume it). */
  signal(signal: NodeJS.Signals): void;
  /** Resolves with the match once stdout matches `re` (checked on every chunk); rejects on exit or timeout. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Kills the child if still running (SIGKILL) and removes the temp DATA_DIR if this helper made it. */
  cleanup(): Promise<void>;
}

/** Result of a child that is expected to exit on its own (e.g. a refused configuration). */
export interface RunResult extends ExitInfo {
  stdout: string;
  stderr: string;
}

/** Variables the server reads; never inherited from the test runner's environment. */
const SERVER_ENV = /^(PORT|HOST|DATA_DIR|MONGODB_URL|NATS_URL|LOG_LEVEL|NODE_ENV|THINGRELAY_.*)$/;

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

function childEnv(dataDir: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!SERVER_ENV.test(k)) env[k] = v;
  Object.assign(env, {
    PORT: "0", HOST: "127.0.0.1", NODE_ENV: "test", THINGRELAY_PASSWORD_COST: "10", THINGRELAY_PRINT_PORT: "1",
    THINGRELAY_THINGER_PORT: "0", THINGRELAY_IOTMP_PORT: "0",
    LOG_LEVEL: "info", DATA_DIR: dataDir,
  });
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

interface Spawned {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<ExitInfo>;
}

function spawnMain(env: NodeJS.ProcessEnv, options: MainOptions): Spawned {
  const entry = resolve(REPO_ROOT, options.entry ?? MAIN_ENTRY);
  const child = spawn(process.execPath, ["--import=tsx", entry, ...(options.args ?? [])], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const out = { stdout: "", stderr: "" };
  child.stdout!.setEncoding("utf8").on("data", (s: string) => (out.stdout += s));
  child.stderr!.setEncoding("utf8").on("data", (s: string) => (out.stderr += s));
  // "close" (not "exit"): fires after both pipes are drained, so the collected output is complete.
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("close", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, out, exited };
}

function tail(s: string, n = 2000): string {
  return s.length > n ? `…${s.slice(-n)}` : s;
}

async function tempDir(): Promise<string> {
  return await mkdtemp(join(tmpdir(), "thingrelay-proc-"));
}

/** Starts the server as a child process and resolves once it listens. */
export async function startMain(options: MainOptions = {}): Promise<MainProcess> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir());
  const timeoutMs = options.timeoutMs ?? 30_000;
  const { child, out, exited } = spawnMain(childEnv(dataDir, options.env), options);

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`server did not print its port within ${timeoutMs} ms\nstderr: ${tail(out.stderr)}\nstdout: ${tail(out.stdout)}`));
      }, timeoutMs);
      const onData = () => {
        const m = /^THINGRELAY_PORT=(\d+)$/m.exec(out.stdout);
        if (!m) return;
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        resolve(Number(m[1]));
      };
      child.stdout!.on("data", onData);
      void exited.then((info) => {
        clearTimeout(timer);
        reject(new Error(`server exited before listening (code ${info.code}, signal ${info.signal})\nstderr: ${tail(out.stderr)}\nstdout: ${tail(out.stdout)}`));
      });
    });
  } catch (err) {
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }

  let exitInfo: ExitInfo | undefined;
  void exited.then((info) => (exitInfo = info));
  const proc: MainProcess = {
    child,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    dataDir,
    get stdout() {
      return out.stdout;
    },
    get stderr() {
      return out.stderr;
    },
    logs() {
      const records: Array<Record<string, unknown>> = [];
      for (const line of out.stdout.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          records.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a partial last line
        }
      }
      return records;
    },
    exited,
    async kill(signal: NodeJS.Signals = "SIGTERM", graceMs = 15_000) {
      if (exitInfo) return exitInfo;
      child.kill(signal);
      if (signal === "SIGKILL") return await exited;
      const force = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(force);
      }
    },
    signal(sig: NodeJS.Signals) {
      if (!exitInfo) child.kill(sig);
    },
    waitForOutput(re: RegExp, waitMs = 10_000) {
      return new Promise<RegExpExecArray>((resolve, reject) => {
        const check = () => {
          const m = re.exec(out.stdout);
          if (!m) return false;
          done();
          resolve(m);
          return true;
        };
        const onExit = () => {
          done();
          if (!check()) reject(new Error(`server exited before printing ${re}\nstderr: ${tail(out.stderr)}`));
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${re} on stdout within ${waitMs} ms\nstdout: ${tail(out.stdout)}`));
        }, waitMs);
        const done = () => {
          clearTimeout(timer);
          child.stdout!.off("data", onData);
          child.off("close", onExit);
        };
        const onData = () => void check();
        if (check()) return;
        if (exitInfo) return onExit();
        child.stdout!.on("data", onData);
        child.once("close", onExit);
      });
    },
    async cleanup() {
      if (!exitInfo) {
        child.kill("SIGKILL");
        await exited;
      }
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return proc;
}

/**
 * Runs the server expecting it to exit by itself (bad configuration, start-up failure) and returns its exit
 * status and output. Kills it and rejects if it is still running after `timeoutMs`.
 */
export async function runMain(options: MainOptions = {}): Promise<RunResult> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir());
  const timeoutMs = options.timeoutMs ?? 30_000;
  const { child, out, exited } = spawnMain(childEnv(dataDir, options.env), options);
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const info = await exited;
    if (info.signal === "SIGKILL") throw new Error(`server still running after ${timeoutMs} ms\nstdout: ${tail(out.stdout)}`);
    return { ...info, stdout: out.stdout, stderr: out.stderr };
  } finally {
    clearTimeout(timer);
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  }
}

/** SIGKILLs every child this helper started that is still running, and waits for them. */
export async function stopAllMains(): Promise<void> {
  const children = [...running];
  await Promise.all(children.map((c) => new Promise<void>((resolve) => {
    c.once("close", () => resolve());
    c.kill("SIGKILL");
  })));
}

/** A child started by {@link launchMain}: not yet known to listen. */
export interface LaunchedMain {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly exited: Promise<ExitInfo>;
  readonly stdout: string;
  readonly stderr: string;
  /** SIGKILLs the child if still running and removes the temp DATA_DIR. */
  cleanup(): Promise<void>;
}

/**
 * Starts the server without waiting for anything (start-up race tests pick the port themselves and hit it the
 * instant it answers, before the `THINGRELAY_PORT` line, which is printed only after the admin bootstrap).
 */
export async function launchMain(options: MainOptions = {}): Promise<LaunchedMain> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await tempDir());
  const { child, out, exited } = spawnMain(childEnv(dataDir, options.env), options);
  let ended = false;
  void exited.then(() => (ended = true));
  return {
    child, dataDir, exited,
    get stdout() {
      return out.stdout;
    },
    get stderr() {
      return out.stderr;
    },
    async cleanup() {
      if (!ended) {
        child.kill("SIGKILL");
        await exited;
      }
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
