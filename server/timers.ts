/**
 * Timers the server's long-lived schedules read (keepalive sweep, SSE heartbeat, purge), injectable so tests
 * advance a fake clock instead of sleeping. `systemTimers` is the real one; `test/helpers/fake-clock.ts` the fake.
 */
export interface TimerHandle {
  unref?(): unknown;
}

export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle | undefined): void;
}

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout> | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as ReturnType<typeof setInterval> | undefined),
};
