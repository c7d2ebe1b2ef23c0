/**
 * Forces one interleaving of two requests, deterministically: the next time `obj[method]` is called (with
 * arguments `when` accepts), `between` runs to its end first, then the call itself goes on. Used to land a
 * deletion or a change exactly between a service's check and its write, the order load makes possible.
 * `restore()` (in a finally) puts the method back if it was never called.
 */
export function runBefore<O extends object, K extends keyof O, R>(
  obj: O, method: K, between: () => Promise<R>, when: (...args: any[]) => boolean = () => true,
): { ran: () => R; restore: () => void } {
  const original = obj[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  let result: { value: R } | undefined;
  const wrapped = async function (this: unknown, ...args: unknown[]) {
    if (!when(...args)) return original.apply(this, args);
    (obj as Record<K, unknown>)[method] = original;
    result = { value: await between() };
    return original.apply(this, args);
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
 * The other half: the next time `obj[method]` is called (with arguments `when` accepts), the call runs, then
 * `between` runs to its end before the caller sees the call's result.
 */
export function runAfter<O extends object, K extends keyof O, R>(
  obj: O, method: K, between: () => Promise<R>, when: (...args: any[]) => boolean = () => true,
): { ran: () => R; restore: () => void } {
  const original = obj[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  let result: { value: R } | undefined;
  const wrapped = async function (this: unknown, ...args: unknown[]) {
    if (!when(...args)) return original.apply(this, args);
    (obj as Record<K, unknown>)[method] = original;
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
