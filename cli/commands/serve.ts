import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Command } from "../command.js";
import { str } from "../command.js";
import { CliError, EXIT, usageError } from "../errors.js";

/** The server's entry point next to this file: dist/server/main.js, or server/main.ts when run from source (cli/ sits beside server/). */
function serverEntry(): string {
  for (const name of ["../../server/main.js", "../../server/main.ts"]) {
    const file = fileURLToPath(new URL(name, import.meta.url));
    if (existsSync(file)) return file;
  }
  throw new CliError("cannot find the server (server/main.js): run npm run build", EXIT.failure);
}

export const serve: Command = {
  path: ["serve"],
  summary: "start the server in the foreground",
  description: "Runs the thingrelay server (the same as npm start) with this environment; the options below "
    + "override PORT, HOST and DATA_DIR. Every other setting comes from the environment (see the README's "
    + "configuration table). Stops on Ctrl-C or SIGTERM and exits with the server's exit code.",
  maxArgs: 0,
  options: {
    port: { type: "string", short: "p", value: "PORT", description: "HTTP and WebSocket port (default $PORT, else 8080)" },
    host: { type: "string", value: "HOST", description: "bind address (default $HOST, else 0.0.0.0)" },
    "data-dir": { type: "string", value: "DIR", description: "embedded store and secrets (default $DATA_DIR, else ./data)" },
  },
  examples: ["thingrelay serve --port 8080 --data-dir ~/.local/share/thingrelay"],
  async run(ctx, _args, options) {
    const env: Record<string, string | undefined> = { ...ctx.io.env };
    const port = str(options, "port");
    if (port !== undefined) {
      if (!/^\d{1,5}$/.test(port)) throw usageError("--port must be a port number");
      env.PORT = port;
    }
    if (str(options, "host") !== undefined) env.HOST = str(options, "host");
    if (str(options, "data-dir") !== undefined) env.DATA_DIR = str(options, "data-dir");
    const entry = serverEntry();
    // A child process, not an import: the server owns its process (signals, exit codes, the one env read).
    // process.execArgv carries a loader such as tsx when the CLI itself runs from source.
    const child = spawn(process.execPath, [...process.execArgv, entry], { env: env as NodeJS.ProcessEnv, stdio: "inherit" });
    const forward = () => child.kill("SIGTERM");
    ctx.io.signal?.addEventListener("abort", forward, { once: true });
    const code = await new Promise<number>((resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (c, signal) => resolve(c ?? (signal ? 128 + 15 : 1)));
    });
    ctx.io.signal?.removeEventListener("abort", forward);
    return code;
  },
};
