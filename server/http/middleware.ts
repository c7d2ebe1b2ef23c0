import { randomUUID } from "node:crypto";
import type { Context, Next } from "koa";
import cors from "@koa/cors";
import { AppError, errorBody, isAppError } from "../errors.js";
import { accessLogger, redactUrl, type Logger } from "../log.js";
import { deferHeaders } from "./response.js";

/** Request id, one structured log line per request (URL redacted), errors rendered in one shape. */
export function requestLifecycle(logger: Logger) {
  const access = accessLogger(logger);
  return async function lifecycle(ctx: Context, next: Next): Promise<void> {
    const started = performance.now();
    const id = randomUUID();
    ctx.state.requestId = id;
    // Sent with the head in one block with the security headers (see response.ts): this runs on every request.
    deferHeaders(ctx.res, undefined, id);
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) throw new AppError("not_found", "no such route");
      // The router's allowedMethods() leaves 405/501 without a body (it has set `Allow`).
      if ((ctx.status === 405 || ctx.status === 501) && !ctx.body) {
        let allow = String(ctx.response.get("Allow") || "");
        if (ctx.path.startsWith("/v2/")) allow = relayAllow(ctx.path, allow);
        throw new AppError("method_not_allowed", undefined, { status: 405, headers: { Allow: allow } });
      }
      // OPTIONS (the router's answer) lists the methods a 405 there would (schemathesis: Allow header conformance).
      if (ctx.method === "OPTIONS" && ctx.path.startsWith("/v2/") && ctx.response.get("Allow")) {
        ctx.set("Allow", relayAllow(ctx.path, String(ctx.response.get("Allow"))));
      }
    } catch (err) {
      renderError(ctx, err, logger, id);
    }
    // The line (and the URL redaction in it) is built only when its level is on: at the default level a
    // successful request logs nothing, and building the object per request cost ~2% of a relay call.
    const level = ctx.status >= 500 ? "warn" : "info";
    if (!access.enabled(level)) return;
    access.write(level, {
      reqId: id, method: ctx.method, url: redactUrl(ctx.originalUrl), status: ctx.status,
      ms: Math.round((performance.now() - started) * 100) / 100, ip: ctx.ip,
    });
  };
}

function renderError(ctx: Context, err: unknown, logger: Logger, reqId: string): void {
  let appErr: AppError;
  if (isAppError(err)) {
    appErr = err;
  } else {
    const e = err as { status?: number; type?: string; expose?: boolean; name?: string } | undefined;
    // Errors raised by koa-bodyparser / raw-body carry an HTTP status and a type.
    if (e?.status === 413 || e?.type === "entity.too.large") appErr = new AppError("payload_too_large");
    else if (e?.status === 415) appErr = new AppError("unsupported_media_type");
    else if (e?.name === "StoreUnavailableError") appErr = new AppError("service_unavailable", "store unavailable", { headers: { "Retry-After": "5" } });
    else if (e?.status === 400 && e.expose) appErr = new AppError("invalid_json");
    else {
      logger.error({ reqId, err }, "unhandled error");
      appErr = new AppError("internal_error");
    }
  }
  ctx.status = appErr.status;
  for (const [k, v] of Object.entries(appErr.headers)) ctx.set(k, v);
  ctx.body = errorBody(appErr.code, appErr.message);
}

/**
 * Headers sent on every answer (also on the raw answers to unparsable requests, see client-error.ts):
 * no sniffing, no referrer (tokens may sit in `?authorization=` URLs, RFC 6750 §2.3 / RFC 9700 §4.2), no framing.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
});

/** The token-bearing API (as opposed to pages, docs, health and metrics): rate-limited, never cached. */
export function isApiPath(path: string): boolean {
  return path.startsWith("/v1/") || path.startsWith("/v2/") || path.startsWith("/oauth/");
}

/** Headers suited to an API that may carry tokens in URLs and to a page that holds tokens. */
export function securityHeaders() {
  // Fixed names and values, checked once here, sent with the head as one block (response.ts: eleven
  // `setHeader` calls per request were the largest JavaScript item of a relay call's profile, issue 15).
  const pages = Object.freeze(Object.entries(SECURITY_HEADERS).flat());
  const api = Object.freeze([...pages, "Cache-Control", "no-store", "Pragma", "no-cache"]);
  // Not async: nothing to do after next(), so no promise of its own per request.
  return function security(ctx: Context, next: Next): Promise<void> {
    deferHeaders(ctx.res, isApiPath(ctx.path) ? api : pages);
    return next();
  };
}

/** CORS: off unless THINGRELAY_CORS_ORIGINS lists origins; then only those origins get CORS headers. */
export function corsFor(origins: readonly string[]) {
  const allowed = new Set(origins);
  return cors({
    origin: (ctx: Context) => {
      const o = ctx.get("Origin");
      return allowed.has(o) ? o : "";
    },
    allowMethods: ["GET", "POST", "PUT", "DELETE"],
    // Every request header the API documents (Prefer: queued calls; Idempotency-Key: retries), and every
    // answer header a script needs (Location of a queued call, a replayed answer, Allow of a 405).
    allowHeaders: ["Authorization", "Content-Type", "Accept", "Last-Event-ID", "Prefer", "Idempotency-Key"],
    exposeHeaders: ["Retry-After", "X-Request-Id", "WWW-Authenticate", "Link", "X-Total-Count", "Location", "Idempotent-Replayed", "Allow", "Preference-Applied"],
    maxAge: 600,
  });
}

/**
 * `Allow` on a `/v2/` relay path: the router lists HEAD wherever GET exists, but a HEAD on a device resource is
 * refused (it would run it); and an `/api` (a device's or a resource's) is read with GET only.
 */
function relayAllow(path: string, allow: string): string {
  if (path.endsWith("/api")) return "GET";
  return allow.split(/,\s*/).filter((m) => m !== "HEAD").join(", ");
}
