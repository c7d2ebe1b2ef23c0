/** The CLI's view of its process: streams, environment and terminal, injected so commands stay testable. */
import type { Readable, Writable } from "node:stream";
import { CliError, EXIT } from "./errors.js";

export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable & { isTTY?: boolean; setRawMode?: (on: boolean) => unknown };
  env: Record<string, string | undefined>;
  /** Aborted on Ctrl-C / SIGTERM: long-running commands (watch) stop cleanly and exit 0. */
  signal?: AbortSignal;
}

/**
 * Text for a terminal: control characters other than newline and tab (ESC, BEL, CR, C1…) shown as `\u001b`, so a
 * value a device sends or a field someone stored (a description, a token name) cannot drive the terminal (set
 * its title, clear it, rewrite a line). `--json` output is JSON, which escapes them itself.
 */
export function terminalSafe(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `text` made terminal-safe, ending in one newline. */
function line(text: string): string {
  const safe = terminalSafe(text);
  return safe.endsWith("\n") ? safe : `${safe}\n`;
}

export function print(io: CliIo, text: string): void {
  io.stdout.write(line(text));
}

export function note(io: CliIo, text: string): void {
  io.stderr.write(line(text));
}

/** JSON on stdout: pretty on a terminal would be nice, but one stable format is easier to pipe. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A plain text table with left-aligned columns. */
export function table(cells: string[][]): string {
  if (cells.length === 0) return "";
  // Made safe here too, so the columns line up with what is printed.
  const rows = cells.map((r) => r.map(terminalSafe));
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n");
}

/** Reads all of stdin (for piped passwords and JSON). */
export async function readStdin(io: CliIo): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * Reads a secret: prompted without echo on a terminal, else the first line of stdin (so scripts can pipe
 * it: `echo "$PW" | thingrelay login -u alice`). Never taken from the command line, where `ps` shows it.
 */
export async function readSecret(io: CliIo, prompt: string): Promise<string> {
  if (!io.stdin.isTTY || !io.stdin.setRawMode) {
    const line = (await readStdin(io)).split(/\r?\n/)[0] ?? "";
    if (line === "") throw new CliError(`${prompt.replace(/:\s*$/, "").toLowerCase()} expected on stdin`, EXIT.usage, "usage");
    return line;
  }
  io.stderr.write(prompt);
  const stdin = io.stdin;
  stdin.setRawMode!(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = "";
      const onData = (buf: Buffer) => {
        for (const ch of buf.toString("utf8")) {
          if (ch === "\r" || ch === "\n") {
            stdin.off("data", onData);
            io.stderr.write("\n");
            resolve(value);
            return;
          }
          if (ch === "\u0003") {
            stdin.off("data", onData);
            io.stderr.write("\n");
            reject(new CliError("cancelled", EXIT.failure));
            return;
          }
          if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
          else value += ch;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode!(false);
    stdin.pause();
  }
}

/** Reads one visible line from a terminal (e.g. the user name); on a pipe there is nobody to ask. */
export async function readLine(io: CliIo, prompt: string, what: string): Promise<string> {
  if (!io.stdin.isTTY) throw new CliError(`${what} required (no terminal to ask on)`, EXIT.usage, "usage");
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: io.stdin, output: io.stderr });
  try {
    return (await rl.question(prompt)).trim();
  } finally {
    rl.close();
  }
}
