import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize, requireSession } from "../http/authorize.js";
import { objectBody, param } from "../http/validate.js";
import { parseName, parseResources } from "./service.js";
import { parsePermissions } from "./permissions.js";
import { deviceParam, noDevice, noUser, userParam } from "../http/params.js";
import { sendList } from "../http/list.js";

const TOKEN_ID_RE = /^[a-f0-9]{32}$/;
const noToken = () => new AppError("token_not_found");

/**
 * Takes a token just made back (`remove`) and answers 401 when the session that made it was revoked meanwhile
 * (sign-out, a password change with `revoke_tokens`, a disable): a revocation that ran before the token existed
 * did not remove it, and a token must not outlive a revocation of everything its maker held. Only re-checked
 * when some revocation happened since the request's token was checked.
 */
async function keptByLiveSession(s: Services, ctx: Context, remove: () => Promise<void>): Promise<void> {
  if (ctx.state.authVersion === s.authenticator.cache.version) return;
  try {
    await s.authenticator.authenticate(ctx.state.token as string);
  } catch (err) {
    if (err instanceof AppError && err.status === 401) {
      // Gone already (the revocation's own delete came later): fine.
      await remove().catch((e: unknown) => {
        if (!(e instanceof AppError && e.code === "token_not_found")) throw e;
      });
    }
    throw err;
  }
}

export function tokenRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  const tokenOf = (v: string | undefined) => param(v, TOKEN_ID_RE, noToken());

  // ---- device tokens (Thinger-compatible) ----
  router.get("/v1/users/:user/devices/:device/tokens", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    const p = authorize(ctx, user, "ListDeviceTokens", { device }, noDevice);
    await s.devices.get(user, device);
    const tokens = await s.tokens.listDeviceTokens(user, device);
    // A scoped token sees which tokens exist but not their values: listing must not widen its own access.
    sendList<object>(ctx, p.canManageTokens ? tokens : tokens.map((t) => ({ ...t, token: null })), { fields: ["id", "name", "token"] });
  });

  router.post("/v1/users/:user/devices/:device/tokens", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    const p = authorize(ctx, user, "CreateDeviceToken", { device }, noDevice);
    if (!p.canManageTokens) throw new AppError("forbidden", "only a password-grant session may create tokens");
    const body = objectBody(ctx, ["token_name", "token_resources", "token_expiration"]);
    const name = parseName(body.token_name, "token_name");
    const resources = body.token_resources === undefined || body.token_resources === null ? null : parseResources(body.token_resources, "token_resources");
    const exp = body.token_expiration === undefined || body.token_expiration === null ? null : s.tokens.expiration(body.token_expiration, "token_expiration");
    await s.devices.get(user, device);
    const made = await s.tokens.createDeviceToken(user, device, { name, resources, exp });
    await keptByLiveSession(s, ctx, () => s.tokens.deleteDeviceToken(user, device, made.id));
    ctx.body = made;
  });

  router.delete("/v1/users/:user/devices/:device/tokens/:id", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "DeleteDeviceToken", { device }, noDevice);
    // A missing device answers device_not_found whatever the token id, as on every other device route.
    await s.devices.get(user, device);
    await s.tokens.deleteDeviceToken(user, device, tokenOf(ctx.params.id));
    ctx.body = {};
  });

  // ---- user access tokens: managed only by the account's own password-grant session ----
  router.get("/v1/users/:user/tokens", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    sendList(ctx, await s.tokens.listUserTokens(user), { fields: ["id", "name", "token", "enabled", "expiration", "allow", "deny", "created_ts"] });
  });

  router.post("/v1/users/:user/tokens", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    const body = objectBody(ctx, ["name", "enabled", "expiration", "allow", "deny"]);
    const name = parseName(body.name, "name");
    if (body.enabled !== undefined && typeof body.enabled !== "boolean") throw new AppError("invalid_request", '"enabled" must be a boolean');
    const exp = body.expiration === undefined || body.expiration === null ? null : s.tokens.expiration(body.expiration, "expiration");
    const made = await s.tokens.createUserToken(user, {
      name, enabled: body.enabled ?? true, exp, allow: parsePermissions(body.allow, "allow"), deny: parsePermissions(body.deny, "deny"),
    });
    await keptByLiveSession(s, ctx, () => s.tokens.deleteUserToken(user, made.id));
    ctx.body = made;
  });

  router.get("/v1/users/:user/tokens/:id", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    ctx.body = await s.tokens.getUserToken(user, tokenOf(ctx.params.id));
  });

  router.put("/v1/users/:user/tokens/:id", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    const id = tokenOf(ctx.params.id);
    const body = objectBody(ctx, ["name", "enabled", "expiration", "allow", "deny"]);
    const patch: Parameters<typeof s.tokens.updateUserToken>[2] = {};
    if (body.name !== undefined) patch.name = parseName(body.name, "name");
    if (body.enabled !== undefined) {
      if (typeof body.enabled !== "boolean") throw new AppError("invalid_request", '"enabled" must be a boolean');
      patch.enabled = body.enabled;
    }
    if (body.expiration !== undefined) patch.exp = body.expiration === null ? null : s.tokens.expiration(body.expiration, "expiration");
    if (body.allow !== undefined) patch.allow = parsePermissions(body.allow, "allow");
    if (body.deny !== undefined) patch.deny = parsePermissions(body.deny, "deny");
    ctx.body = await s.tokens.updateUserToken(user, id, patch);
  });

  router.delete("/v1/users/:user/tokens/:id", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    requireSession(ctx, user, noUser);
    await s.tokens.deleteUserToken(user, tokenOf(ctx.params.id));
    ctx.body = {};
  });
}
