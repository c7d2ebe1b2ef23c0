/**
 * Forces one interleaving of two requests, deterministically: the next time `obj[method]` is called (with
 * arguments `when` accepts), `between` runs to its end first, then the call itself goes on. Used to land a
 * deletion or a change exactly between a service's check and its write, the order load makes possible.
 * `restore()` (in a finally) puts the method back if it was never called.
 */
export function runBefore<O extends object, K extends keyof O, R>(
  obj: O, method: K, between: () => Promise<R>, when: (...args: any[]) => boolean = () => true,
): { ran: () => R; restore: () => void } {
  return interleave(obj, method, between, when, "before");
}

/**
 * The other half: the next time `obj[method]` is called (with arguments `when` accepts), the call runs, then
 * `between` runs to its end before the caller sees the call's result.
 */
export function runAfter<O extends object, K extends keyof O, R>(
  obj: O, method: K, between: () => Promise<R>, when: (...args: any[]) => boolean = () => true,
): { ran: () => R; restore: () => void } {
  return interleave(obj, method, between, when, "after");
}

function interleave<O extends object, K extends keyof O, R>(
  obj: O, method: K, between: () => Promise<R>, when: (...args: any[]) => boolean, at: "before" | "after",
): { ran: () => R; restore: () => void } {
  const original = obj[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  let result: { value: R } | undefined;
  const wrapped = async function (this: unknown, ...args: unknown[]) {
    if (!when(...args)) return original.apply(this, args);
    (obj as Record<K, unknown>)[method] = original;
    if (at === "before") {
      result = { value: await between() };
      return original.apply(this, args);
    }
    const out = await original.apply(this, args);
    result = { value: await between() };
    return out;
  };
  (obj as Record<K, unknown>)[method] = wrapped;
  return {
    ran: () => {
      if (!result) throw new Error(`${String(method)} was not called: the interleaving did not happen`);
      return result.value;
    },
    restore: () => {
      if (obj[method] === (wrapped as unknown)) (obj as Record<K, unknown>)[method] = original;
    },
  };
}

/**
 * Holds every call of `held[method]` (with arguments `when` accepts) until `entry[entryMethod]` was entered `n`
 * times: `n` parallel requests have all started before any of them goes past that call (the order load can
 * give). A service that runs them one at a time still gets past: the entries come before its queue.
 */
export function holdUntilEntered<E extends object, EK extends keyof E, H extends object, HK extends keyof H>(
  entry: E, entryMethod: EK, n: number, held: H, method: HK, when: (...args: any[]) => boolean = () => true,
): { entered: () => number; restore: () => void } {
  const enter = entry[entryMethod] as unknown as (...args: unknown[]) => unknown;
  const hold = held[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  let count = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  (entry as Record<EK, unknown>)[entryMethod] = function (this: unknown, ...args: unknown[]) {
    if (++count === n) open();
    return enter.apply(this, args);
  };
  (held as Record<HK, unknown>)[method] = async function (this: unknown, ...args: unknown[]) {
    if (when(...args)) await gate;
    return hold.apply(this, args);
  };
  return {
    entered: () => count,
    restore: () => {
      (entry as Record<EK, unknown>)[entryMethod] = enter;
      (held as Record<HK, unknown>)[method] = hold;
    },
  };
}
