/**
 * A caller's way to cancel one pending device call (issue 13.7: an HTTP client that disconnects frees its
 * call's in-flight slot at once, and the device's late answer is dropped).
 *
 * It does for a call what an AbortSignal would, for the single listener a call needs, as a plain object: on this
 * 2-core machine creating an AbortSignal and adding and removing one listener cost about 4.5 µs per call, which
 * the relay's hot path (issue 15) cannot spare; this costs a field write.
 */
export class CallCancel {
  private listener: ((reason: Error) => void) | undefined = undefined;
  /** Why the call was cancelled; undefined while it was not. */
  reason: Error | undefined = undefined;

  get cancelled(): boolean {
    return this.reason !== undefined;
  }

  /** Set by the pending call (one at a time): runs once if the caller cancels before {@link off}. */
  on(listener: (reason: Error) => void): void {
    this.listener = listener;
  }

  /** Called by the call when it settles. */
  off(): void {
    this.listener = undefined;
  }

  /** Cancels the call (idempotent). */
  cancel(reason: Error = new Error("the caller went away")): void {
    if (this.reason !== undefined) return;
    this.reason = reason;
    const l = this.listener;
    this.listener = undefined;
    l?.(reason);
  }
}
