import type { Context, Next } from "koa";
import { AppError } from "../errors.js";

/** Longest a request waits for start-up (admin bootstrap) before it answers 503. */
export const STARTUP_WAIT_MS = 30_000;

/**
 * Holds requests that arrive while start-up work is still running (issue 12): main.ts listens first (a server
 * that cannot bind must not create an administrator), so the port answers before the admin account exists.
 * A request in that window waits for start-up to finish and is then answered as it would be afterwards, instead
 * of a wrong 401 "invalid username or password". The wait is bounded: past `waitMs`, or if start-up failed,
 * it answers 503 `service_unavailable` with `Retry-After`. Once start-up is done the check costs one boolean.
 */
export function startupGate(startup: Promise<unknown>, waitMs = STARTUP_WAIT_MS) {
  let done = false;
  let failed = false;
  const settled = startup.then(() => { done = true; }, () => { done = true; failed = true; });
  return function waitForStartup(ctx: Context, next: Next): Promise<void> {
    // Once start-up has succeeded, no await (and no promise of its own) on every request.
    if (done && !failed) return next();
    return waitThenNext(ctx, next);
  };
  async function waitThenNext(_ctx: Context, next: Next): Promise<void> {
    if (!done) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => { timer = setTimeout(resolve, waitMs); });
      await Promise.race([settled, timedOut]);
      clearTimeout(timer);
    }
    if (!done || failed) throw new AppError("service_unavailable", "server is starting", { headers: { "Retry-After": "1" } });
    await next();
  }
}
