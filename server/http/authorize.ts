import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Action } from "../auth/permission.js";
import type { Target } from "../auth/principal.js";
import { principalOf } from "./auth.js";
import type { Principal } from "../auth/principal.js";

/**
 * The one authorization check every route makes: the path's account must be the caller's (otherwise the
 * route's own 404, so other accounts cannot be probed), and the caller's token must allow `action` on
 * `target` (otherwise 403 forbidden).
 */
export function authorize(ctx: Context, user: string, action: Action, target: Target, notFound: () => AppError): Principal {
  const p = principalOf(ctx);
  if (p.user !== user) throw notFound();
  if (!p.can(action, target)) throw new AppError("forbidden", `token does not allow ${action}${target.device ? ` on ${target.device}` : ""}${target.resource ? `/${target.resource}` : ""}`);
  return p;
}

/** Token and account management: only the account's own password-grant session. */
export function requireSession(ctx: Context, user: string, notFound: () => AppError): Principal {
  const p = principalOf(ctx);
  if (p.user !== user) throw notFound();
  if (!p.canManageTokens) throw new AppError("forbidden", "only a password-grant session may manage tokens");
  return p;
}
