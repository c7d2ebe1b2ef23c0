import type { Router, RouterMiddleware } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { DEVICE_ID_RE } from "../devices/service.js";
import { deviceParam, noDevice, noUser, userParam } from "../http/params.js";
import { streamRequest } from "./http.js";
import { requireAcceptable } from "../http/negotiate.js";
import { hasArrayForm } from "../http/validate.js";

/** Stats (JSON or SSE) and the account event stream. Resource streams hang off the relay route. See docs/streams.md. */
export function streamRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  /** Thinger's stats object; with `Accept: text/event-stream` the same object as an SSE stream. */
  router.get("/v1/users/:user/devices/:device/stats", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "GetDeviceStats", { device }, noDevice);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    requireAcceptable(ctx, "application/json", "text/event-stream");
    if (ctx.accepts("json", "text/event-stream") === "text/event-stream") {
      s.streams.stats.open(streamRequest(ctx), user, device);
      return;
    }
    ctx.body = s.hub.stats(user, device);
  });

  /**
   * The account's device events (`online`, `offline`) as SSE (this route has no JSON form: an Accept that
   * rules out text/event-stream answers 406). `?device=` narrows it to one device, and then needs ReadEvents on
   * that device only.
   */
  router.get("/v1/users/:user/events", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = ctx.query.device;
    if (device !== undefined && (typeof device !== "string" || !DEVICE_ID_RE.test(device))) {
      throw new AppError("invalid_request", '"device" must be a device id ([a-zA-Z0-9_]{1,25})');
    }
    // `?device[]=x` (axios', PHP's array form) is not the filter: refused, as on the device list, rather than
    // answered with every device's events.
    if (hasArrayForm(ctx.query, "device")) throw new AppError("invalid_request", '"device" must be given once, as ?device=<device id>');
    authorize(ctx, user, "ReadEvents", { device: device ?? "*" }, noUser);
    requireAcceptable(ctx, "text/event-stream");
    s.streams.events.open(streamRequest(ctx), user, device);
  });
}
