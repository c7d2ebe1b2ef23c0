import { isAppError } from "../errors.js";
import type { Logger } from "../log.js";
import { cacheKey, type Authenticator } from "../auth/authenticator.js";
import type { Principal } from "../auth/principal.js";
import type { StreamEvent } from "./log.js";
import type { StreamKind } from "./options.js";
import type { SseConnection } from "./sse.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

/** Whether the stream's (current) principal may see one event; per-event checks of `*` streams. */
export type Admit = (p: Principal) => boolean;

/** One open SSE response and who opened it. */
export class OpenStream {
  /** Revocation-cache keys whose invalidation makes this stream re-check its token. */
  readonly keys: string[];
  /** The token's permissions as last checked: per-event filters use these. */
  private principal: Principal;
  private expiryTimer: TimerHandle | undefined;
  private checking: Promise<void> | undefined;
  private recheckAgain = false;
  /** Events that arrived while a re-check was in flight, delivered (or not) under its outcome. */
  private held: Array<{ ev: StreamEvent; admit: Admit | undefined }> = [];
  private heldBytes = 0;

  constructor(
    readonly kind: StreamKind,
    readonly user: string,
    readonly conn: SseConnection,
    private readonly token: string,
    principal: Principal,
    /** Whether a (re-authenticated) principal may still read this stream. */
    private readonly allowed: (p: Principal) => boolean,
    private readonly authenticator: Authenticator,
    /** Most bytes held during a re-check before the stream is dropped as if it were a slow reader. */
    private readonly maxHeldBytes: number,
    private readonly logger: Logger,
    /** The expiry timer's clock: the app's timers, the one the Authenticator checks tokens on (issue 13.6). */
    private readonly timers: Timers = systemTimers,
  ) {
    this.principal = principal;
    const ref = principal.kind === "session" ? cacheKey.family(principal.tokenRef)
      : principal.kind === "device_token" ? cacheKey.deviceToken(principal.tokenRef) : cacheKey.userToken(principal.tokenRef);
    this.keys = [ref, cacheKey.user(principal.user)];
    this.armExpiry(principal.expiresAt);
    conn.onClose(() => {
      this.timers.clearTimeout(this.expiryTimer);
      this.held = [];
      this.heldBytes = 0;
    });
  }

  /**
   * Sends one event if the stream's principal admits it. While a re-check is in flight (a token edited or
   * revoked a moment ago) the event waits for its outcome, so it is judged by the permissions in force now.
   */
  deliver(ev: StreamEvent, admit?: Admit): void {
    if (this.conn.isClosed) return;
    if (this.checking) {
      this.heldBytes += ev.bytes;
      if (this.heldBytes > this.maxHeldBytes) {
        this.conn.abort("slow_consumer");
        return;
      }
      this.held.push({ ev, admit });
      return;
    }
    if (admit && !admit(this.principal)) return;
    this.conn.sendText(ev.id, ev.text);
  }

  private flushHeld(): void {
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const h of held) this.deliver(h.ev, h.admit);
  }

  /** Re-authenticates the token (revocation, expiry, changed permissions); ends the stream if it no longer holds. */
  recheck(): Promise<void> {
    if (this.conn.isClosed) return Promise.resolve();
    if (this.checking) {
      // An invalidation while a check is in flight may have raced it: check once more afterwards.
      this.recheckAgain = true;
      return this.checking;
    }
    this.checking = (async () => {
      do {
        this.recheckAgain = false;
        let p: Principal;
        try {
          p = await this.authenticator.authenticate(this.token);
        } catch (err) {
          if (!isAppError(err) || err.status !== 401) {
            // Not a verdict on the token: the store (or something else) failed to answer. The stream keeps its
            // last checked permissions and the next heartbeat or invalidation checks again (issue 13.3: a store
            // outage must not end streams as revoked, which makes clients give up for good).
            this.logger.warn({ err, user: this.user, kind: this.kind }, "stream token re-check failed; the stream stays open");
            return;
          }
          // A re-check (heartbeat, invalidation) that lands just after the expiry is an expiry, not a revocation.
          const exp = this.principal.expiresAt;
          this.conn.end(exp !== null && this.timers.now() >= exp ? "token_expired" : "token_revoked");
          return;
        }
        if (!this.allowed(p)) {
          this.conn.end("forbidden");
          return;
        }
        this.principal = p;
        this.armExpiry(p.expiresAt);
      } while (this.recheckAgain && !this.conn.isClosed);
    })().finally(() => {
      this.checking = undefined;
      // Under the new permissions (or dropped with the stream if it ended).
      this.flushHeld();
    });
    return this.checking;
  }

  private armExpiry(expiresAt: number | null): void {
    this.timers.clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    if (expiresAt === null || this.conn.isClosed) return;
    const left = expiresAt - this.timers.now();
    if (left <= 0) {
      this.conn.end("token_expired");
      return;
    }
    // setTimeout holds at most 2^31-1 ms (~24.8 days); a longer-lived token re-arms on the way.
    this.expiryTimer = this.timers.setTimeout(() => this.armExpiry(expiresAt), Math.min(left, 2 ** 31 - 1));
    this.expiryTimer.unref?.();
  }
}
