import type { Context } from "koa";
import { AppError } from "../errors.js";

/**
 * 406 `not_acceptable` when the request's `Accept` header rules out every representation the route can answer
 * (`Accept: application/xml` on a JSON route, `Accept: application/json` on an SSE-only one). No `Accept`, `*\/*`
 * and any wildcard covering one of them are fine.
 */
export function requireAcceptable(ctx: Context, ...types: string[]): void {
  if (ctx.get("Accept") === "") return;
  if (ctx.accepts(...types) === false) throw new AppError("not_acceptable", `this route answers ${types.join(" or ")}`);
}
