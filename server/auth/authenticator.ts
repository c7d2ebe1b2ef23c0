import { InvalidTokenError, type TokenSigner } from "./jwt.js";
import { DeviceTokenPrincipal, type Principal, SessionPrincipal, UserTokenPrincipal } from "./principal.js";
import type { Repositories } from "../store/repos.js";
import { AppError } from "../errors.js";

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

  constructor(private readonly ttlMs = 60_000, private readonly maxEntries = 200_000) {}

  async get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.entries.get(key);
    const now = Date.now();
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

/** Turns a bearer token into a {@link Principal}, checking signature, expiry and revocation state. */
export class Authenticator {
  constructor(
    private readonly signer: TokenSigner,
    private readonly repos: Repositories,
    readonly cache: RevocationCache,
  ) {}

  async authenticate(token: string, now = Date.now()): Promise<Principal> {
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
