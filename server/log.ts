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

/** The fields of the one access line per request. */
export interface AccessFields {
  reqId: string;
  method: string;
  /** Already through {@link redactUrl}. */
  url: string;
  status: number;
  ms: number;
  ip: string;
}

/** The one access line per request: `info`, or `warn` for a 5xx. */
export interface AccessLog {
  enabled(level: "info" | "warn"): boolean;
  write(level: "info" | "warn", fields: AccessFields): void;
}

const S = pino.symbols;

/** What JSON (and pino's string writer) escapes in a string; lone surrogates cannot occur in latin1 request lines. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON, the way pino writes it: quoted as is when nothing in it needs escaping (JSON.stringify: ~180 ns). */
function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * The access line, on the same destination and level as `logger`, without pino's redaction pass or its generic
 * serialiser. Its fields are fixed — request id, method, the URL already through {@link redactUrl}, status,
 * duration, client address — none of which can hold a secret (pino's redaction of 17 paths cost ~9 µs of the
 * ~11 µs per line, with wildcards it walks and copies the object). The line is pino's own: the level prefix, the
 * time, the bindings and the end come from `logger`, only the six fields are joined here (pino's loop over an
 * object's keys cost ~1.6 µs of a relay call at `info`; this join ~0.45 µs). test/log-access.test.ts checks the
 * line is byte for byte what `logger.info(fields, "request")` writes. A logger with anything that changes pino's
 * line (mixin, log formatter, hooks, message prefix, nested key, a multistream) gets pino's own path.
 */
export function accessLogger(logger: Logger): AccessLog {
  const l = logger as unknown as Record<symbol, unknown>;
  // pino's typings lack this symbol, which the library has.
  const msgPrefixSym = (S as unknown as Record<string, symbol>).msgPrefixSym!;
  const plain = l[S.mixinSym] === undefined && (l[S.formattersSym] as { log?: unknown }).log === undefined
    && (l[S.hooksSym] as { streamWrite?: unknown }).streamWrite === undefined && l[msgPrefixSym] === undefined
    && l[S.nestedKeySym] === null && l[S.messageKeySym] === "msg" && l[S.endSym] === "}\n"
    && !(l[S.streamSym] as Record<symbol, unknown>)[S.needsMetadataGsym];
  if (!plain) {
    const child = logger.child({}, { redact: { paths: [] } });
    return { enabled: (level) => child.isLevelEnabled(level), write: (level, fields) => child[level](fields, "request") };
  }
  const stream = l[S.streamSym] as DestinationStream;
  const time = l[S.timeSym] as () => string;
  const head = l[S.lsCacheSym] as Record<number, string>;
  const chindings = l[S.chindingsSym] as string;
  const prefix = { info: head[logger.levels.values.info!]!, warn: head[logger.levels.values.warn!]! };
  return {
    enabled: (level) => logger.isLevelEnabled(level),
    write(level, f) {
      stream.write(`${prefix[level]}${time()}${chindings},"reqId":${jsonString(f.reqId)},"method":${jsonString(f.method)},"url":${jsonString(f.url)},"status":${f.status},"ms":${f.ms},"ip":${jsonString(f.ip)},"msg":"request"}\n`);
    },
  };
}

/**
 * The server's logger. Without a destination it writes to stdout asynchronously, in batches of at most
 * {@link LOG_BATCH_MS} ({@link BatchedStdout}), so a slow reader of stdout never blocks the event loop. What is
 * pending is written when the process exits (also on an uncaught exception): the batch by {@link BatchedStdout},
 * then SonicBoom's queue. What SIGKILL, or a crash while the thread pool is still writing an earlier batch, can lose:
 * that batch (SonicBoom's asynchronous mode, as pino documents it).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[REDACTED]" }, base: { service: "thingrelay" } };
  return pino(options, destination ?? new BatchedStdout(pino.destination({ dest: 1, sync: false })));
}

type SonicBoom = ReturnType<typeof pino.destination>;

/** How long a log line may wait for the lines after it before it is written. */
export const LOG_BATCH_MS = 20;
/** The timer seam of {@link BatchedStdout} (tests pass a fake one). */
export interface BatchTimer {
  setTimeout(fn: () => void, ms: number): { unref?(): unknown };
}

/**
 * Log lines go to stdout in batches: the first line of a batch starts a {@link LOG_BATCH_MS} timer, and the lines
 * logged until it fires are handed to pino's SonicBoom in one `write`. Under load at `info` every request logs a
 * line; written one event-loop turn at a time (~14 lines per write at 18k requests/s), each write cost a thread-pool
 * hop in the server and a wake-up of the process reading the pipe (journald, a container runtime): that reader spent
 * twice the CPU per line. A line waits at most {@link LOG_BATCH_MS}.
 */
export class BatchedStdout implements DestinationStream {
  private pending = "";
  private scheduled = false;

  constructor(private readonly out: SonicBoom, private readonly timer: BatchTimer = globalThis) {
    // SonicBoom flushes itself on exit; what the batch still holds must reach it first.
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
    // Unreferenced: a pending batch never keeps the process alive; the exit handler writes it.
    this.timer.setTimeout(this.onTimer, LOG_BATCH_MS).unref?.();
  }

  private readonly onTimer = (): void => {
    this.scheduled = false;
    this.handOver();
  };

  private handOver(): void {
    const lines = this.pending;
    this.pending = "";
    if (lines) this.out.write(lines);
  }

  /** Text that is not a log line (see {@link print}): handed over at once, after the lines before it. */
  print(text: string): void {
    this.pending += text;
    this.handOver();
  }

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

/**
 * Text for the person or the script reading stdout (where to click, the port), not a log line: in order with the
 * log lines logged before it, which wait in the logger's batch. Without the server's own stdout batch, stdout.
 */
export function print(logger: Logger, text: string): void {
  const out = (logger as unknown as Record<symbol, unknown>)[S.streamSym];
  if (out instanceof BatchedStdout) out.print(text);
  else process.stdout.write(text);
}
