import type { Logger } from "./log.js";
import type { Repositories } from "./store/repos.js";
import type { IdempotencyKeys } from "./calls/idempotency.js";
import { REFRESH_TOKEN_TTL_MS } from "./oauth/service.js";
import { systemTimers, type TimerHandle, type Timers } from "./timers.js";

export interface PurgeOptions {
  /** Delay of the first purge after start (default 60 s). */
  firstMs?: number;
  /** Interval of the following ones (default 1 h). */
  everyMs?: number;
  /**
   * The app's timers (default the system's; tests pass a fake clock to run a purge without waiting, issue 13.6).
   * Their `now()` also dates the refresh tokens' expiry, which the sign-in service stamps on the same clock.
   */
  timers?: Timers | undefined;
}

/**
 * Expired refresh tokens, dead token families and expired idempotency keys are purged hourly (and once shortly
 * after start). Failures are logged and retried on the next pass. The timers never hold the process open.
 */
export class PurgeSchedule {
  private first: TimerHandle | undefined;
  private every: TimerHandle | undefined;
  private readonly timers: Timers;

  constructor(
    private readonly repos: Repositories,
    private readonly idempotency: IdempotencyKeys,
    private readonly logger: Logger,
    private readonly options: PurgeOptions = {},
  ) {
    this.timers = options.timers ?? systemTimers;
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
    this.first = undefined;
    this.every = undefined;
  }

  /** One pass (what the timers run). */
  run(): void {
    this.idempotency.purge().catch((err: unknown) => this.logger.warn({ err }, "idempotency key purge failed"));
    this.repos.purgeExpired(this.timers.now(), REFRESH_TOKEN_TTL_MS).then(
      (n) => (n.tokens + n.families > 0 ? this.logger.info(n, "purged expired refresh tokens") : undefined),
      (err: unknown) => this.logger.warn({ err }, "refresh token purge failed"),
    );
  }
}
