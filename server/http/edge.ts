import type { Context, Next } from "koa";
import { AppError } from "../errors.js";
import { addressKey, clientAddress, type TrustProxy } from "../auth/address.js";
import type { WindowLimiter } from "../auth/limiter.js";
import { isApiPath } from "./middleware.js";

/**
 * Sets `ctx.request.ip` to the client address as the trusted proxies saw it (never the leftmost
 * X-Forwarded-For entry, which the client writes itself), always a well-formed IP: it keys the per-address limits.
 */
export function clientAddressOf(trustProxy: TrustProxy) {
  return async function address(ctx: Context, next: Next): Promise<void> {
    ctx.request.ip = clientAddress(ctx.req.socket.remoteAddress, ctx.req.headers["x-forwarded-for"], trustProxy);
    await next();
  };
}

/** Per client address limit on every API call (per token limits apply after authentication). */
export function addressRateLimit(limiter: WindowLimiter) {
  // Returns next() rather than awaiting it: no async frame of its own on every request (BENCHMARKS.md, issue 15).
  return function addressLimit(ctx: Context, next: Next): Promise<void> {
    if (isApiPath(ctx.path)) {
      const r = limiter.hit(`ip:${addressKey(ctx.ip)}`);
      if (!r.allowed) throw new AppError("too_many_requests", "rate limit exceeded for this address", { headers: { "Retry-After": String(r.retryAfterS) } });
    }
    return next();
  };
}

/**
 * Cluster mode: a request answers only once its revocations reached the other nodes. Also when the request
 * failed: a refresh-token reuse revokes its family and answers 401.
 */
export function clusterBarrier(cluster: { barrier(): Promise<void> }) {
  return async function barrier(_ctx: Context, next: Next): Promise<void> {
    try {
      await next();
    } finally {
      await cluster.barrier();
    }
  };
}
