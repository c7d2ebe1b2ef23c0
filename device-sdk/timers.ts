/**
 * The clock behind every SDK timer: the connect timeout, the reconnect delay, the keepalive check, stream
 * sampling, the property-request timeout and the wait for a closing handshake. Pass your own as the
 * `timers` option (a test's fake clock, a runtime's timer module); the default is the global functions.
 * `now` is in ms (like `Date.now`); handles are opaque: whatever `setTimeout`/`setInterval` return is only
 * ever passed back to `clearTimeout`/`clearInterval`, which must ignore a handle already run or cleared, and
 * `undefined`. `test/helpers/fake-clock.ts` in the repository is one.
 */
export interface DeviceTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

// Wrapped, not referenced: browsers throw "Illegal invocation" when their timer functions are called as
// methods of another object.
export const globalTimers: DeviceTimers = {
  now: Date.now,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h: any) => clearTimeout(h),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h: any) => clearInterval(h),
};
