/**
 * Answers of a load a test runs across an outage or a restart, in order. The test awaits the answer that marks
 * a phase (the first 200 after a restart, N more requests through an outage) instead of polling or sleeping.
 */
export class LoadLog<A> {
  readonly answers: A[] = [];
  private readonly waiters = new Set<() => void>();

  add(a: A): void {
    this.answers.push(a);
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first answer from index `from` on (default: answers from now) that matches `pred`. */
  next(pred: (a: A) => boolean, from = this.answers.length, timeoutMs = 30_000, what = "an answer"): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.answers.length; i++) {
          if (!pred(this.answers[i]!)) continue;
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(this.answers[i]!);
          return;
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves once `n` more answers (any) have arrived. */
  more(n: number, timeoutMs = 30_000, what = `${n} more answers`): Promise<A> {
    return this.next(() => true, this.answers.length + n - 1, timeoutMs, what);
  }
}
