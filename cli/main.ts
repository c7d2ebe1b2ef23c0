/**
 * `thingrelay`: a command-line client of the REST API (it never opens the store), plus `serve`.
 * `run(argv, io)` parses the command line with node:util parseArgs, runs one command and returns the exit
 * code; bin.ts is the only place that touches the real process.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ApiClient, normalizeServer } from "./client.js";
import { type Command, type Context, GLOBAL_OPTIONS, type OptionSpec, type Options } from "./command.js";
import { CredentialStore, configDir } from "./credentials.js";
import { CliError, EXIT } from "./errors.js";
import { type CliIo, print, terminalSafe } from "./io.js";
import { login, logout, whoami } from "./commands/auth.js";
import { usersAdd } from "./commands/users.js";
import { devicesAdd, devicesList, devicesRm } from "./commands/devices.js";
import { tokensCreate, tokensList, tokensRm } from "./commands/tokens.js";
import { call, watch } from "./commands/relay.js";
import { serve } from "./commands/serve.js";
import { calls, propsGet, propsRm, propsSet } from "./commands/away.js";
import { packageVersion } from "./version.js";

export const COMMANDS: readonly Command[] = [
  login, logout, whoami, usersAdd, devicesList, devicesAdd, devicesRm, tokensList, tokensCreate, tokensRm, call, watch, serve,
  propsGet, propsSet, propsRm, calls,
];

const GROUPS: Record<string, string> = {
  users: "manage accounts",
  devices: "manage devices",
  tokens: "manage device tokens and user access tokens",
  props: "read and write device properties",
};

export const DEFAULT_SERVER = "http://localhost:8080";


function parseConfig(specs: Record<string, OptionSpec>): ParseArgsConfig["options"] {
  return Object.fromEntries(Object.entries(specs).map(([name, s]) => [name, {
    type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}),
  }]));
}

function optionLines(specs: Record<string, OptionSpec>): string[] {
  const rows = Object.entries(specs).map(([name, s]) => [
    `${s.short ? `-${s.short}, ` : "    "}--${name}${s.value ? ` ${s.value}` : ""}`, s.description,
  ]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`);
}

function usageLine(c: Command): string {
  return `thingrelay ${c.path.join(" ")}${c.args ? ` ${c.args}` : ""}${c.options ? " [options]" : ""}`;
}

function mainHelp(): string {
  const rows = COMMANDS.map((c) => [c.path.join(" ") + (c.args ? ` ${c.args}` : ""), c.summary]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return [
    "thingrelay — command-line client of a thingrelay server",
    "",
    "Usage: thingrelay <command> [options]",
    "",
    "Commands:",
    ...rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`),
    "",
    "Options (every command):",
    ...optionLines(GLOBAL_OPTIONS),
    "  -v, --version     print the version",
    "",
    'Run "thingrelay <command> --help" for a command\'s options. Docs: docs/cli.md',
  ].join("\n");
}

function groupHelp(group: string): string {
  const cmds = COMMANDS.filter((c) => c.path[0] === group);
  const rows = cmds.map((c) => [c.path.join(" ") + (c.args ? ` ${c.args}` : ""), c.summary]);
  const w = Math.max(...rows.map((r) => r[0]!.length));
  return [
    `thingrelay ${group} — ${GROUPS[group]}`,
    "",
    "Commands:",
    ...rows.map(([a, b]) => `  ${a!.padEnd(w)}  ${b}`),
    "",
    `Run "thingrelay ${group} <command> --help" for a command's options.`,
  ].join("\n");
}

function commandHelp(c: Command): string {
  const lines = [`Usage: ${usageLine(c)}`, "", `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`];
  if (c.description) lines.push("", ...wrap(c.description, 100));
  if (c.options) lines.push("", "Options:", ...optionLines(c.options));
  lines.push("", "Global options:", ...optionLines(GLOBAL_OPTIONS));
  if (c.examples) lines.push("", "Examples:", ...c.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}

/** Every option of every command: lets a first, lenient pass find the command words whatever the order. */
function allOptions(): Record<string, OptionSpec> {
  const all: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, version: { type: "boolean", short: "v", description: "" } };
  for (const c of COMMANDS) Object.assign(all, c.options);
  return all;
}

function reportError(io: CliIo, json: boolean, err: CliError): void {
  if (json) io.stderr.write(`${JSON.stringify({ error: { code: err.code ?? "error", message: err.serverMessage ?? err.message, ...(err.status ? { status: err.status } : {}) } })}\n`);
  else io.stderr.write(`thingrelay: ${terminalSafe(err.message)}\n`);
}

/** Runs one command line; resolves to the process exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const wantsJson = argv.includes("--json");
  try {
    const loose = parseArgs({ args: [...argv], options: parseConfig(allOptions()), strict: false, allowPositionals: true });
    const words = loose.positionals;
    if (words[0] === "help") return run([...words.slice(1), "--help"], io);
    if (words.length === 0) {
      if (loose.values.version === true) {
        print(io, packageVersion("unknown"));
        return EXIT.ok;
      }
      print(io, mainHelp());
      return loose.values.help === true ? EXIT.ok : EXIT.usage;
    }
    const group = words[0]!;
    let command = COMMANDS.find((c) => c.path.length === 1 && c.path[0] === group);
    if (!command && GROUPS[group]) {
      command = COMMANDS.find((c) => c.path.length === 2 && c.path[0] === group && c.path[1] === words[1]);
      if (!command) {
        if (words[1] === undefined && loose.values.help === true) {
          print(io, groupHelp(group));
          return EXIT.ok;
        }
        io.stderr.write(`${groupHelp(group)}\n\n`);
        throw new CliError(words[1] === undefined ? `"${group}" needs a command` : `unknown command "${group} ${words[1]}"`, EXIT.usage, "usage");
      }
    }
    if (!command) throw new CliError(`unknown command "${group}" (see thingrelay --help)`, EXIT.usage, "usage");

    let parsed;
    try {
      parsed = parseArgs({ args: [...argv], options: parseConfig({ ...GLOBAL_OPTIONS, ...command.options }), strict: true, allowPositionals: true });
    } catch (err) {
      throw new CliError(`${(err as Error).message.split("\n")[0]} (see thingrelay ${command.path.join(" ")} --help)`, EXIT.usage, "usage");
    }
    const values = parsed.values as Options;
    if (values.help === true) {
      print(io, commandHelp(command));
      return EXIT.ok;
    }
    const args = parsed.positionals.slice(command.path.length);
    if (args.length < (command.minArgs ?? 0) || args.length > (command.maxArgs ?? Infinity)) {
      throw new CliError(`usage: ${usageLine(command)}`, EXIT.usage, "usage");
    }

    const store = new CredentialStore(configDir(io.env));
    const explicit = (values.server as string | undefined) ?? (io.env.THINGRELAY_URL || undefined);
    const server = normalizeServer(explicit ?? (await store.read()).default ?? DEFAULT_SERVER);
    const ctx: Context = { io, json: values.json === true, server, store, client: new ApiClient(server, store) };
    return (await command.run(ctx, args, values)) ?? EXIT.ok;
  } catch (err) {
    if (err instanceof CliError) {
      reportError(io, wantsJson, err);
      return err.exitCode;
    }
    reportError(io, wantsJson, new CliError(`unexpected error: ${err instanceof Error ? err.message : String(err)}`, EXIT.failure, "internal"));
    return EXIT.failure;
  }
}
