import type { StreamService } from "../../server/streams/service.js";
import { streamsOpen } from "./wait.js";

/**
 * Resolves once at most `count` streams are open on the server, checked on each of the StreamService's
 * `closed` events (a client's abort reaches the server a moment after the client let go). Resolves after the
 * closing stream's own listeners (slot, topic, hub listeners) have run.
 */
export async function streamsClosedTo(streams: StreamService, count = 0, timeoutMs = 10_000): Promise<void> {
  await streamsOpen(streams, (n) => n <= count, timeoutMs, `at most ${count} open streams`);
  // A microtask later: the closing stream's remaining close listeners have run by then.
  await new Promise<void>((resolve) => queueMicrotask(resolve));
}
