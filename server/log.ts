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
  return url.replace(/([?&](?:authorization|access_token|refresh_token|token)=)[^&#]*/gi, "$1[REDACTED]");
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: "[REDACTED]" }, base: { service: "thingrelay" } };
  return destination ? pino(options, destination) : pino(options);
}
