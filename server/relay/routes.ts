import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { hasBody } from "../http/validate.js";
import { normalizeResource } from "./resource.js";
import { type CallVerb, checkVerb, resourceApi } from "./kinds.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";


/** `?timeout=` in seconds (decimals allowed), bounded by the configured maximum. */
export function parseTimeout(value: unknown, defaultMs: number, maxMs: number): number {
  if (value === undefined) return defaultMs;
  if (typeof value !== "string" || !/^\d+(\.\d+)?$/.test(value)) throw new AppError("invalid_request", '"timeout" must be a number of seconds');
  const ms = Math.round(Number(value) * 1000);
  if (ms < 1 || ms > maxMs) throw new AppError("invalid_request", `"timeout" must be more than 0 and at most ${maxMs / 1000} seconds`);
  return ms;
}

/** The relay: `GET`/`POST /v2/users/{user}/devices/{device}/{resource…}` and `/api`. */
export function relayRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  /** The raw resource path: the router decodes %2F into "/", which would let a path trick change the name. */
  const rawResource = (ctx: Context): string => {
    const m = /^\/v2\/users\/[^/]+\/devices\/[^/]+\//.exec(ctx.path);
    if (!m) throw new AppError("invalid_request", "resource name required");
    return ctx.path.slice(m[0].length);
  };

  const target = (ctx: Context) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    return { user, device, resource: normalizeResource(rawResource(ctx)) };
  };

  /** `GET …/{resource…}/api`: the resource's kind and current state, from wherever the device is connected. */
  const describeOne = async (ctx: Context, user: string, device: string, resource: string) => {
    authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
    const timeoutMs = parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
    const session = s.hub.get(user, device);
    if (session) {
      ctx.body = await resourceApi(session, resource, timeoutMs);
      return;
    }
    const remote = s.cluster ? await s.cluster.resourceApi(user, device, resource, timeoutMs).catch((e: unknown) => {
      if (e instanceof AppError && e.code === "device_offline") return null;
      throw e;
    }) : null;
    if (!remote) throw (await s.devices.exists(user, device)) ? new AppError("device_offline") : noDevice();
    ctx.body = remote;
  };

  const relay = async (ctx: Context, hasInput: boolean, input: unknown) => {
    const { user, device, resource } = target(ctx);
    const verb: CallVerb = ctx.method === "POST" ? "POST" : "GET";
    if (resource.endsWith("/api")) {
      if (verb !== "GET") throw new AppError("method_not_allowed", "a resource's /api is read with GET", { headers: { Allow: "GET" } });
      await describeOne(ctx, user, device, resource.slice(0, -"/api".length));
      return;
    }
    if (resource === "api") {
      authorize(ctx, user, "ListDeviceResources", { device }, noDevice);
      ctx.body = await s.devices.orNoSession(user, device, async () => {
        const session = s.hub.get(user, device);
        if (session) return session.resourceList();
        if (!s.cluster) throw new AppError("device_offline");
        return s.cluster.resources(user, device);
      });
      return;
    }
    authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
    // The cheap header test first: content negotiation (ctx.accepts) is only worth running for a stream request.
    if (ctx.method === "GET" && ctx.get("Accept").includes("text/event-stream") && ctx.accepts("json", "text/event-stream") === "text/event-stream") {
      await s.streams.resourceStream(ctx, user, device, resource);
      return;
    }
    // Wrong method for the kind the device described: 405 before anything reaches the device (a node holding
    // it elsewhere in the cluster makes the same check with the verb hub.call passes on).
    const local = s.hub.get(user, device);
    if (local) checkVerb(local, resource, verb);
    const timeoutMs = parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
    const started = performance.now();
    let outcome = "ok";
    try {
      // No live session anywhere (here or, in cluster mode, on another node): registered or not?
      const result = await s.devices.orNoSession(user, device, () => s.hub.call(user, device, resource, input, hasInput, timeoutMs, verb));
      ctx.status = 200;
      if (result.hasOut) ctx.body = { out: result.out ?? null };
      else ctx.body = "";
    } catch (err) {
      outcome = err instanceof AppError ? err.code : "internal_error";
      throw err;
    } finally {
      s.metrics.relayCalls.inc({ outcome });
      s.metrics.relayLatency.observe({ outcome }, (performance.now() - started) / 1000);
    }
  };

  const path = "/v2/users/:user/devices/:device/{*resource}";
  router.get(path, requireAuth, (ctx) => {
    // The router answers HEAD with GET handlers; running a resource (a relay, a reset) for a HEAD is wrong.
    if (ctx.method === "HEAD") throw new AppError("method_not_allowed", "use GET or POST", { headers: { Allow: "GET, POST" } });
    return relay(ctx, false, undefined);
  });
  router.post(path, requireAuth, (ctx) => {
    const raw = (ctx.request as { rawBody?: string }).rawBody;
    if (raw === undefined || raw.trim() === "") {
      // Sized or chunked: any body that is not JSON is refused rather than run as "no input".
      if (hasBody(ctx) && !ctx.is("json")) throw new AppError("unsupported_media_type", "send application/json");
      return relay(ctx, false, undefined);
    }
    const body = (ctx.request as { body?: unknown }).body;
    // Thinger: {"in": x} sends x; any other JSON body is passed whole as the input.
    if (typeof body === "object" && body !== null && !Array.isArray(body) && Object.keys(body).length === 1 && "in" in body) {
      return relay(ctx, true, (body as { in: unknown }).in);
    }
    return relay(ctx, true, body);
  });
}
