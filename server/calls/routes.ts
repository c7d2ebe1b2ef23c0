import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { principalOf } from "../http/auth.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";

/** Call ids: 12 random bytes, base64url. Anything else is a call that cannot exist. */
const CALL_ID_RE = /^[A-Za-z0-9_-]{16}$/;

/** Page size of `GET …/calls`: default and maximum. */
export const CALLS_PAGE = Object.freeze({ defaultLimit: 50, maxLimit: 200 });

/**
 * `?page=&limit=` of a list route, with RFC 8288 `Link` and `X-Total-Count` (DESIGN §4 "list routes").
 * The minimum this issue needs; the lead may swap it for the shared pagination helper of issue 12.
 */
export function callsPage(ctx: Context): { skip: number; limit: number; page: number } {
  const num = (v: unknown, name: string, dflt: number, max: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== "string" || !/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > max) {
      throw new AppError("invalid_request", `"${name}" must be a whole number from 1 to ${max}`);
    }
    return Number(v);
  };
  const limit = num(ctx.query.limit, "limit", CALLS_PAGE.defaultLimit, CALLS_PAGE.maxLimit);
  const page = num(ctx.query.page, "page", 1, 100_000);
  return { skip: (page - 1) * limit, limit, page };
}

function setPageHeaders(ctx: Context, page: number, limit: number, total: number): void {
  ctx.set("X-Total-Count", String(total));
  const last = Math.max(1, Math.ceil(total / limit));
  const link = (p: number, rel: string) => `<${ctx.path}?page=${p}&limit=${limit}>; rel="${rel}"`;
  const links = [link(1, "first"), link(last, "last")];
  if (page > 1) links.push(link(Math.min(page - 1, last), "prev"));
  if (page < last) links.push(link(page + 1, "next"));
  ctx.set("Link", links.join(", "));
}

/**
 * Queued calls (issue 18): `GET …/calls` (newest first, paginated), `GET …/calls/{id}`, `DELETE …/calls/{id}`
 * (cancels a call still queued). Listing needs ListDeviceResources on the device and shows the calls whose
 * resource the token may access; reading or cancelling one call needs AccessDeviceResources on its resource.
 */
export function callRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  const base = "/v1/users/:user/devices/:device/calls";
  const callId = (v: string | undefined): string => {
    if (v === undefined || !CALL_ID_RE.test(v)) throw new AppError("call_not_found");
    return v;
  };

  router.get(base, requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "ListDeviceResources", { device }, noDevice);
    const { skip, limit, page } = callsPage(ctx);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    const { items, total } = await s.calls.list(user, device, skip, limit);
    const p = principalOf(ctx);
    // A token limited to some resources sees the calls of those resources only.
    ctx.body = items.filter((c) => p.can("AccessDeviceResources", { device, resource: c.resource }));
    setPageHeaders(ctx, page, limit, total);
  });

  const one = async (ctx: Context) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    if (principalOf(ctx).user !== user) throw noDevice();
    // The device first: another account's device and a missing one of the caller's answer alike.
    if (!(await s.devices.exists(user, device))) throw noDevice();
    const id = callId(ctx.params.id);
    const call = await s.calls.get(user, device, id);
    authorize(ctx, user, "AccessDeviceResources", { device, resource: call.resource }, noDevice);
    return { user, device, id, call };
  };

  router.get(`${base}/:id`, requireAuth, async (ctx) => {
    ctx.body = (await one(ctx)).call;
  });

  router.delete(`${base}/:id`, requireAuth, async (ctx) => {
    const { user, device, id } = await one(ctx);
    ctx.body = await s.calls.cancel(user, device, id);
  });
}
