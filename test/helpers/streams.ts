import type { StreamService } from "../../server/streams/service.js";

/**
 * Resolves once at most `count` streams are open on the server, checked on each of the StreamService's
 * `closed` events (a client's abort reaches the server a moment after the client let go). Resolves after the
 * closing stream's own listeners (slot, topic, hub listeners) have run.
 */
export function streamsClosedTo(streams: StreamService, count = 0, timeoutMs = 10_000): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      if (streams.openCount > count) return;
      clearTimeout(timer);
      streams.off("closed", check);
      // A microtask later: the closing stream's remaining close listeners have run by then.
      queueMicrotask(resolve);
    };
    const timer = setTimeout(() => {
      streams.off("closed", check);
      reject(new Error(`still ${streams.openCount} open streams, expected at most ${count}`));
    }, timeoutMs);
    streams.on("closed", check);
    check();
  });
}
