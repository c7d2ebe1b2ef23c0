#!/usr/bin/env node
/** The `thingrelay` executable (package.json "bin"): the process edge of the CLI; see main.ts and docs/cli.md. */
import { run } from "./main.js";

const stop = new AbortController();
let signals = 0;
const onSignal = () => {
  // First Ctrl-C: stop cleanly (watch returns, serve forwards SIGTERM). Second: give up at once.
  if (++signals > 1) process.exit(130);
  stop.abort();
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

const code = await run(process.argv.slice(2), {
  stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, signal: stop.signal,
});
process.off("SIGINT", onSignal);
process.off("SIGTERM", onSignal);
// Let stdout drain before exiting (a pipe may still hold output).
process.exitCode = code;
