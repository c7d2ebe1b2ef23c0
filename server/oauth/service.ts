import { createHash, randomBytes, randomUUID } from "node:crypto";
import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Repositories, UserDoc } from "../store/repos.js";
import { ACCESS_TOKEN_TTL_S, type TokenSigner } from "../auth/jwt.js";
import type { PasswordHasher } from "../auth/passwords.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";
import { type Clock, type LimitResult, systemClock, WindowLimiter } from "../auth/limiter.js";
import { addressKey } from "../auth/address.js";
import { NAME_RE } from "../../device-sdk/protocol.js";

/** Refresh tokens live ~60 days from their issue; each use rotates them. */
export const REFRESH_TOKEN_TTL_MS = 60 * 24 * 3600 * 1000;

export interface TokenResponse {
  access_token: string;
  expires_in: number;
  refresh_token: string;
  scope: null;
  token_type: "bearer";
}

export interface BruteForceLimits {
  /** Failures allowed for one account from one client address per window. */
  perAccountAndClient: number;
  /** Failures allowed from one client address across accounts per window. */
  perClient: number;
  /** Failures allowed for one account across all addresses per window (addresses that logged in before are exempt). */
  perAccount: number;
  windowMs: number;
}

export const DEFAULT_BRUTE_FORCE: Readonly<BruteForceLimits> = Object.freeze({
  perAccountAndClient: 5, perClient: 20, perAccount: 50, windowMs: 15 * 60_000,
});

/** Password checks allowed in flight at once (running or queued for libuv's thread pool). */
export const MAX_QUEUED_HASHES = 64;

/** Rotated refresh tokens a live family keeps for reuse detection (older ones are deleted at rotation). */
export const ROTATED_TOKENS_KEPT = 5;

/** Sign-ins waiting for a check of their address or account to finish before they can be counted. */
export const MAX_WAITING_SIGN_INS = 256;



interface Reservation {
  /** The attempt does not count (it succeeded, or failed for reasons of the server's own). */
  release(): void;
  /** The attempt counts as a failure. */
  keep(): void;
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

const invalidCredentials = () => new AppError("invalid_grant", "invalid username or password");
const invalidRefresh = () => new AppError("invalid_grant", "invalid refresh token");

/** The password and refresh-token grants, brute-force protection, refresh-family rotation. */
export class OAuthService {
  private readonly acctClient: WindowLimiter;
  private readonly client: WindowLimiter;
  /** Checks running per `a:<address>` and `u:<account>`: a limit reached only by these makes later attempts wait. */
  private readonly busy = new Map<string, number>();
  private readonly waiters = new Set<() => void>();
  /** Failures per account name that does not exist (existing accounts are counted in the store). */
  private readonly unknownAccount: WindowLimiter;
  /** One "throttled" log line per address per window. */
  private readonly throttleLog: WindowLimiter;
  /** Addresses that logged in successfully per account (bounded), exempt from the per-account lock. */
  private readonly knownClients = new Map<string, Set<string>>();

  /** Password checks running or waiting for the thread pool. */
  private hashQueue = 0;

  constructor(
    private readonly repos: Repositories,
    private readonly passwords: PasswordHasher,
    private readonly signer: TokenSigner,
    private readonly cache: RevocationCache,
    private readonly logger: Logger,
    private readonly limits: BruteForceLimits = DEFAULT_BRUTE_FORCE,
    private readonly clock: Clock = systemClock,
    /** Live refresh families per user (`THINGRELAY_MAX_SESSIONS_PER_USER`). */
    private readonly maxSessions = 100,
  ) {
    this.acctClient = new WindowLimiter(limits.perAccountAndClient, limits.windowMs, clock);
    this.client = new WindowLimiter(limits.perClient, limits.windowMs, clock);
    this.throttleLog = new WindowLimiter(1, limits.windowMs, clock);
    this.unknownAccount = new WindowLimiter(limits.perAccount, limits.windowMs, clock);
  }

  async passwordGrant(username: string, password: string, ip: string): Promise<TokenResponse> {
    const addr = addressKey(ip);
    // A password typed into the username field must not reach the logs: only valid names are logged.
    const logUser = NAME_RE.test(username) ? username : undefined;
    // Scrypt at the OWASP floor costs ~0.3 s and 128 MiB: bound the checks running and waiting at once, so a
    // flood of sign-ins (valid or not) cannot queue unbounded work and memory.
    if (this.hashQueue >= MAX_QUEUED_HASHES) {
      throw new AppError("too_many_requests", "too many sign-ins in progress; try again shortly", { headers: { "Retry-After": "1" } });
    }
    this.hashQueue++;
    let user: UserDoc | null;
    let ok: boolean;
    let attempt: Reservation;
    try {
      // Only accounts that exist are counted per account (in the store, out of reach of junk names).
      user = logUser !== undefined ? await this.repos.users.findOne({ _id: username }) : null;
      attempt = await this.reserve(username, addr, user, logUser, ip);
      try {
        // Unknown users cost the same scrypt work as a wrong password: identical answer, similar timing.
        ok = user ? await this.passwords.verify(password, user.passwordHash) : await this.passwords.verifyDummy(password);
      } catch (err) {
        // The store or the hash failed, not the caller: that attempt proved nothing.
        attempt.release();
        throw err;
      }
    } finally {
      this.hashQueue--;
    }
    if (!user || !ok) {
      attempt.keep();
      this.logger.info({ event: "login_failed", user: logUser, ip }, "password grant failed");
      throw invalidCredentials();
    }
    attempt.release();
    this.acctClient.reset(`${user.username}|${addr}`);
    this.rememberClient(user.username, addr);
    if (user.enabled === false) {
      this.logger.info({ event: "login_disabled", user: user.username, ip }, "password grant for a disabled account");
      throw new AppError("invalid_grant", "this account is disabled");
    }
    if (this.passwords.needsRehash(user.passwordHash)) await this.rehash(user, password);
    const family = randomUUID();
    await this.repos.families.insertOne({ _id: family, user: user.username, createdAt: this.clock.now(), revoked: false, revokedReason: null });
    // The account as it is now that the family exists: a password change, a disable or a deletion that landed while
    // the password was checked revoked the families it found, and this one was not among them. Every such change
    // writes the account before it revokes, so either it is seen here or it revokes this family too.
    const current = await this.repos.users.findOne({ _id: user.username });
    if (!current || current.createdAt !== user.createdAt || current.passwordChangedAt !== user.passwordChangedAt || current.enabled === false) {
      await this.revokeFamily(family, "account changed during sign-in");
      await this.repos.families.deleteOne({ _id: family });
      this.logger.info({ event: "login_superseded", user: user.username, ip }, "password grant refused: the account changed while it was checked");
      throw current?.enabled === false && current.passwordChangedAt === user.passwordChangedAt
        ? new AppError("invalid_grant", "this account is disabled")
        : invalidCredentials();
    }
    await this.capSessions(user.username, family);
    return this.issue(user.username, family);
  }

  /**
   * Counts a sign-in as a failure before its check (so N parallel guesses cannot all pass the limits), per
   * address, per account and address and, for an address that never signed in to it, per account (in the
   * store). When a limit is reached only because checks of the same address or account are still running,
   * the attempt waits for them (a success gives its count back) instead of failing: sign-ins in progress
   * are not failures. A blocked address adds no keys.
   */
  private async reserve(username: string, addr: string, user: UserDoc | null, logUser: string | undefined, ip: string): Promise<Reservation> {
    const known = user !== null && (this.knownClients.get(user.username)?.has(addr) ?? false);
    const busyKeys = [`a:${addr}`, `u:${username}`];
    for (;;) {
      const taken: Array<() => void> = [];
      let storeRelease: Promise<void> | undefined;
      const giveBack = () => {
        for (const f of taken) f();
      };
      let blocked: LimitResult | undefined;
      const c = this.client.hit(addr);
      taken.push(() => this.client.release(addr));
      if (!c.allowed) blocked = c;
      if (!blocked) {
        const k = `${username}|${addr}`;
        const r = this.acctClient.hit(k);
        taken.push(() => this.acctClient.release(k));
        if (!r.allowed) blocked = r;
      }
      if (!blocked && !known) {
        // Existing accounts are counted in the store (no eviction, every node); names that do not exist in a
        // bounded in-memory limiter, so their answers look the same and evicting them protects nobody.
        if (user) {
          const name = user.username;
          let a: Awaited<ReturnType<OAuthService["accountHit"]>>;
          try {
            a = await this.accountHit(name);
          } catch (err) {
            giveBack(); // the store failed, not the caller
            throw err;
          }
          if (a.start !== undefined) taken.push(() => void (storeRelease = this.accountRelease(name, a.start!)));
          if (!a.allowed) blocked = a;
        } else {
          const r = this.unknownAccount.hit(username);
          taken.push(() => this.unknownAccount.release(username));
          if (!r.allowed) blocked = r;
        }
      }
      if (!blocked) {
        for (const k of busyKeys) this.busy.set(k, (this.busy.get(k) ?? 0) + 1);
        let done = false;
        const finish = (countIt: boolean) => {
          if (done) return;
          done = true;
          if (!countIt) giveBack();
          for (const k of busyKeys) {
            const n = (this.busy.get(k) ?? 1) - 1;
            if (n <= 0) this.busy.delete(k);
            else this.busy.set(k, n);
          }
          const woken = [...this.waiters];
          this.waiters.clear();
          for (const w of woken) w();
        };
        return { release: () => finish(false), keep: () => finish(true) };
      }
      giveBack();
      // The account's count in the store is settled before the refusal answers (another node reads it next).
      await storeRelease;
      if (busyKeys.some((k) => this.busy.has(k)) && this.waiters.size < MAX_WAITING_SIGN_INS) {
        await new Promise<void>((resolve) => this.waiters.add(resolve));
        continue;
      }
      // One line per address per window: a flood of refusals does not flood the log.
      if (this.throttleLog.hit(addr).allowed) {
        this.logger.warn({ event: "login_throttled", user: logUser, ip }, "password grant throttled (further refusals for this address are not logged this window)");
      }
      throw new AppError("too_many_requests", "too many failed attempts; try again later", { headers: { "Retry-After": String(blocked.retryAfterS) } });
    }
  }

  /** One failure counted for an existing account in the store: one window per account, shared by every node. */
  private async accountHit(user: string): Promise<LimitResult & { start?: number }> {
    const now = this.clock.now();
    const { perAccount, windowMs } = this.limits;
    let doc = await this.repos.users.findOneAndUpdate({ _id: user, loginFailStart: { $gt: now - windowMs } }, { $inc: { loginFailCount: 1 } });
    doc ??= await this.repos.users.findOneAndUpdate({ _id: user }, { $set: { loginFailStart: now, loginFailCount: 1 } });
    if (!doc) return { allowed: true, retryAfterS: 0 };
    const start = Number(doc.loginFailStart);
    const allowed = Number(doc.loginFailCount) <= perAccount;
    return { allowed, retryAfterS: allowed ? 0 : Math.max(1, Math.ceil((start + windowMs - now) / 1000)), start };
  }

  private async accountRelease(user: string, start: number): Promise<void> {
    await this.repos.users.updateOne({ _id: user, loginFailStart: start }, { $inc: { loginFailCount: -1 } }).catch(() => 0);
  }

  /**
   * Keeps at most `maxSessions` live refresh families per user: the oldest beyond it are revoked. A sign-in revokes
   * only families older than its own (creation time, then id): parallel sign-ins see each other's new families,
   * and each revoking the oldest but itself made them revoke each other (two at once under a cap of 1 left none).
   */
  private async capSessions(user: string, newest: string): Promise<void> {
    const live = await this.repos.families.find({ user, revoked: false }, { sort: { createdAt: 1 } });
    const excess = live.length - this.maxSessions;
    const mine = live.find((x) => x._id === newest);
    // Already revoked by a newer sign-in, which keeps the count.
    if (excess <= 0 || !mine) return;
    const older = live.filter((x) => x.createdAt < mine.createdAt || (x.createdAt === mine.createdAt && x._id < mine._id))
      .sort((x, y) => x.createdAt - y.createdAt || (x._id < y._id ? -1 : 1));
    for (const f of older.slice(0, excess)) {
      await this.revokeFamily(f._id, "session limit");
      // A missing family is as revoked as a revoked one: do not keep a record per sign-in beyond the cap.
      await this.repos.families.deleteOne({ _id: f._id });
    }
  }

  async refreshGrant(refreshToken: string): Promise<TokenResponse> {
    if (refreshToken.length === 0 || refreshToken.length > 256) throw invalidRefresh();
    const hash = hashToken(refreshToken);
    const now = this.clock.now();
    const found = await this.repos.refreshTokens.findOne({ _id: hash });
    if (found && !found.used) {
      // Expiry, family and owner are checked before the token is claimed. A concurrent replay of the same token can
      // revoke the family only after the claim (it sees the token used); checked after the claim, that revocation
      // would also take the winner's answer, and ten parallel refreshes could all answer 401.
      if (found.expiresAt <= now) throw invalidRefresh();
      const fam = await this.repos.families.findOne({ _id: found.family });
      if (!fam || fam.revoked) throw invalidRefresh();
      const owner = await this.repos.users.findOne({ _id: found.user });
      if (!owner || owner.enabled === false) throw invalidRefresh();
    }
    const doc = found && !found.used ? await this.repos.consumeRefreshToken(hash, now) : null;
    if (!doc) {
      // Unknown, or used already; else lost the claim to a parallel refresh (read again: now used).
      const used = found && !found.used ? await this.repos.refreshTokens.findOne({ _id: hash }) : found;
      if (used?.used) {
        // Reuse of a rotated token: someone holds a copy. Kill the whole family (RFC 9700 §4.14.2).
        await this.revokeFamily(used.family, "refresh token reuse");
        this.logger.warn({ event: "refresh_reuse", user: used.user, family: used.family }, "rotated refresh token reused; family revoked");
      }
      throw invalidRefresh();
    }
    // A revocation that lands between the checks above and the claim (sign-out, password change) still wins: the
    // tokens issued here belong to a revoked family, which every later use checks.
    const issued = await this.issue(doc.user, doc.family);
    await this.pruneRotated(doc.family);
    return issued;
  }

  /** RFC 7009 revocation of a refresh token: revokes its family. Unknown tokens are not an error. */
  async revoke(refreshToken: string): Promise<void> {
    if (refreshToken.length === 0 || refreshToken.length > 256) return;
    const doc = await this.repos.refreshTokens.findOne({ _id: hashToken(refreshToken) });
    if (doc) await this.revokeFamily(doc.family, "revoked");
  }

  async revokeFamily(family: string, reason: string): Promise<void> {
    await this.repos.revokeFamily(family, reason);
    this.cache.invalidate(cacheKey.family(family));
    // A revoked family refuses every token of it: none is needed any more, reuse detection included.
    await this.repos.refreshTokens.deleteMany({ family });
  }

  /**
   * Deletes the rotated tokens of a live family beyond the {@link ROTATED_TOKENS_KEPT} newest: those stay
   * for reuse detection (presenting one revokes the family); an older one only answers invalid_grant.
   */
  private async pruneRotated(family: string): Promise<void> {
    const used = await this.repos.refreshTokens.find({ family, used: true }, { sort: { createdAt: -1 } });
    const old = used.slice(ROTATED_TOKENS_KEPT).map((t) => t._id);
    if (old.length > 0) await this.repos.refreshTokens.deleteMany({ _id: { $in: old } });
  }

  private async issue(user: string, family: string): Promise<TokenResponse> {
    const now = this.clock.now();
    const refresh = randomBytes(32).toString("base64url");
    await this.repos.refreshTokens.insertOne({
      _id: hashToken(refresh), family, user, used: false, createdAt: now, expiresAt: now + REFRESH_TOKEN_TTL_MS,
    });
    const access = await this.signer.signAccess(user, family, Math.floor(now / 1000));
    return { access_token: access, expires_in: ACCESS_TOKEN_TTL_S, refresh_token: refresh, scope: null, token_type: "bearer" };
  }

  private async rehash(user: UserDoc, password: string): Promise<void> {
    const passwordHash = await this.passwords.hash(password);
    // Only over the hash that was checked: a password changed meanwhile must not be put back to the old one.
    const n = await this.repos.users.updateOne({ _id: user._id, passwordHash: user.passwordHash }, { $set: { passwordHash } });
    if (n > 0) this.cache.invalidate(cacheKey.user(user.username));
  }

  private rememberClient(user: string, ip: string): void {
    let set = this.knownClients.get(user);
    if (!set) {
      if (this.knownClients.size >= 100_000) this.knownClients.clear();
      this.knownClients.set(user, (set = new Set()));
    }
    if (set.size >= 32) set.clear();
    set.add(ip);
  }
}
