import { AppError } from "../errors.js";
import type { Repositories } from "../store/repos.js";
import type { Hub } from "../gateway/hub.js";
import type { TokensService } from "../tokens/service.js";
import { CLOSE } from "../gateway/protocol.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";

/**
 * One feature's share of an account: what it exports and what it deletes with the account. The export and the
 * cascading delete are both driven by the list of parts given to {@link AccountService}, so a feature that keeps
 * per-account data (properties, dashboards, queued calls…) joins both with one entry in app.ts.
 */
export interface AccountPart {
  /** Section name in the export document. */
  readonly name: string;
  /** The section: JSON without any secret or hash (passwords, credentials, token values, refresh families). */
  export?(user: string): Promise<unknown>;
  /** Deletes everything of `user` this part keeps, and ends what is live (sessions, streams). */
  remove?(user: string): Promise<void>;
}

export const EXPORT_FORMAT = "thingrelay-account-export";
export const EXPORT_VERSION = 1;

/** The account as a whole (issue 12 points 5 and 7): export it, delete it with everything it owns. */
export class AccountService {
  constructor(
    private readonly repos: Repositories,
    private readonly cache: RevocationCache,
    private readonly parts: readonly AccountPart[],
  ) {}

  /** `GET /v1/users/{user}/export`: one JSON document, a section per part, in the order the parts were given. */
  async export(user: string): Promise<Record<string, unknown>> {
    const doc = await this.repos.users.findOne({ _id: user });
    if (!doc) throw new AppError("user_not_found");
    const out: Record<string, unknown> = { format: EXPORT_FORMAT, version: EXPORT_VERSION, exported_ts: Date.now(), user: userView(doc) };
    for (const part of this.parts) if (part.export) out[part.name] = await part.export(user);
    return out;
  }

  /**
   * Deletes the account first (from then on every token of it reads as revoked and nobody can sign in to it),
   * tells every cache and open stream (streams of the account end), then lets each part delete what it keeps.
   */
  async delete(user: string): Promise<void> {
    if ((await this.repos.users.deleteOne({ _id: user })) === 0) throw new AppError("user_not_found");
    this.cache.invalidate(cacheKey.user(user));
    for (const part of this.parts) await part.remove?.(user);
  }
}

export interface UserView {
  username: string;
  admin: boolean;
  created_ts: number;
  password_changed_ts: number;
  /** False once an administrator disabled the account (`PUT /v1/users/{user}` `{"enabled": false}`). */
  enabled: boolean;
}

/** An account as the API shows it: never the password hash. */
export function userView(doc: { username: string; admin: boolean; createdAt: number; passwordChangedAt: number; enabled?: boolean | undefined }): UserView {
  return { username: doc.username, admin: doc.admin, created_ts: doc.createdAt, password_changed_ts: doc.passwordChangedAt, enabled: doc.enabled !== false };
}

/** The parts every account has: devices with their tokens and live sessions, user tokens, sign-in sessions. */
export function coreAccountParts(repos: Repositories, hub: Hub, cache: RevocationCache, tokens: TokensService): AccountPart[] {
  return [
    {
      name: "devices",
      async export(user) {
        const docs = await repos.devices.find({ user }, { sort: { device: 1 } });
        // Never the credentials hash.
        return docs.map((d) => ({
          device: d.device, description: d.description, type: typeof d.type === "string" ? d.type : "Generic",
          created_ts: d.createdAt, last_connection_ts: d.lastConnectionTs,
        }));
      },
      async remove(user) {
        const docs = await repos.devices.find({ user });
        await repos.devices.deleteMany({ user });
        // After the delete: a session that authenticated meanwhile is closed too.
        const live = new Set([...docs.map((d) => d.device), ...hub.list(user).map((s) => s.device)]);
        for (const device of live) {
          hub.kick(user, device, CLOSE.deviceDeleted, "account deleted");
          hub.forget(user, device);
        }
      },
    },
    {
      name: "device_tokens",
      async export(user) {
        const docs = await repos.deviceTokens.find({ user }, { sort: { iat: 1 } });
        // Metadata only: the token itself is the secret.
        return docs.map((t) => ({
          id: t._id, device: t.device, name: t.name, resources: t.resources, created_ts: t.iat * 1000,
          expiration: t.exp === null ? null : t.exp * 1000,
        }));
      },
      async remove(user) {
        const docs = await repos.deviceTokens.find({ user });
        await repos.deviceTokens.deleteMany({ user });
        for (const t of docs) cache.invalidate(cacheKey.deviceToken(t._id));
      },
    },
    {
      name: "user_tokens",
      async export(user) {
        // The API's own view of each token, without the token.
        return (await tokens.listUserTokens(user)).map(({ token: _token, ...meta }) => meta);
      },
      async remove(user) {
        const docs = await repos.userTokens.find({ user });
        await repos.userTokens.deleteMany({ user });
        for (const t of docs) cache.invalidate(cacheKey.userToken(t._id));
      },
    },
    {
      // Sign-in sessions: never exported (a refresh family is a credential), deleted with the account.
      name: "refresh_families",
      async remove(user) {
        const families = await repos.families.find({ user });
        await repos.refreshTokens.deleteMany({ user });
        await repos.families.deleteMany({ user });
        for (const f of families) cache.invalidate(cacheKey.family(f._id));
      },
    },
  ];
}
