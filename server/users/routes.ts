import type { Router, RouterMiddleware } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { principalOf } from "../http/auth.js";
import { objectBody, requireString } from "../http/validate.js";
import { USERNAME_RE } from "./service.js";
import { noUser, userParam } from "../http/params.js";
import { sendList } from "../http/list.js";
import type { Context } from "koa";
import type { Principal } from "../auth/principal.js";
import { userView } from "./account.js";

const USER_FIELDS = ["username", "admin", "created_ts", "password_changed_ts", "enabled"];

/** An administrator's password-grant session (scoped tokens never administer accounts). */
function requireAdmin(ctx: Context, what: string): Principal {
  const p = principalOf(ctx);
  if (!p.admin || p.kind !== "session") throw new AppError("forbidden", `only an administrator may ${what}`);
  return p;
}

/**
 * An administrator's session, or the account's own password-grant session. Anyone else gets the same 404 as
 * for a missing account, so accounts cannot be probed.
 */
function requireAdminOrSelf(ctx: Context, user: string): Principal {
  const p = principalOf(ctx);
  if (p.admin && p.kind === "session") return p;
  if (p.user !== user) throw noUser();
  if (!p.canManageTokens) throw new AppError("forbidden", "only a password-grant session may read the account");
  return p;
}
import { CLOSE } from "../gateway/protocol.js";

export function userRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  /** Admin only: create an account. */
  router.post("/v1/users", requireAuth, async (ctx) => {
    requireAdmin(ctx, "create users");
    const body = objectBody(ctx, ["username", "password"]);
    const username = requireString(body, "username", USERNAME_RE, "must match [a-zA-Z0-9_]{1,32}");
    const password = requireString(body, "password");
    await s.users.create(username, password);
    ctx.status = 201;
    ctx.body = { username };
  });

  /** Admin: every account, paginated like every list (`?page=&limit=`, `Link`, `X-Total-Count`, `?fields=`). */
  router.get("/v1/users", requireAuth, async (ctx) => {
    requireAdmin(ctx, "list users");
    const docs = await s.repos.users.find({}, { sort: { username: 1 } });
    sendList(ctx, docs.map(userView), { fields: USER_FIELDS });
  });

  /** One account: an administrator, or the account itself. */
  /** An account addressed in any case is the stored one (names are unique regardless of case). */
  const accountParam = (ctx: Context): Promise<string> => s.users.canonicalName(userParam(ctx.params.user));

  router.get("/v1/users/:user", requireAuth, async (ctx) => {
    const user = await accountParam(ctx);
    requireAdminOrSelf(ctx, user);
    const doc = await s.repos.users.findOne({ _id: user });
    if (!doc) throw noUser();
    ctx.body = userView(doc);
  });

  /**
   * Admin: deletes an account and everything it owns (devices, device and user tokens, sign-in sessions);
   * its live device sessions are closed (4004) and its open streams end. An administrator cannot delete their
   * own account (there would be no one left to undo it).
   */
  router.delete("/v1/users/:user", requireAuth, async (ctx) => {
    const user = await accountParam(ctx);
    const p = requireAdmin(ctx, "delete users");
    if (p.user === user) throw new AppError("conflict", "an administrator cannot delete their own account");
    await s.account.delete(user);
    ctx.body = {};
  });

  /** The whole account as one JSON document, without any secret or hash (issue 12 point 7). */
  router.get("/v1/users/:user/export", requireAuth, async (ctx) => {
    const user = await accountParam(ctx);
    requireAdminOrSelf(ctx, user);
    ctx.set("Content-Disposition", `attachment; filename="${user}-export.json"`);
    ctx.body = await s.account.export(user);
  });

  /**
   * Change one's own password (with `current_password`), or an administrator's reset of another account's (no
   * `current_password`); either way every refresh family (and access token) of the account is revoked.
   */
  router.put("/v1/users/:user/password", requireAuth, async (ctx) => {
    const user = await accountParam(ctx);
    const p = principalOf(ctx);
    const adminReset = p.admin && p.kind === "session" && p.user !== user;
    if (!adminReset) {
      if (p.user !== user) throw noUser();
      if (!p.canManageTokens) throw new AppError("forbidden", "only a password-grant session may change the password");
    }
    const body = objectBody(ctx, ["current_password", "password", "revoke_tokens"]);
    const password = requireString(body, "password");
    const revokeTokens = body.revoke_tokens ?? false;
    if (typeof revokeTokens !== "boolean") throw new AppError("invalid_request", '"revoke_tokens" must be a boolean');
    await s.users.changePassword(user, adminReset ? null : requireString(body, "current_password"), password, revokeTokens);
    ctx.body = {};
  });

  /** Admin only: enable or disable an account (`{"enabled": false}` refuses its sign-in, tokens and devices at once). */
  router.put("/v1/users/:user", requireAuth, async (ctx) => {
    const p = principalOf(ctx);
    if (!p.admin || p.kind !== "session") throw new AppError("forbidden", "only an administrator may change accounts");
    const user = await accountParam(ctx);
    const body = objectBody(ctx, ["enabled"]);
    if (typeof body.enabled !== "boolean") throw new AppError("invalid_request", '"enabled" is required and must be a boolean');
    if (!body.enabled && user === p.user) throw new AppError("invalid_request", "an administrator cannot disable their own account");
    for (const device of await s.users.setEnabled(user, body.enabled)) s.hub.kick(user, device, CLOSE.unauthorized, "account disabled");
    ctx.body = { username: user, enabled: body.enabled };
  });
}
