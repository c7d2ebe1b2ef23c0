import type { Logger } from "./log.js";
import type { Repositories } from "./store/repos.js";
import type { IdempotencyKeys } from "./calls/idempotency.js";
import { REFRESH_TOKEN_TTL_MS } from "./oauth/service.js";

/** The timer functions the schedule uses; tests pass fakes to run a purge without waiting (issue 13.6). */
export interface PurgeTimers {
  setTimeout(fn: () => void, ms: number): { unref?(): unknown };
  setInterval(fn: () => void, ms: number): { unref?(): unknown };
  clearTimeout(t: unknown): void;
  clearInterval(t: unknown): void;
}

export interface PurgeOptions {
  /** Delay of the first purge after start (default 60 s). */
  firstMs?: number;
  /** Interval of the following ones (default 1 h). */
  everyMs?: number;
  timers?: PurgeTimers;
}

/**
 * Expired refresh tokens, dead token families and expired idempotency keys are purged hourly (and once shortly
 * after start). Failures are logged and retried on the next pass. The timers never hold the process open.
 */
export class PurgeSchedule {
  private first: unknown;
  private every: unknown;
  private readonly timers: PurgeTimers;

  constructor(
    private readonly repos: Repositories,
    private readonly idempotency: IdempotencyKeys,
    private readonly logger: Logger,
    private readonly options: PurgeOptions = {},
  ) {
    this.timers = options.timers ?? (globalThis as unknown as PurgeTimers);
  }

  start(): void {
    const first = this.timers.setTimeout(() => this.run(), this.options.firstMs ?? 60_000);
    const every = this.timers.setInterval(() => this.run(), this.options.everyMs ?? 3_600_000);
    first.unref?.();
    every.unref?.();
    this.first = first;
    this.every = every;
  }

  stop(): void {
    this.timers.clearTimeout(this.first);
    this.timers.clearInterval(this.every);
  }

  /** One pass (what the timers run). */
  run(): void {
    this.idempotency.purge().catch((err: unknown) => this.logger.warn({ err }, "idempotency key purge failed"));
    this.repos.purgeExpired(Date.now(), REFRESH_TOKEN_TTL_MS).then(
      (n) => (n.tokens + n.families > 0 ? this.logger.info(n, "purged expired refresh tokens") : undefined),
      (err: unknown) => this.logger.warn({ err }, "refresh token purge failed"),
    );
  }
}
