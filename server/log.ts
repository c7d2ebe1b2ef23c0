import { unescape } from "node:querystring";
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

/** Paths pino censors in every log line (headers, bodies, credentials, tokens). */
export const REDACT_PATHS = [
  "req.headers.authorization", "req.headers.cookie", "headers.authorization", "authorization",
  "password", "*.password", "credentials", "*.credentials", "device_credentials", "*.device_credentials",
  "token", "*.token", "refresh_token", "*.refresh_token", "access_token", "*.access_token",
];

/** Removes the `authorization` query parameter (and any other token-like one) from a URL for logging. */
export function redactUrl(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return url.replace(JWT_RE, "[REDACTED]");
  // Match on the *decoded* key, as koa's ctx.query sees it: `?%61uthorization=` is the token parameter too.
  const query = url.slice(q + 1).split("&").map((part) => {
    const eq = part.indexOf("=");
    if (eq < 0) return part;
    // node:querystring's unescape is what koa's ctx.query applies (lenient with malformed escapes, never throws).
    const key = unescape(part.slice(0, eq).replace(/\+/g, " "));
    return SECRET_PARAM.test(key) ? `${part.slice(0, eq)}=[REDACTED]` : part;
  });
  return `${url.slice(0, q)}?${query.join("&")}`.replace(JWT_RE, "[REDACTED]");
}

/** Second net: anything shaped like a JWS compact token, under whatever parameter name it came. */
const JWT_RE = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

const SECRET_PARAM = /authorization|token|password|secret|credential/i;

/**
 * The logger of the one access line per request: the same destination and level, without the redaction pass.
 * Its line has fixed fields only — request id, method, the URL already through {@link redactUrl}, status,
 * duration, client address — none of which can hold a secret, and pino's redaction of 17 paths cost ~9 µs of
 * the ~11 µs per line (with wildcards it walks and copies the object). Log nothing else through it.
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}

/**
 * The server's logger. Without a destination it writes to stdout asynchronously, one write per event-loop turn
 * ({@link TurnBatchedStdout}). What is pending is flushed when the process exits (also on an uncaught exception):
 * the turn's lines by {@link TurnBatchedStdout}, then SonicBoom's own; only a SIGKILL can lose the last lines.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[REDACTED]" }, base: { service: "thingrelay" } };
  return pino(options, destination ?? new TurnBatchedStdout(pino.destination({ dest: 1, sync: false })));
}

type SonicBoom = ReturnType<typeof pino.destination>;

/**
 * The lines of one event-loop turn go to stdout in one write, handed over in `setImmediate`. Under load a turn
 * answers dozens of requests, each with its access line at `info`: written one by one (even through the async
 * SonicBoom, which only joins the lines that arrive while a write is in flight) every few lines cost a `write` and
 * a wake-up of the process reading the pipe. A line waits at most until the end of its turn, never for more lines.
 */
export class TurnBatchedStdout implements DestinationStream {
  private pending = "";
  private scheduled = false;

  constructor(private readonly out: SonicBoom) {
    // SonicBoom flushes itself on exit; what this turn still holds must reach it first.
    process.once("exit", () => {
      try {
        this.flushSync();
      } catch {
        // stdout already gone (EPIPE) or closed: nothing left to write to.
      }
    });
  }

  write(line: string): void {
    this.pending += line;
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.handOver);
  }

  private readonly handOver = (): void => {
    this.scheduled = false;
    const lines = this.pending;
    this.pending = "";
    if (lines) this.out.write(lines);
  };

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    this.handOver();
    this.out.flush(cb);
  }

  flushSync(): void {
    this.handOver();
    this.out.flushSync();
  }
}
