import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError, payloadTooLarge } from "../errors.js";
import type { Services } from "../services.js";
import { principalOf } from "../http/auth.js";
import { hasBody } from "../http/validate.js";

function field(body: Record<string, unknown>, name: string): string | undefined {
  const v = body[name];
  if (v === undefined) return undefined;
  // A repeated form parameter or `name[]=` arrives as an array or object: RFC 6749 §3.2 says reject.
  if (typeof v !== "string") throw new AppError("invalid_request", `"${name}" must be given once, as a string`);
  return v;
}

function tokenBody(ctx: Context, limitBytes: number): Record<string, unknown> {
  // No body at all: the required fields are missing (400), not the media type.
  if (!hasBody(ctx)) return {};
  if (!ctx.is("urlencoded", "json")) throw new AppError("unsupported_media_type", "send application/x-www-form-urlencoded or application/json");
  // Content-Length is checked before parsing (app.ts); a chunked JSON body only meets the general JSON limit
  // there, so hold the token endpoints to their own limit here.
  const rawBody = (ctx.request as { rawBody?: string }).rawBody;
  if (rawBody !== undefined && Buffer.byteLength(rawBody) > limitBytes) throw payloadTooLarge(limitBytes);
  const body = (ctx.request as { body?: unknown }).body;
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new AppError("invalid_request", "body must be an object");
  return body as Record<string, unknown>;
}

/** `POST /oauth/token` (password and refresh-token grants) and `POST /oauth/revoke` (RFC 7009). */
export function oauthRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  router.post("/oauth/token", async (ctx) => {
    const body = tokenBody(ctx, s.config.limits.tokenBodyLimitBytes);
    const grant = field(body, "grant_type");
    if (grant === undefined || grant === "") throw new AppError("invalid_request", '"grant_type" is required');
    let result;
    if (grant === "password") {
      const username = field(body, "username");
      const password = field(body, "password");
      if (username === undefined || password === undefined) throw new AppError("invalid_request", '"username" and "password" are required');
      if (username.length > 64 || password.length > 1024) throw new AppError("invalid_grant", "invalid username or password");
      result = await s.oauth.passwordGrant(username, password, ctx.ip).catch((e: unknown) => {
        s.metrics.grants.inc({ grant, outcome: e instanceof AppError ? e.code : "error" });
        throw e;
      });
    } else if (grant === "refresh_token") {
      const rt = field(body, "refresh_token");
      if (rt === undefined) throw new AppError("invalid_request", '"refresh_token" is required');
      result = await s.oauth.refreshGrant(rt).catch((e: unknown) => {
        s.metrics.grants.inc({ grant, outcome: e instanceof AppError ? e.code : "error" });
        throw e;
      });
    } else {
      throw new AppError("unsupported_grant_type", "supported grant types: password, refresh_token");
    }
    s.metrics.grants.inc({ grant, outcome: "ok" });
    ctx.set("Cache-Control", "no-store");
    ctx.set("Pragma", "no-cache");
    ctx.body = result;
  });

  router.post("/oauth/revoke", async (ctx) => {
    const body = tokenBody(ctx, s.config.limits.tokenBodyLimitBytes);
    const token = field(body, "token");
    if (token === undefined) throw new AppError("invalid_request", '"token" is required');
    await s.oauth.revoke(token);
    ctx.status = 200;
    ctx.body = {};
  });
  // Registered after the POST routes, which match first. RFC 9110 §15.5.6: a 405 names the allowed methods.
  router.all(["/oauth/token", "/oauth/revoke"], () => {
    throw new AppError("method_not_allowed", "use POST", { headers: { Allow: "POST" } });
  });

  /** Who am I: the caller's account and token kind (used by the dashboard and CLI). */
  router.get("/v1/me", requireAuth, (ctx) => {
    const p = principalOf(ctx);
    ctx.body = { user: p.user, token_kind: p.kind, admin: p.admin, expires_at: p.expiresAt };
  });
}
