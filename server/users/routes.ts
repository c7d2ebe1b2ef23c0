import type { Router, RouterMiddleware } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { principalOf } from "../http/auth.js";
import { requireSession } from "../http/authorize.js";
import { objectBody, requireString } from "../http/validate.js";
import { USERNAME_RE } from "./service.js";
import { noUser, userParam } from "../http/params.js";
import { CLOSE } from "../gateway/protocol.js";

export function userRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  /** Admin only: create an account. */
  router.post("/v1/users", requireAuth, async (ctx) => {
    const p = principalOf(ctx);
    if (!p.admin || p.kind !== "session") throw new AppError("forbidden", "only an administrator may create users");
    const body = objectBody(ctx, ["username", "password"]);
    const username = requireString(body, "username", USERNAME_RE, "must match [a-zA-Z0-9_]{1,32}");
    const password = requireString(body, "password");
    await s.users.create(username, password);
    ctx.status = 201;
    ctx.body = { username };
  });

  /** Change one's own password; every refresh family (and access token) of the account is revoked. */
  router.put("/v1/users/:user/password", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    const body = objectBody(ctx, ["current_password", "password", "revoke_tokens"]);
    const password = requireString(body, "password");
    const revokeTokens = body.revoke_tokens ?? false;
    if (typeof revokeTokens !== "boolean") throw new AppError("invalid_request", '"revoke_tokens" must be a boolean');
    await s.users.changePassword(user, requireString(body, "current_password"), password, revokeTokens);
    ctx.body = {};
  });

  /** Admin only: enable or disable an account (`{"enabled": false}` refuses its sign-in, tokens and devices at once). */
  router.put("/v1/users/:user", requireAuth, async (ctx) => {
    const p = principalOf(ctx);
    if (!p.admin || p.kind !== "session") throw new AppError("forbidden", "only an administrator may change accounts");
    const user = userParam(ctx.params.user);
    const body = objectBody(ctx, ["enabled"]);
    if (typeof body.enabled !== "boolean") throw new AppError("invalid_request", '"enabled" is required and must be a boolean');
    if (!body.enabled && user === p.user) throw new AppError("invalid_request", "an administrator cannot disable their own account");
    for (const device of await s.users.setEnabled(user, body.enabled)) s.hub.kick(user, device, CLOSE.unauthorized, "account disabled");
    ctx.body = { username: user, enabled: body.enabled };
  });
}
