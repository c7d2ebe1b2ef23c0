import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { objectBody } from "../http/validate.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";
import { normalizeResource } from "../relay/resource.js";
import { sendList } from "../http/list.js";

/** The keys of a listed property (`?fields=`). */
const PROPERTY_FIELDS = ["property", "value", "updated_ts"] as const;

/**
 * Device properties, Thinger v3 (issue 18): `GET /v3/users/{user}/devices/{device}/properties`, `POST` there with
 * `{property, value}` (how Thinger's own clients create one), and `GET`/`PUT`/`DELETE …/properties/{property}`.
 * Names follow the resource-name rules (nested names allowed).
 */
export function propertyRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  const base = "/v3/users/:user/devices/:device/properties";

  /** The raw property path (like the relay's resources: %2F must not become a separator). */
  const propertyName = (ctx: Context): string => {
    const m = /^\/v3\/users\/[^/]+\/devices\/[^/]+\/properties\//.exec(ctx.path);
    if (!m) throw new AppError("invalid_request", "property name required");
    try {
      return normalizeResource(ctx.path.slice(m[0].length));
    } catch (err) {
      if (err instanceof AppError) throw new AppError("invalid_request", err.message.replace("resource", "property"));
      throw err;
    }
  };

  const target = async (ctx: Context, action: "ReadDeviceProperties" | "WriteDeviceProperties") => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, action, { device }, noDevice);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    return { user, device };
  };

  router.get(base, requireAuth, async (ctx) => {
    const { user, device } = await target(ctx, "ReadDeviceProperties");
    sendList(ctx, await s.properties.list(user, device), { fields: PROPERTY_FIELDS });
  });

  // Thinger's create call, the name in the body (not percent-decoded: the rule of names in device frames).
  // Creates or replaces, as PUT does.
  router.post(base, requireAuth, async (ctx) => {
    const { user, device } = await target(ctx, "WriteDeviceProperties");
    const body = objectBody(ctx, ["property", "value"]);
    if (typeof body.property !== "string") throw new AppError("invalid_request", '"property" is required and must be a string');
    if (!("value" in body)) throw new AppError("invalid_request", '"value" is required');
    ctx.body = await s.properties.set(user, device, body.property, body.value);
  });

  const one = `${base}/{*property}`;
  router.get(one, requireAuth, async (ctx) => {
    // HEAD reads like GET (a property has no side effect to run, unlike a resource): the router's Allow lists it.
    const property = propertyName(ctx);
    const { user, device } = await target(ctx, "ReadDeviceProperties");
    ctx.body = await s.properties.get(user, device, property);
  });

  router.put(one, requireAuth, async (ctx) => {
    const property = propertyName(ctx);
    const { user, device } = await target(ctx, "WriteDeviceProperties");
    const body = objectBody(ctx, ["value"]);
    if (!("value" in body)) throw new AppError("invalid_request", '"value" is required');
    ctx.body = await s.properties.set(user, device, property, body.value);
  });

  router.delete(one, requireAuth, async (ctx) => {
    const property = propertyName(ctx);
    const { user, device } = await target(ctx, "WriteDeviceProperties");
    await s.properties.delete(user, device, property);
    ctx.body = {};
  });
}
