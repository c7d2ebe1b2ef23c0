import { randomBytes } from "node:crypto";
import { AppError } from "../errors.js";
import type { Permission } from "../auth/permission.js";
import type { DeviceTokenDoc, Repositories, UserTokenDoc } from "../store/repos.js";
import type { TokenSigner } from "../auth/jwt.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";
import { isResourceName } from "../gateway/protocol.js";
import { MAX_PERMISSIONS, toThinger, type ThingerPermissions } from "./permissions.js";
import type { Quotas } from "../auth/quotas.js";
import { type Clock, systemClock } from "../auth/limiter.js";

export const MAX_TOKENS_PER_DEVICE = 100;
export const MAX_TOKENS_PER_USER = 100;
export { MAX_PERMISSIONS };

export interface DeviceTokenView {
  id: string;
  name: string;
  token: string;
}

export interface UserTokenView {
  id: string;
  name: string;
  token: string;
  enabled: boolean;
  expiration: number | null;
  /** Thinger's shape (server/tokens/permissions.ts); stored as a flat list. */
  allow: ThingerPermissions;
  deny: ThingerPermissions;
  created_ts: number;
}

function newId(): string {
  return randomBytes(16).toString("hex"); // 128 random bits
}

function bad(message: string): AppError {
  return new AppError("invalid_request", message);
}

export function parseName(v: unknown, field: string): string {
  if (typeof v !== "string" || v.trim().length === 0 || v.length > 64) throw bad(`"${field}" must be a non-empty string of at most 64 characters`);
  return v;
}

/** Expiry in ms since the epoch (UTC), strictly in the future. Returns seconds for the JWT `exp`. */
export function parseExpiration(v: unknown, field: string, now = Date.now()): number {
  if (typeof v !== "number" || !Number.isFinite(v) || !Number.isInteger(v)) throw bad(`"${field}" must be a time in ms since the epoch (UTC)`);
  if (v <= now) throw bad(`"${field}" must be in the future`);
  if (v > 8.64e15) throw bad(`"${field}" is out of range`);
  return Math.ceil(v / 1000);
}

export function parseResources(v: unknown, field: string): string[] {
  if (!Array.isArray(v) || v.length > MAX_PERMISSIONS) throw bad(`"${field}" must be an array of at most ${MAX_PERMISSIONS} resource names`);
  const out: string[] = [];
  for (const r of v) {
    if (typeof r !== "string") throw bad(`"${field}" must contain only strings`);
    if (!isResourceName(r)) throw bad(`"${field}" contains an invalid resource name`);
    if (!out.includes(r)) out.push(r);
  }
  return out;
}

/**
 * Device tokens (Thinger-compatible) and user access tokens. Tokens are never stored: the store keeps the
 * claims, and the deterministic HS256 signature re-creates the same JWT when listing, so a store dump yields
 * no usable token without the server key. Every write invalidates the revocation cache at once.
 */
export class TokensService {
  constructor(
    private readonly repos: Repositories,
    private readonly signer: TokenSigner,
    private readonly cache: RevocationCache,
    private readonly quotas?: Quotas,
    /** Dates tokens (`iat`) and judges a requested expiry "in the future": the Authenticator's clock (issue 13.6). */
    readonly clock: Clock = systemClock,
  ) {}

  /** A requested expiry (ms since the epoch) as the JWT `exp` (s); it must be in the future on {@link clock}. */
  expiration(v: unknown, field: string): number {
    return parseExpiration(v, field, this.clock.now());
  }

  private quota<T>(user: string, create: () => Promise<T>): Promise<T> {
    return this.quotas ? this.quotas.token(user, create) : create();
  }

  private async deviceView(d: DeviceTokenDoc): Promise<DeviceTokenView> {
    const claims = { usr: d.user, dev: d.device, jti: d._id, iat: d.iat } as Parameters<TokenSigner["signDeviceToken"]>[0];
    if (d.exp !== null) claims.exp = d.exp;
    if (d.resources !== null) claims.res = d.resources;
    return { id: d._id, name: d.name, token: await this.signer.signDeviceToken(claims) };
  }

  async listDeviceTokens(user: string, device: string): Promise<DeviceTokenView[]> {
    const docs = await this.repos.deviceTokens.find({ user, device }, { sort: { iat: 1 } });
    return Promise.all(docs.map((d) => this.deviceView(d)));
  }

  createDeviceToken(user: string, device: string, input: { name: string; resources: string[] | null; exp: number | null }): Promise<DeviceTokenView> {
    return this.quota(user, () => this.insertDeviceToken(user, device, input));
  }

  private async insertDeviceToken(user: string, device: string, input: { name: string; resources: string[] | null; exp: number | null }): Promise<DeviceTokenView> {
    if ((await this.repos.deviceTokens.count({ user, device })) >= MAX_TOKENS_PER_DEVICE) {
      throw bad(`a device may have at most ${MAX_TOKENS_PER_DEVICE} tokens`);
    }
    const doc: DeviceTokenDoc = {
      _id: newId(), user, device, name: input.name, resources: input.resources, iat: Math.floor(this.clock.now() / 1000), exp: input.exp,
    };
    await this.repos.deviceTokens.insertOne(doc);
    this.cache.invalidate(cacheKey.deviceToken(doc._id));
    if (!(await this.repos.deviceStillExists(user, device))) {
      // Deleted while the token was made: its tokens are gone, and this one must not wait for a device of that id.
      await this.repos.deviceTokens.deleteOne({ _id: doc._id });
      this.cache.invalidate(cacheKey.deviceToken(doc._id));
      throw new AppError("device_not_found");
    }
    return this.deviceView(doc);
  }

  async deleteDeviceToken(user: string, device: string, id: string): Promise<void> {
    const n = await this.repos.deviceTokens.deleteOne({ _id: id, user, device });
    if (n === 0) throw new AppError("token_not_found");
    this.cache.invalidate(cacheKey.deviceToken(id));
  }

  private async userView(d: UserTokenDoc): Promise<UserTokenView> {
    return {
      id: d._id, name: d.name, token: await this.signer.signUserToken({ usr: d.user, jti: d._id, iat: d.iat }),
      enabled: d.enabled, expiration: d.exp === null ? null : d.exp * 1000, allow: toThinger(d.allow), deny: toThinger(d.deny), created_ts: d.createdAt,
    };
  }

  async listUserTokens(user: string): Promise<UserTokenView[]> {
    const docs = await this.repos.userTokens.find({ user }, { sort: { createdAt: 1 } });
    return Promise.all(docs.map((d) => this.userView(d)));
  }

  async getUserToken(user: string, id: string): Promise<UserTokenView> {
    const d = await this.repos.userTokens.findOne({ _id: id, user });
    if (!d) throw new AppError("token_not_found");
    return this.userView(d);
  }

  createUserToken(user: string, input: { name: string; enabled: boolean; exp: number | null; allow: Permission[]; deny: Permission[] }): Promise<UserTokenView> {
    return this.quota(user, () => this.insertUserToken(user, input));
  }

  private async insertUserToken(user: string, input: { name: string; enabled: boolean; exp: number | null; allow: Permission[]; deny: Permission[] }): Promise<UserTokenView> {
    if ((await this.repos.userTokens.count({ user })) >= MAX_TOKENS_PER_USER) throw bad(`an account may have at most ${MAX_TOKENS_PER_USER} user tokens`);
    const now = this.clock.now();
    const doc: UserTokenDoc = {
      _id: newId(), user, name: input.name, enabled: input.enabled, allow: input.allow, deny: input.deny,
      iat: Math.floor(now / 1000), exp: input.exp, createdAt: now, updatedAt: now,
    };
    await this.repos.userTokens.insertOne(doc);
    this.cache.invalidate(cacheKey.userToken(doc._id));
    if (!(await this.repos.accountStillExists(user))) {
      // The account was deleted meanwhile: a token left behind would work for an account re-created with the name.
      await this.repos.userTokens.deleteOne({ _id: doc._id });
      this.cache.invalidate(cacheKey.userToken(doc._id));
      throw new AppError("user_not_found");
    }
    return this.userView(doc);
  }

  async updateUserToken(user: string, id: string, patch: Partial<Pick<UserTokenDoc, "name" | "enabled" | "exp" | "allow" | "deny">>): Promise<UserTokenView> {
    const doc = await this.repos.userTokens.findOneAndUpdate({ _id: id, user }, { $set: { ...patch, updatedAt: this.clock.now() } });
    if (!doc) throw new AppError("token_not_found");
    this.cache.invalidate(cacheKey.userToken(id));
    return this.userView(doc);
  }

  async deleteUserToken(user: string, id: string): Promise<void> {
    const n = await this.repos.userTokens.deleteOne({ _id: id, user });
    if (n === 0) throw new AppError("token_not_found");
    this.cache.invalidate(cacheKey.userToken(id));
  }
}
