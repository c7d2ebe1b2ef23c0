/**
 * Runs tasks one at a time per key on this process (the next starts when the previous settled, whatever its
 * outcome); keys without a task waiting are forgotten. For a count-then-insert under a limit: parallel requests
 * of one key cannot all pass the count together. Across cluster nodes a limit may still be passed by one
 * creation per node at the same instant (the account quotas, server/auth/quotas.ts, run on it too).
 */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const result = prev.then(fn);
    const tail = result.then(() => undefined, () => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
