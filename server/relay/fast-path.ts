import type Koa from "koa";
import type { Context } from "koa";
import type { Services } from "../services.js";
import { authenticateRequest } from "../http/auth.js";
import { authorize } from "../http/authorize.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";
import { type CallVerb, checkVerb, knownKinds } from "./kinds.js";
import { isApiPath, normalizeResource } from "./resource.js";
import { callResource, postInput } from "./routes.js";

/**
 * A plain relay call: `/v2/users/{user}/devices/{device}/{resource}` with nothing to decode (no `%`, no dots,
 * no empty segment, no trailing slash). Anything else under `/v2/` is left to the router.
 */
const PLAIN_CALL = /^\/v2\/users\/([^/%]+)\/devices\/([^/%]+)\/([A-Za-z0-9_-]+(?:\/[A-Za-z0-9_-]+)*)$/;

/**
 * The relay route matched first (issue 15): the hot path, a plain `GET`/`POST` relay call, is recognised with
 * one regex and run here, in Koa after every app-wide middleware (request id and log, security headers, CORS,
 * per-address limit, body limits), instead of going through @koa/router's ~40 routes and the route's
 * middleware frames. It makes the same checks in the same order as the router's relay route (relay/routes.ts):
 * authentication and the per-token limit, then path user, device and resource, authorization, the resource
 * kind's verb, the call. What it does not handle plainly falls through to the router unchanged: other methods
 * (HEAD's 405), `…/api`, names needing decoding, an `Accept` other than none, `*\/*` or JSON (406, SSE), a POST
 * with `Prefer` or `Idempotency-Key` (queued and idempotent calls).
 */
export function relayFirst(s: Services): Koa.Middleware {
  const { authenticator, apiLimiter } = s;
  return function relayFirst(ctx: Context, next: Koa.Next): Promise<void> {
    const method = ctx.method;
    if (method !== "GET" && method !== "POST") return next();
    const m = PLAIN_CALL.exec(ctx.path);
    if (m === null) return next();
    const user = m[1]!;
    const device = m[2]!;
    const resource = m[3]!;
    if (isApiPath(resource)) return next();
    const h = ctx.req.headers;
    if (method === "GET" ? !plainAccept(h.accept) : h.prefer !== undefined || h["idempotency-key"] !== undefined) return next();
    const verb: CallVerb = method;
    // A token seen recently is checked without a promise; any other goes through the authenticator.
    const authenticating = authenticateRequest(ctx, authenticator, apiLimiter);
    if (authenticating === undefined) return relayCall(s, ctx, user, device, resource, verb);
    return authenticating.then(() => relayCall(s, ctx, user, device, resource, verb));
  };
}

/** An `Accept` under which the router's relay route answers JSON (no 406, no event stream). */
function plainAccept(accept: string | undefined): boolean {
  return accept === undefined || accept === "*/*" || accept === "application/json";
}

/** The router's relay route after `requireAuth`, for a plain call (see {@link relayFirst}). */
function relayCall(s: Services, ctx: Context, rawUser: string, rawDevice: string, rawResource: string, verb: CallVerb): Promise<void> {
  let hasInput = false;
  let input: unknown;
  if (verb === "POST") ({ hasInput, input } = postInput(ctx));
  const user = userParam(rawUser);
  const device = deviceParam(rawDevice);
  const resource = normalizeResource(rawResource);
  authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
  // 405 for a verb the described kind does not take, before anything reaches the device (as the router's route).
  const local = s.hub.get(user, device);
  // The answer is written at once, except in cluster mode: there the cluster barrier (http/edge.ts) must run
  // before the answer goes out, so Koa writes it after the middleware chain as for any route.
  const direct = s.cluster === undefined;
  if (local !== undefined && local.resources === null && local.describeIfUnknown !== undefined) {
    return knownKinds(local, s.config.limits.callTimeoutMs).then(() => {
      checkVerb(local, resource, verb);
      return callResource(s, ctx, { user, device, resource, verb, hasInput, input }, direct);
    });
  }
  if (local !== undefined) checkVerb(local, resource, verb);
  return callResource(s, ctx, { user, device, resource, verb, hasInput, input }, direct);
}
