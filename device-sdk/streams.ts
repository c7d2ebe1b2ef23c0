import type { DeviceTimers } from "./timers.js";

/** The streams a server asked for: one sampling interval per resource. */
export interface Sampler {
  /** Samples `name` now and then every `intervalMs` (at least 50 ms), replacing its earlier interval; 0 only stops it. */
  start(name: string, intervalMs: number): void;
  stop(name: string): void;
  /** Stops every stream (the session is gone: the server asks again on the next one). */
  clear(): void;
}

/**
 * Stream sampling on `timers`: each tick calls `push(name)` (which reads the value and sends it); a rejection
 * goes to `fail`. A tick that finds the previous sample still running is skipped.
 */
export function sampler(timers: DeviceTimers, push: (name: string) => Promise<void>, fail: (err: Error) => void): Sampler {
  const intervals = new Map<string, unknown>();
  /** Resources whose sample is still being computed. */
  const busy = new Set<string>();
  const stop = (name: string) => {
    timers.clearInterval(intervals.get(name));
    intervals.delete(name);
  };
  return {
    start(name, intervalMs) {
      stop(name);
      if (!intervalMs) return;
      const sample = () => {
        // A slow or hung handler: skip ticks instead of piling up calls.
        if (busy.has(name)) return;
        busy.add(name);
        void push(name)
          .catch(fail)
          .finally(() => busy.delete(name));
      };
      intervals.set(name, timers.setInterval(sample, Math.max(50, intervalMs)));
      sample();
    },
    stop,
    clear() {
      for (const name of intervals.keys()) stop(name);
    },
  };
}
