import type { ApiClient } from "./client.js";
import type { CredentialStore } from "./credentials.js";
import type { CliIo } from "./io.js";

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. SECONDS. */
  value?: string;
  description: string;
}

export type Options = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Context {
  io: CliIo;
  /** --json: machine-readable output on stdout (errors as JSON on stderr). */
  json: boolean;
  /** The resolved server URL (--server, THINGRELAY_URL, the stored default, or http://localhost:8080). */
  server: string;
  client: ApiClient;
  store: CredentialStore;
}

export interface Command {
  /** Words after `thingrelay`, e.g. ["devices", "add"]. */
  path: string[];
  /** Positional arguments for the usage line, e.g. "<id>". */
  args?: string;
  minArgs?: number;
  maxArgs?: number;
  summary: string;
  description?: string;
  options?: Record<string, OptionSpec>;
  examples?: string[];
  /** Returns the exit code (default 0); failures throw CliError. */
  run(ctx: Context, args: string[], options: Options): Promise<number | void>;
}

/** The options every command takes. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  server: { type: "string", short: "s", value: "URL", description: "server URL (default: $THINGRELAY_URL, else the server you last signed in to, else http://localhost:8080)" },
  json: { type: "boolean", description: "print JSON (errors as JSON on stderr)" },
  help: { type: "boolean", short: "h", description: "show help" },
};

export function str(options: Options, name: string): string | undefined {
  const v = options[name];
  return typeof v === "string" ? v : undefined;
}

export function list(options: Options, name: string): string[] {
  const v = options[name];
  return Array.isArray(v) ? (v as unknown[]).filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
}
