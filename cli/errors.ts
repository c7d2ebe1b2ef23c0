/** Exit codes of the `thingrelay` command (documented in docs/cli.md). */
export const EXIT = Object.freeze({
  ok: 0,
  /** The server refused the request, or it could not be reached. */
  failure: 1,
  /** Bad command line: unknown command or option, missing or malformed argument. */
  usage: 2,
  /** Not signed in, or the stored session expired or was revoked: run `thingrelay login`. */
  auth: 4,
});

/** A failure the CLI reports as one clear line and an exit code (no stack trace). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
    /** The server's error code, when the server gave one. */
    readonly code?: string,
    readonly status?: number,
    /** The server's own message, without the code and status the CLI adds for people. */
    readonly serverMessage?: string,
  ) {
    super(message);
    this.name = "CliError";
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage, "usage");
}
