import type { Router, RouterMiddleware } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { param } from "../http/validate.js";
import { USERNAME_RE } from "../users/service.js";
import { DEVICE_ID_RE } from "../devices/service.js";

const noDevice = () => new AppError("device_not_found");

export function streamRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  /** Thinger's stats object; with `Accept: text/event-stream` the same object as an SSE stream. */
  router.get("/v1/users/:user/devices/:device/stats", requireAuth, async (ctx) => {
    const user = param(ctx.params.user, USERNAME_RE, new AppError("user_not_found"));
    const device = param(ctx.params.device, DEVICE_ID_RE, noDevice());
    authorize(ctx, user, "GetDeviceStats", { device }, noDevice);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    if (ctx.get("Accept").includes("text/event-stream")) {
      await s.streams.statsStream(ctx, user, device);
      return;
    }
    ctx.body = s.hub.stats(user, device);
  });
}
