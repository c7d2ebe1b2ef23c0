import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { principalOf } from "../http/auth.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";
import { sendList } from "../http/list.js";

/** The keys a queued call may have (`?fields=`). */
const CALL_FIELDS = ["id", "resource", "status", "created_ts", "done_ts", "out", "error"] as const;

/** Call ids: 12 random bytes, base64url. Anything else is a call that cannot exist. */
const CALL_ID_RE = /^[A-Za-z0-9_-]{16}$/;

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
    if (!(await s.devices.exists(user, device))) throw noDevice();
    const p = principalOf(ctx);
    // A token limited to some resources sees the calls of those resources only (filtered before paging, so
    // X-Total-Count and the links count what the caller may see). Paging and ?fields= as every list route.
    const items = (await s.calls.listAll(user, device)).filter((c) => p.can("AccessDeviceResources", { device, resource: c.resource }));
    sendList(ctx, items, { fields: CALL_FIELDS });
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
