/**
 * FerretDB (DESIGN.md §2: our stand-in for MongoDB) as a child process, for tests that need an instance of
 * their own — a cluster whose store they stop and start again, a store outage. The binary is built from
 * test/ferretdb/ (`npm run ferretdb:build`, done by `.ci/run`); FERRETDB_BIN overrides its path. Tests that
 * merely need *a* MongoDB use MONGODB_URL (the shared instance `.ci/run` starts) instead.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "./process.js";

export const FERRETDB_BIN = process.env.FERRETDB_BIN ?? join(REPO_ROOT, "test", "ferretdb", "ferretdb");

export function ferretdbAvailable(): boolean {
  return existsSync(FERRETDB_BIN);
}

/** Why a FerretDB test is skipped when the binary is missing (shown as the pending test's title). */
export const FERRETDB_MISSING = `FerretDB binary missing (${FERRETDB_BIN}): run \`npm run ferretdb:build\` (CI does)`;

export interface FerretDb {
  /** `mongodb://127.0.0.1:<port>/` — add a database name with {@link withDatabase}. */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  readonly process: ChildProcess | null;
  /** Stops the server (SIGTERM, SIGKILL after 5 s); its data stays in `dir`. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory (after {@link FerretDb.stop}). */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  dispose(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** The same server URL with `db` as its database (query options kept). */
export function withDatabase(base: string, db: string): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.toString();
}

/** A database name no other test uses. */
export function freshDatabase(prefix = "thingrelay_test"): string {
  return `${prefix}_${randomBytes(6).toString("hex")}`;
}

async function launch(listen: string, dir: string): Promise<{ child: ChildProcess; addr: string }> {
  const child = spawn(FERRETDB_BIN, ["-listen", listen, "-dir", dir], { stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  child.once("exit", () => running.delete(child));
  const addr = await new Promise<string>((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`FerretDB did not start within 30 s: ${err.slice(-2000)}`));
    }, 30_000);
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      out += s;
      const m = /^listening on (\S+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.setEncoding("utf8").on("data", (s: string) => (err = (err + s).slice(-4000)));
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`FerretDB exited (code ${code}, signal ${signal}) before listening: ${err.slice(-2000)}`));
    });
  });
  // Keep the pipes drained so a chatty child never blocks.
  child.stdout!.resume();
  child.stderr!.resume();
  return { child, addr };
}

/** Starts FerretDB on a free 127.0.0.1 port with a fresh directory; resolves once it accepts connections. */
export async function startFerretDb(): Promise<FerretDb> {
  const dir = await mkdtemp(join(tmpdir(), "thingrelay-ferretdb-"));
  let { child, addr } = await launch("127.0.0.1:0", dir);
  const port = Number(addr.slice(addr.lastIndexOf(":") + 1));
  let current: ChildProcess | null = child;
  const fdb: FerretDb = {
    url: `mongodb://${addr}/`, port, dir,
    get process() {
      return current;
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const c = current;
      current = null;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill(signal);
      const force = setTimeout(() => c.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(force);
    },
    async start() {
      if (current) return;
      ({ child, addr } = await launch(addr, dir));
      current = child;
    },
    async dispose() {
      await fdb.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fdb;
}
