/** Reconnect delays: capped exponential backoff with random jitter (equal jitter: half fixed, half random). */
export class Backoff {
  private attempt = 0;

  constructor(
    readonly initialMs = 500,
    readonly maxMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {
    if (!(initialMs > 0)) throw new RangeError('"initialMs" must be a positive number');
    if (!(maxMs >= initialMs)) throw new RangeError('"maxMs" must be at least "initialMs"');
  }

  /** The next delay in ms; grows ×2 per attempt up to `maxMs`, each value in [d/2, d]. */
  next(): number {
    const d = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(d / 2 + this.random() * (d / 2));
  }

  reset(): void {
    this.attempt = 0;
  }
}
