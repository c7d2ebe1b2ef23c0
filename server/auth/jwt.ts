import { SignJWT, jwtVerify, errors as joseErrors, type JWTPayload } from "jose";
import { NAME_RE } from "../../device-sdk/protocol.js";

/** Access tokens from the password / refresh grants live 2 h (Thinger's `expires_in: 7200`). */
export const ACCESS_TOKEN_TTL_S = 7200;

export interface AccessClaims { kind: "access"; usr: string; fam: string; iat: number; exp: number }
export interface DeviceTokenClaims { kind: "device"; usr: string; dev: string; jti: string; iat: number; exp?: number; res?: string[] }
export interface UserTokenClaims { kind: "user"; usr: string; jti: string; iat: number; exp?: number }
export type TokenClaims = AccessClaims | DeviceTokenClaims | UserTokenClaims;

export class InvalidTokenError extends Error {
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "InvalidTokenError";
  }
}

const ALG = "HS256";
/** Verified tokens remembered at most (the map is cleared when full). */
const VERIFIED_CACHE_SIZE = 10_000;
const NAME = NAME_RE;

/**
 * Signs and verifies the server's JWTs (HS256 only: the algorithm is pinned, `alg:none` and every other
 * algorithm are refused by jose). Three kinds, told apart by their claims:
 * access `{usr,fam,iat,exp}`, device token `{dev,usr,jti,iat,exp?,res?}`, user token `{usr,jti,iat,exp?,tok:1}`.
 * Signing is deterministic, so a listed token is re-created from its stored claims and never stored itself.
 */
export class TokenSigner {
  private readonly key: Uint8Array<ArrayBuffer>;
  /** The key imported into WebCrypto once: given raw bytes, jose imports them again on every sign and verify. */
  private cryptoKey: Promise<CryptoKey> | undefined;
  /**
   * Payloads of tokens whose signature already verified, keyed by the whole token (signature included, so
   * only that exact token hits). WebCrypto HMAC runs as a thread-pool job per call: ~¼ of a relay call's CPU
   * (BENCHMARKS.md). Revocation is not cached here: the Authenticator checks it on every request.
   */
  private readonly verified = new Map<string, JWTPayload>();

  constructor(secret: string) {
    if (Buffer.byteLength(secret, "utf8") < 32) throw new RangeError('"secret" must be at least 32 bytes');
    this.key = new TextEncoder().encode(secret);
  }

  signAccess(usr: string, fam: string, iat: number): Promise<string> {
    return this.sign({ usr, fam }, iat, iat + ACCESS_TOKEN_TTL_S);
  }

  signDeviceToken(c: Omit<DeviceTokenClaims, "kind">): Promise<string> {
    const payload: JWTPayload = { dev: c.dev, usr: c.usr, jti: c.jti };
    if (c.res) payload.res = c.res;
    return this.sign(payload, c.iat, c.exp);
  }

  signUserToken(c: Omit<UserTokenClaims, "kind">): Promise<string> {
    return this.sign({ usr: c.usr, jti: c.jti, tok: 1 }, c.iat, c.exp);
  }

  private sign(payload: JWTPayload, iat: number, exp: number | undefined): Promise<string> {
    const jwt = new SignJWT({ ...payload }).setProtectedHeader({ alg: ALG, typ: "JWT" }).setIssuedAt(iat);
    if (exp !== undefined) jwt.setExpirationTime(exp);
    return this.importedKey().then((key) => jwt.sign(key));
  }

  private importedKey(): Promise<CryptoKey> {
    return (this.cryptoKey ??= crypto.subtle.importKey("raw", this.key, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]));
  }

  /** The payload of a token whose signature already verified here (no checks of time or shape). */
  peekVerified(token: string): { exp?: number } | undefined {
    const p = this.verified.get(token);
    return p === undefined ? undefined : { ...(typeof p.exp === "number" ? { exp: p.exp } : {}) };
  }

  /** Verifies signature, algorithm and expiry, then the claim shape of one of the three kinds. */
  async verify(token: string, nowMs = Date.now()): Promise<TokenClaims> {
    let payload = this.verified.get(token);
    if (payload !== undefined) {
      // Signature, header and claim types were checked when it was cached; only time moves. Same rule as jose.
      const now = Math.floor(nowMs / 1000);
      if (typeof payload.exp === "number" && payload.exp <= now) throw new InvalidTokenError("ERR_JWT_EXPIRED");
      if (typeof payload.nbf === "number" && payload.nbf > now) throw new InvalidTokenError("ERR_JWT_CLAIM_VALIDATION_FAILED");
    } else {
      // base64url leaves spare bits in the last character of the 32-byte signature: "…V4" and "…V5" decode to
      // the same bytes. Accept only the canonical spelling, so one token has exactly one valid string.
      const sig = token.slice(token.lastIndexOf(".") + 1);
      if (Buffer.from(sig, "base64url").toString("base64url") !== sig) throw new InvalidTokenError("non-canonical signature encoding");
      try {
        ({ payload } = await jwtVerify(token, await this.importedKey(), {
          algorithms: [ALG],
          typ: "JWT",
          currentDate: new Date(nowMs),
          requiredClaims: ["iat", "usr"],
        }));
      } catch (err) {
        if (err instanceof joseErrors.JOSEError) throw new InvalidTokenError(err.code, { cause: err });
        throw new InvalidTokenError("malformed token", { cause: err });
      }
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.clear();
      this.verified.set(token, payload);
    }
    const { usr, iat, exp } = payload;
    if (typeof usr !== "string" || !NAME.test(usr) || typeof iat !== "number") throw new InvalidTokenError("bad claims");
    if (iat * 1000 > nowMs + 60_000) throw new InvalidTokenError("issued in the future");
    if (exp !== undefined && typeof exp !== "number") throw new InvalidTokenError("bad exp");
    const markers = Number("fam" in payload) + Number("dev" in payload) + Number("tok" in payload);
    if (markers !== 1) throw new InvalidTokenError("unknown token kind");
    if (typeof payload.fam === "string") {
      if (exp === undefined) throw new InvalidTokenError("access token without exp");
      return { kind: "access", usr, fam: payload.fam, iat, exp };
    }
    if (typeof payload.jti !== "string") throw new InvalidTokenError("missing jti");
    if (typeof payload.dev === "string") {
      const res = payload.res;
      if (res !== undefined && !(Array.isArray(res) && res.every((r) => typeof r === "string"))) throw new InvalidTokenError("bad res");
      const c: DeviceTokenClaims = { kind: "device", usr, dev: payload.dev, jti: payload.jti, iat };
      if (exp !== undefined) c.exp = exp;
      if (res !== undefined) c.res = res as string[];
      return c;
    }
    if (payload.tok === 1) {
      const c: UserTokenClaims = { kind: "user", usr, jti: payload.jti, iat };
      if (exp !== undefined) c.exp = exp;
      return c;
    }
    throw new InvalidTokenError("unknown token kind");
  }
}
