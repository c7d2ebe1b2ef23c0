import { spawn, type ChildProcessWithoutNullStreams, type SpawnOptionsWithoutStdio } from "node:child_process";

/** A child process with its output collected, for tests that run the SDK in another process or runtime. */
export interface Child {
  readonly child: ChildProcessWithoutNullStreams;
  /** Its exit code (null when killed by a signal). */
  readonly exit: Promise<number | null>;
  out(): string;
  err(): string;
  /**
   * Resolves once `match(stdout)` holds, checked on every chunk of output, or once the process has exited (the
   * caller's next assertion then says why, with its stderr): an awaited event, not a polling loop. Rejects
   * after `timeoutMs` naming `what`.
   */
  printed(match: (out: string) => boolean, timeoutMs?: number, what?: string): Promise<void>;
}

export function spawnChild(command: string, args: string[], options: SpawnOptionsWithoutStdio = {}): Child {
  const child = spawn(command, args, { ...options, stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const printed = (match: (out: string) => boolean, timeoutMs = 20_000, what = "the child's output") =>
    new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        resolve();
      };
      // Listeners run in order: this one sees `out` after the collector above appended the chunk.
      const onData = () => {
        if (match(out)) done();
      };
      const timer = setTimeout(() => {
        child.stdout.off("data", onData);
        reject(new Error(`timed out waiting for ${what}; stderr: ${err}`));
      }, timeoutMs);
      child.stdout.on("data", onData);
      void exit.then(done);
      if (match(out)) done();
    });
  return { child, exit, out: () => out, err: () => err, printed };
}
