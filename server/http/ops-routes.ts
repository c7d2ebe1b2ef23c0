import { createHash, timingSafeEqual } from "node:crypto";
import type { Router } from "@koa/router";
import { AppError } from "../errors.js";
import type { Metrics } from "../metrics.js";
import type { Store } from "../store/types.js";

/** Constant-time string comparison (a timing difference would leak the secret byte by byte). */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/** `GET /health`, `GET /ready` (the store answers its ping) and `GET /metrics` (behind `metricsToken` when set). */
export function opsRoutes(router: Router, store: Store, metrics: Metrics, metricsToken: string | undefined): void {
  router.get("/health", (ctx) => {
    ctx.body = { status: "ok" };
  });
  router.get("/ready", async (ctx) => {
    try {
      await store.ping();
      ctx.body = { status: "ready", store: store.kind };
    } catch {
      throw new AppError("service_unavailable", "store unreachable", { headers: { "Retry-After": "5" } });
    }
  });
  router.get("/metrics", async (ctx) => {
    // THINGRELAY_METRICS_TOKEN set: only a scraper presenting it as a bearer token reads the metrics.
    if (metricsToken !== undefined && !sameSecret(ctx.get("Authorization"), `Bearer ${metricsToken}`)) {
      throw new AppError("unauthorized", "metrics require the bearer token of THINGRELAY_METRICS_TOKEN", { headers: { "WWW-Authenticate": 'Bearer realm="metrics"' } });
    }
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
}
