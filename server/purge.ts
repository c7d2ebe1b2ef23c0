import type { Logger } from "./log.js";
import type { Repositories } from "./store/repos.js";
import type { IdempotencyKeys } from "./calls/idempotency.js";
import { REFRESH_TOKEN_TTL_MS } from "./oauth/service.js";

/** First run after start, then the period (ms). */
const FIRST_RUN_MS = 60_000;
const PERIOD_MS = 3_600_000;

/**
 * Store housekeeping: expired refresh tokens, dead families and expired Idempotency-Keys are purged hourly
 * (and once shortly after start). Failures are logged and retried at the next run.
 */
export class PeriodicPurge {
  private timers: NodeJS.Timeout[] = [];

  constructor(private readonly repos: Repositories, private readonly idempotency: IdempotencyKeys, private readonly logger: Logger) {}

  start(): void {
    const run = () => this.run();
    this.timers = [setTimeout(run, FIRST_RUN_MS), setInterval(run, PERIOD_MS)];
    for (const t of this.timers) t.unref();
  }

  run(): void {
    this.idempotency.purge().catch((err: unknown) => this.logger.warn({ err }, "idempotency key purge failed"));
    this.repos.purgeExpired(Date.now(), REFRESH_TOKEN_TTL_MS).then(
      (n) => (n.tokens + n.families > 0 ? this.logger.info(n, "purged expired refresh tokens") : undefined),
      (err: unknown) => this.logger.warn({ err }, "refresh token purge failed"),
    );
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
  }
}
