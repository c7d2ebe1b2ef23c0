import { createHash, randomBytes, randomUUID } from "node:crypto";
import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Repositories, UserDoc } from "../store/repos.js";
import { ACCESS_TOKEN_TTL_S, type TokenSigner } from "../auth/jwt.js";
import type { PasswordHasher } from "../auth/passwords.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";
import { type Clock, systemClock, WindowLimiter } from "../auth/limiter.js";
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

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

const invalidCredentials = () => new AppError("invalid_grant", "invalid username or password");
const invalidRefresh = () => new AppError("invalid_grant", "invalid refresh token");

/** The password and refresh-token grants, brute-force protection, refresh-family rotation. */
export class OAuthService {
  private readonly acctClient: WindowLimiter;
  private readonly client: WindowLimiter;
  private readonly account: WindowLimiter;
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
    limits: BruteForceLimits = DEFAULT_BRUTE_FORCE,
    private readonly clock: Clock = systemClock,
  ) {
    this.acctClient = new WindowLimiter(limits.perAccountAndClient, limits.windowMs, clock);
    this.client = new WindowLimiter(limits.perClient, limits.windowMs, clock);
    this.account = new WindowLimiter(limits.perAccount, limits.windowMs, clock);
  }

  async passwordGrant(username: string, password: string, ip: string): Promise<TokenResponse> {
    const known = this.knownClients.get(username)?.has(ip) ?? false;
    // Count the attempt *before* the slow hash check, as a reservation: checking first and counting after
    // the hash would let N parallel guesses all pass the check. Refused and successful attempts give their
    // reservation back, so only real failures count.
    const reserved: Array<[WindowLimiter, string]> = [[this.acctClient, `${username}|${ip}`], [this.client, ip]];
    if (!known) reserved.push([this.account, username]);
    const results = reserved.map(([limiter, key]) => limiter.hit(key));
    const blocked = results.find((r) => !r.allowed);
    if (blocked) {
      for (const [limiter, key] of reserved) limiter.release(key);
      this.logger.warn({ event: "login_throttled", user: username, ip }, "password grant throttled");
      throw new AppError("too_many_requests", "too many failed attempts; try again later", { headers: { "Retry-After": String(Math.max(...results.map((r) => r.retryAfterS))) } });
    }
    // Scrypt at the OWASP floor costs ~0.3 s and 128 MiB: bound the checks running and waiting at once, so a
    // flood of sign-ins (valid or not) cannot queue unbounded work and memory.
    if (this.hashQueue >= MAX_QUEUED_HASHES) {
      for (const [limiter, key] of reserved) limiter.release(key);
      throw new AppError("too_many_requests", "too many sign-ins in progress; try again shortly", { headers: { "Retry-After": "1" } });
    }
    let user: UserDoc | null;
    let ok: boolean;
    this.hashQueue++;
    try {
      user = NAME_RE.test(username) ? await this.repos.users.findOne({ _id: username }) : null;
      // Unknown users cost the same scrypt work as a wrong password: identical answer, similar timing.
      ok = user ? await this.passwords.verify(password, user.passwordHash) : await this.passwords.verifyDummy(password);
    } catch (err) {
      // The store failed, not the caller: that attempt proved nothing.
      for (const [limiter, key] of reserved) limiter.release(key);
      throw err;
    } finally {
      this.hashQueue--;
    }
    if (!user || !ok) {
      this.logger.info({ event: "login_failed", user: username, ip }, "password grant failed");
      throw invalidCredentials();
    }
    for (const [limiter, key] of reserved) limiter.release(key);
    this.acctClient.reset(`${username}|${ip}`);
    this.rememberClient(username, ip);
    if (this.passwords.needsRehash(user.passwordHash)) await this.rehash(user, password);
    const family = randomUUID();
    await this.repos.families.insertOne({ _id: family, user: user.username, createdAt: this.clock.now(), revoked: false, revokedReason: null });
    return this.issue(user.username, family);
  }

  async refreshGrant(refreshToken: string): Promise<TokenResponse> {
    if (refreshToken.length === 0 || refreshToken.length > 256) throw invalidRefresh();
    const hash = hashToken(refreshToken);
    const now = this.clock.now();
    const doc = await this.repos.consumeRefreshToken(hash, now);
    if (!doc) {
      const used = await this.repos.refreshTokens.findOne({ _id: hash });
      if (used?.used) {
        // Reuse of a rotated token: someone holds a copy. Kill the whole family (RFC 9700 §4.14.2).
        await this.revokeFamily(used.family, "refresh token reuse");
        this.logger.warn({ event: "refresh_reuse", user: used.user, family: used.family }, "rotated refresh token reused; family revoked");
      }
      throw invalidRefresh();
    }
    if (doc.expiresAt <= now) throw invalidRefresh();
    const fam = await this.repos.families.findOne({ _id: doc.family });
    if (!fam || fam.revoked) throw invalidRefresh();
    return this.issue(doc.user, doc.family);
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
    await this.repos.users.updateOne({ _id: user._id }, { $set: { passwordHash } });
    this.cache.invalidate(cacheKey.user(user.username));
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
