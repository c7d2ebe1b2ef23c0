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
  if (q < 0) return url;
  // Match on the *decoded* key, as koa's ctx.query sees it: `?%61uthorization=` is the token parameter too.
  const query = url.slice(q + 1).split("&").map((part) => {
    const eq = part.indexOf("=");
    if (eq < 0) return part;
    let key = part.slice(0, eq);
    try {
      key = decodeURIComponent(key.replace(/\+/g, " "));
    } catch {
      // malformed escapes: match the raw key
    }
    return SECRET_PARAM.test(key) ? `${part.slice(0, eq)}=[REDACTED]` : part;
  });
  return `${url.slice(0, q)}?${query.join("&")}`;
}

const SECRET_PARAM = /authorization|token|password|secret|credential/i;

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[REDACTED]" }, base: { service: "thingrelay" } };
  return destination ? pino(options, destination) : pino(options);
}
