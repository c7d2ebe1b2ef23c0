export function once<T = unknown>(emitter: { once(event: string, l: (...a: any[]) => void): unknown }, event: string, timeoutMs = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for "${event}"`)), timeoutMs);
    emitter.once(event, (v: T) => {
      clearTimeout(t);
      resolve(v);
    });
  });
}

/** Anything with typed-enough `on`/`off` (Node's EventEmitter, the SDK device, ws). */
export interface Listenable {
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * Resolves with the arguments of the first `event` for which `predicate` holds; rejects after `timeoutMs`
 * naming `what`. Subscribe before doing what causes the event (the call is synchronous up to the listener).
 */
export function onceWhere<A extends unknown[] = any[]>(emitter: Listenable, event: string, predicate: (...args: A) => boolean = () => true, timeoutMs = 5000, what = `"${event}"`): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    const listener = (...args: unknown[]) => {
      let hit: boolean;
      try {
        hit = predicate(...(args as A));
      } catch (err) {
        hit = false;
        done();
        reject(err as Error);
        return;
      }
      if (!hit) return;
      done();
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      emitter.off(event, listener);
    };
    emitter.on(event, listener);
  });
}

/**
 * Resolves once `state` holds: at once if it already does, else after the first of `events` following which it
 * does (state with an event that signals each change, e.g. a count going down on every `closed`).
 */
export function whenState(emitter: Listenable, events: string | string[], state: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  if (state()) return Promise.resolve();
  const names = typeof events === "string" ? [events] : events;
  return new Promise<void>((resolve, reject) => {
    const listener = () => {
      if (!state()) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      for (const e of names) emitter.off(e, listener);
    };
    for (const e of names) emitter.on(e, listener);
  });
}

/** Resolves when the server's open stream count satisfies `count` (checked on every stream opened or closed). */
export function streamsOpen(streams: Listenable & { readonly openCount: number }, count: number | ((open: number) => boolean), timeoutMs = 5000, what?: string): Promise<void> {
  const holds = typeof count === "number" ? (n: number) => n === count : count;
  return whenState(streams, ["opened", "closed"], () => holds(streams.openCount), timeoutMs, what ?? (typeof count === "number" ? `${count} open streams` : "the open stream count"));
}

/** Resolves when the hub holds no session for `user/device` (checked on every `offline`). */
export function sessionGone(hub: Listenable & { get(user: string, device: string): unknown }, user: string, device: string, timeoutMs = 5000): Promise<void> {
  return whenState(hub, "offline", () => hub.get(user, device) === undefined, timeoutMs, `the session of ${user}/${device} to end`);
}

/** Resolves when the hub holds no session at all (checked on every `offline`). */
export function noSessions(hub: Listenable & { readonly size: number }, timeoutMs = 5000): Promise<void> {
  return whenState(hub, "offline", () => hub.size === 0, timeoutMs, "every session to end");
}

/** A Playwright text filter (`hasText`/`hasNotText`) matching exactly `text`, not as a substring. */
export function exactly(text: string): RegExp {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}
