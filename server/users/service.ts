import { randomBytes } from "node:crypto";
import { NAME_RE } from "../../device-sdk/protocol.js";
import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Repositories } from "../store/repos.js";
import { DuplicateKeyError } from "../store/types.js";
import type { PasswordHasher } from "../auth/passwords.js";
import { WindowLimiter } from "../auth/limiter.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";

/** User names: the protocol's rule (device-sdk/protocol.ts). */
export const USERNAME_RE = NAME_RE;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

export class UsersService {
  /** Wrong current passwords per account: 5 per 15 minutes. */
  private readonly passwordChecks = new WindowLimiter(5, 15 * 60_000);

  constructor(
    private readonly repos: Repositories,
    private readonly passwords: PasswordHasher,
    private readonly cache: RevocationCache,
  ) {}

  async create(username: string, password: string, admin = false): Promise<void> {
    checkPassword(password);
    // Names differing only in case ("alice", "Alice") would be look-alike accounts: one of them only.
    const lower = username.toLowerCase();
    const existing = await this.repos.users.findOne({ lower });
    if (existing) throw new AppError("conflict", `user "${existing.username}" already exists (names are unique regardless of case)`);
    const now = Date.now();
    const passwordHash = await this.passwords.hash(password);
    try {
      await this.repos.users.insertOne({ _id: username, username, lower, passwordHash, admin, createdAt: now, passwordChangedAt: now });
    } catch (err) {
      if (err instanceof DuplicateKeyError) throw new AppError("conflict", `user "${username}" already exists`);
      throw err;
    }
    this.cache.invalidate(cacheKey.user(username));
  }

  /**
   * Changes a password after checking the current one (a stolen access token alone must not take the account
   * over), then revokes every refresh family (and so every access token) of the user. Device and user tokens
   * are deliberate grants and stay valid; revoke them one by one.
   */
  async changePassword(username: string, current: string | null, password: string, revokeTokens = false): Promise<void> {
    checkPassword(password);
    const user = await this.repos.users.findOne({ _id: username });
    if (!user) throw new AppError("user_not_found");
    if (current === null) return this.setPassword(username, password, revokeTokens);
    // A stolen session must not be able to guess the current password: a few tries, then wait.
    const limit = this.passwordChecks.hit(username);
    if (!limit.allowed) throw new AppError("too_many_requests", "too many wrong current passwords; try again later", { headers: { "Retry-After": String(limit.retryAfterS) } });
    if (!(await this.passwords.verify(current, user.passwordHash))) throw new AppError("forbidden", "current password is wrong");
    this.passwordChecks.reset(username);
    await this.setPassword(username, password, revokeTokens);
  }

  /**
   * The stored name of an account addressed in any case (`bob` finds "Bob": names are unique regardless of
   * case), or the name as given when there is none.
   */
  async canonicalName(name: string): Promise<string> {
    const doc = await this.repos.users.findOne({ _id: name }) ?? await this.repos.users.findOne({ lower: name.toLowerCase() });
    return doc?.username ?? name;
  }

  /** Sets the password (an administrator's reset skips the current one) and revokes the account's sessions. */
  private async setPassword(username: string, password: string, revokeTokens: boolean): Promise<void> {
    const passwordHash = await this.passwords.hash(password);
    const n = await this.repos.users.updateOne({ _id: username }, { $set: { passwordHash, passwordChangedAt: Date.now() } });
    if (n === 0) throw new AppError("user_not_found");
    const families = await this.repos.families.find({ user: username, revoked: false });
    await this.repos.revokeUserFamilies(username, "password changed");
    // Revoked families refuse every refresh token of theirs: none is kept (issue 20).
    await this.repos.refreshTokens.deleteMany({ user: username });
    for (const f of families) this.cache.invalidate(cacheKey.family(f._id));
    if (revokeTokens) await this.revokeAllTokens(username);
    this.cache.invalidate(cacheKey.user(username));
  }

  /** Deletes every device and user token of the account (`"revoke_tokens": true` on a password change). */
  private async revokeAllTokens(username: string): Promise<void> {
    const deviceTokens = await this.repos.deviceTokens.find({ user: username });
    const userTokens = await this.repos.userTokens.find({ user: username });
    await this.repos.deviceTokens.deleteMany({ user: username });
    await this.repos.userTokens.deleteMany({ user: username });
    for (const t of deviceTokens) this.cache.invalidate(cacheKey.deviceToken(t._id));
    for (const t of userTokens) this.cache.invalidate(cacheKey.userToken(t._id));
  }

  /**
   * Enables or disables an account (admin). Disabled: sign-in and refresh refused, every token of it refused
   * at once (the authenticator reads \`enabled\`), its refresh families revoked, its device sessions closed
   * (4001) and new ones refused. Returns the device ids whose sessions the caller must close.
   */
  async setEnabled(username: string, enabled: boolean): Promise<string[]> {
    const n = await this.repos.users.updateOne({ _id: username }, { $set: { enabled } });
    if (n === 0) throw new AppError("user_not_found");
    this.cache.invalidate(cacheKey.user(username));
    if (enabled) return [];
    const families = await this.repos.families.find({ user: username, revoked: false });
    await this.repos.revokeUserFamilies(username, "account disabled");
    await this.repos.refreshTokens.deleteMany({ user: username });
    for (const f of families) this.cache.invalidate(cacheKey.family(f._id));
    return (await this.repos.devices.find({ user: username })).map((d) => d.device);
  }

  /**
   * Admin bootstrap (DESIGN §3): ensures the configured admin exists; with none configured and no user at all,
   * creates `admin` with a generated password and returns it so main.ts can store and print it once.
   */
  async ensureAdmin(user: string | undefined, password: string | undefined, logger: Logger): Promise<{ user: string; password: string } | null> {
    if (user !== undefined && password !== undefined) {
      const existing = await this.repos.users.findOne({ _id: user });
      if (!existing) {
        // Another node sharing the store may create it at the same moment: then it exists, as wanted.
        if (await this.createUnlessExists(user, password)) logger.info({ user }, "admin account created");
        else if (!(await this.repos.users.findOne({ _id: user }))) {
          // Not created by a concurrent node: the name collides (in case only) with another account.
          throw new Error(`THINGRELAY_ADMIN_USER "${user}" differs only in case from an existing account; use that account's exact name`);
        } else await this.ensureAdmin(user, password, logger);
      } else if (!existing.admin) {
        await this.repos.users.updateOne({ _id: user }, { $set: { admin: true } });
        this.cache.invalidate(cacheKey.user(user));
      }
      return null;
    }
    if ((await this.repos.users.count({})) > 0) return null;
    const generated = randomBytes(18).toString("base64url");
    // Two nodes starting together on one empty MongoDB: only the one that created the account prints it.
    if (!(await this.createUnlessExists("admin", generated))) return null;
    return { user: "admin", password: generated };
  }

  private async createUnlessExists(user: string, password: string): Promise<boolean> {
    try {
      await this.create(user, password, true);
      return true;
    } catch (err) {
      if (err instanceof AppError && err.code === "conflict") return false;
      throw err;
    }
  }
}

function checkPassword(password: string): void {
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new AppError("invalid_request", `"password" must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`);
  }
}
