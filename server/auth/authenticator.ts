import { InvalidTokenError, type TokenSigner } from "./jwt.js";
import { DeviceTokenPrincipal, type Principal, SessionPrincipal, UserTokenPrincipal } from "./principal.js";
import type { Repositories } from "../store/repos.js";
import { AppError } from "../errors.js";
import { type Clock, systemClock } from "./limiter.js";

/** Longest token accepted; anything longer is refused before parsing. */
export const MAX_TOKEN_LENGTH = 4096;

interface CacheEntry<T> {
  value: T;
  at: number;
}

/**
 * Read-through cache of revocation state (refresh families, device tokens, user tokens, users). Every write
 * in this process invalidates the entry at once, so revocation takes effect on the next request; in cluster
 * mode the other nodes are told over NATS (see `onInvalidate`). `ttlMs` bounds staleness if a message is lost.
 */
export class RevocationCache {
  private readonly entries = new Map<string, CacheEntry<unknown>>();
  private readonly listeners = new Set<(key: string) => void>();
  /** Bumped by every invalidation; a load that overlapped one is returned but not cached. */
  private generation = 0;

  /** `clock`: the app's timers, the Authenticator's (its cached principals never outlive these entries). */
  constructor(readonly ttlMs = 60_000, private readonly maxEntries = 200_000, private readonly clock: Clock = systemClock) {}

  /** Changes with every invalidation: anything derived from entries read under another version is stale. */
  get version(): number {
    return this.generation;
  }

  /** When the entry of `key` was loaded from the store (undefined when not cached). */
  loadedAt(key: string): number | undefined {
    return this.entries.get(key)?.at;
  }

  async get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    const now = this.clock.now();
    if (hit && now - hit.at < this.ttlMs) return hit.value as T;
    const generation = this.generation;
    const value = await load();
    // An invalidation while the load was in flight may mean the value read is already stale: don't keep it.
    if (generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, { value, at: now });
    }
    return value;
  }

  /** Drops a key here and tells listeners (revocation streams, cluster broadcast). */
  invalidate(key: string): void {
    this.generation++;
    this.entries.delete(key);
    for (const l of this.listeners) l(key);
  }

  /** Drops a key because another node said so (does not re-broadcast). */
  invalidateLocal(key: string): void {
    this.generation++;
    this.entries.delete(key);
    for (const l of this.listeners) l(key);
  }

  onInvalidate(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export const cacheKey = {
  family: (fam: string) => `fam:${fam}`,
  deviceToken: (jti: string) => `dtk:${jti}`,
  userToken: (jti: string) => `utk:${jti}`,
  user: (name: string) => `usr:${name}`,
};

/** Principals remembered at most (the map is cleared when full). */
const PRINCIPAL_CACHE_SIZE = 10_000;

interface KnownPrincipal {
  principal: Principal;
  /** {@link RevocationCache.version} it was built under: any invalidation since drops it. */
  version: number;
  /** Oldest load time of the revocation entries it was built from: it lives no longer than they would. */
  at: number;
  /** The earliest expiry (token claim or stored document), ms; null: none. */
  expMs: number | null;
}

/** Turns a bearer token into a {@link Principal}, checking signature, expiry and revocation state. */
export class Authenticator {
  /**
   * The principal each recently seen token resolved to. Every call still checks expiry against `now`; any
   * revocation-cache invalidation (a revoke, an edit, a deletion, here or from another node) drops them all,
   * and none outlives the revocation entries it came from, so revocation takes effect exactly as without it.
   * A hit skips the claim checks, two cache look-ups and an allocation on every relay call.
   */
  private readonly principals = new Map<string, KnownPrincipal>();

  constructor(
    private readonly signer: TokenSigner,
    private readonly repos: Repositories,
    readonly cache: RevocationCache,
    /** The clock tokens' expiry is checked on: the app's timers, the one its tokens are issued on (issue 13.6). */
    readonly clock: Clock = systemClock,
  ) {}

  async authenticate(token: string, now = this.clock.now()): Promise<Principal> {
    const hit = this.known(token, now);
    if (hit !== undefined) return hit;
    const version = this.cache.version;
    const principal = await this.resolve(token, now);
    if (version === this.cache.version) this.remember(token, principal, version, now);
    return principal;
  }

  /**
   * The principal of a token {@link authenticate} accepted recently, when it still holds (same checks as there:
   * no invalidation since, revocation entries still fresh, not expired); undefined otherwise — then
   * `authenticate` decides. Synchronous: the relay's fast path pays no promise for a known token.
   */
  known(token: string, now = this.clock.now()): Principal | undefined {
    const hit = this.principals.get(token);
    if (hit !== undefined && hit.version === this.cache.version && now - hit.at < this.cache.ttlMs && now >= hit.at
      && (hit.expMs === null || hit.expMs > now)) {
      return hit.principal;
    }
    return undefined;
  }

  private remember(token: string, principal: Principal, version: number, now: number): void {
    const claims = this.signer.peekVerified(token);
    if (!claims) return;
    const keys = [cacheKey.user(principal.user)];
    if (principal instanceof SessionPrincipal) keys.push(cacheKey.family(principal.tokenRef));
    else if (principal instanceof DeviceTokenPrincipal) keys.push(cacheKey.deviceToken(principal.tokenRef));
    else keys.push(cacheKey.userToken(principal.tokenRef));
    let at = now;
    for (const k of keys) {
      const t = this.cache.loadedAt(k);
      if (t === undefined) return;
      at = Math.min(at, t);
    }
    const exps = [claims.exp, principal.expiresAt === null ? undefined : principal.expiresAt / 1000].filter((e): e is number => typeof e === "number");
    if (this.principals.size >= PRINCIPAL_CACHE_SIZE) this.principals.clear();
    this.principals.set(token, { principal, version, at, expMs: exps.length > 0 ? Math.min(...exps) * 1000 : null });
  }

  private async resolve(token: string, now: number): Promise<Principal> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw invalid("malformed");
    let claims;
    try {
      claims = await this.signer.verify(token, now);
    } catch (err) {
      // jose checks the signature before the time claims: "expired" is only said of a token we signed.
      if (err instanceof InvalidTokenError) throw invalid(err.message === "ERR_JWT_EXPIRED" ? "expired" : "malformed", err);
      throw err;
    }
    const user = await this.cache.get(cacheKey.user(claims.usr), () => this.repos.users.findOne({ _id: claims.usr }));
    if (!user) throw invalid("revoked");
    // A disabled account (PUT /v1/users/{user} {"enabled": false}) is refused with every token of it.
    if (user.enabled === false) throw invalid("disabled");
    switch (claims.kind) {
      case "access": {
        const fam = await this.cache.get(cacheKey.family(claims.fam), () => this.repos.families.findOne({ _id: claims.fam }));
        if (!fam || fam.revoked || fam.user !== claims.usr) throw invalid("revoked");
        return new SessionPrincipal(claims.usr, user.admin, claims.fam, claims.exp * 1000);
      }
      case "device": {
        const doc = await this.cache.get(cacheKey.deviceToken(claims.jti), () => this.repos.deviceTokens.findOne({ _id: claims.jti }));
        if (!doc || doc.user !== claims.usr || doc.device !== claims.dev) throw invalid("revoked");
        return new DeviceTokenPrincipal(claims.usr, claims.dev, claims.res ?? null, claims.jti, claims.exp ? claims.exp * 1000 : null);
      }
      case "user": {
        const doc = await this.cache.get(cacheKey.userToken(claims.jti), () => this.repos.userTokens.findOne({ _id: claims.jti }));
        if (!doc || doc.user !== claims.usr) throw invalid("revoked");
        if (!doc.enabled) throw invalid("disabled");
        // Expiry lives in the document: editing it takes effect on the next request.
        if (doc.exp !== null && doc.exp * 1000 <= now) throw invalid("expired");
        return new UserTokenPrincipal(claims.usr, doc.allow, doc.deny, claims.jti, doc.exp !== null ? doc.exp * 1000 : null);
      }
    }
  }

  /** Re-checks a principal's token (streams call this on each heartbeat). */
  async stillValid(token: string): Promise<boolean> {
    try {
      await this.authenticate(token);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Why a token was refused, as the 401 message says it (issue 12): a client can tell "sign in again" (expired,
 * revoked) from "fix the request" (malformed) without learning anything else (which check failed inside, whose
 * account, which family). A deleted account's tokens read as revoked.
 */
export const TOKEN_REFUSALS = {
  malformed: "malformed or invalid token",
  expired: "token expired",
  revoked: "token revoked",
  disabled: "token disabled",
} as const;

function invalid(why: keyof typeof TOKEN_REFUSALS, cause?: unknown): AppError {
  return new AppError("unauthorized", TOKEN_REFUSALS[why], {
    cause,
    headers: { "WWW-Authenticate": 'Bearer realm="thingrelay", error="invalid_token"' },
  });
}
