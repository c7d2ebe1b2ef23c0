import type Koa from "koa";
import { AppError } from "../errors.js";
import { clientAddress, type TrustProxy } from "../auth/address.js";
import type { WindowLimiter } from "../auth/limiter.js";
import { isApiPath } from "./middleware.js";
import { connectionOf } from "./connection.js";

/**
 * Sets `ctx.request.ip` to the client address as the trusted proxies saw it (never the leftmost
 * X-Forwarded-For entry, which the client writes itself), always a well-formed IP: it keys the per-address limits.
 */
export function clientIp(trustProxy: TrustProxy): Koa.Middleware {
  // Not async: nothing to do after next(), so no promise of its own per request.
  return (ctx, next) => {
    ctx.request.ip = clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers["x-forwarded-for"], trustProxy);
    return next();
  };
}

/** Cluster mode: a request's effects (revocations…) reach every node before it is answered. */
export function clusterBarrier(cluster: { revocationMark(): number; barrier(since?: number): Promise<void> }): Koa.Middleware {
  return async (_ctx, next) => {
    // Acknowledgements are awaited only for revocations sent while this request ran.
    const since = cluster.revocationMark();
    try {
      await next();
    } finally {
      // Also when the request failed: a refresh-token reuse revokes its family and answers 401.
      await cluster.barrier(since);
    }
  };
}

/** Per client address limit on every API call (per token limits apply after authentication). */
export function addressRateLimit(limiter: WindowLimiter): Koa.Middleware {
  return (ctx, next) => {
    if (isApiPath(ctx.path)) {
      // The key is built once per socket and address (http/connection.ts), not per call.
      const r = limiter.hit(connectionOf(ctx.req.socket).addressLimitKey(ctx.ip));
      if (!r.allowed) throw new AppError("too_many_requests", "rate limit exceeded for this address", { headers: { "Retry-After": String(r.retryAfterS) } });
    }
    return next();
  };
}
