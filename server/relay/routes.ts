import type { Router, RouterMiddleware } from "@koa/router";
import type { Context } from "koa";
import { AppError, errorBody } from "../errors.js";
import { CALL_TTL } from "../calls/queue.js";
import { IdempotencyKeys, type StoredOutcome } from "../calls/idempotency.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { hasBody } from "../http/validate.js";
import { isApiPath, normalizeResource } from "./resource.js";
import { type CallVerb, checkVerb, knownKinds, resourceApi } from "./kinds.js";
import { RESERVED_RESOURCE } from "../gateway/protocol.js";
import { connectionOf } from "../http/connection.js";
import { deviceParam, noDevice, userParam } from "../http/params.js";
import { requireAcceptable } from "../http/negotiate.js";
import { parseInterval, streamRequest } from "../streams/http.js";
import type { CallResult } from "../gateway/session.js";


/** `?timeout=` in seconds (decimals allowed), bounded by the configured maximum. */
export function parseTimeout(value: unknown, defaultMs: number, maxMs: number): number {
  if (value === undefined) return defaultMs;
  if (typeof value !== "string" || !/^\d+(\.\d+)?$/.test(value)) throw new AppError("invalid_request", '"timeout" must be a number of seconds');
  const ms = Math.round(Number(value) * 1000);
  if (ms < 1 || ms > maxMs) throw new AppError("invalid_request", `"timeout" must be more than 0 and at most ${maxMs / 1000} seconds`);
  return ms;
}

/** The raw resource path: the router decodes %2F into "/", which would let a path trick change the name. */
function rawResource(ctx: Context): string {
  const m = /^\/v2\/users\/[^/]+\/devices\/[^/]+\//.exec(ctx.path);
  if (!m) throw new AppError("invalid_request", "resource name required");
  return ctx.path.slice(m[0].length);
}

function target(ctx: Context): { user: string; device: string; resource: string } {
  const user = userParam(ctx.params.user);
  const device = deviceParam(ctx.params.device);
  return { user, device, resource: normalizeResource(rawResource(ctx)) };
}

/** A POST body as a call input. Thinger: `{"in": x}` sends x; any other JSON body is passed whole. */
export function postInput(ctx: Context): { hasInput: boolean; input: unknown } {
  const raw = (ctx.request as { rawBody?: string }).rawBody;
  if (raw === undefined || raw.trim() === "") {
    // Sized or chunked: any body that is not JSON is refused rather than run as "no input".
    if (hasBody(ctx) && !ctx.is("json")) throw new AppError("unsupported_media_type", "send application/json");
    return { hasInput: false, input: undefined };
  }
  const body = (ctx.request as { body?: unknown }).body;
  const input = typeof body === "object" && body !== null && !Array.isArray(body) && Object.keys(body).length === 1 && "in" in body
    ? (body as { in: unknown }).in
    : body;
  return { hasInput: true, input };
}

/** `GET …/{resource…}/api`: the resource's kind and current state, from wherever the device is connected. */
async function describeOne(s: Services, ctx: Context, user: string, device: string, resource: string): Promise<void> {
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
}

/** `GET …/{device}/api`: the device's resources and their kinds, from wherever it is connected. */
async function listResources(s: Services, ctx: Context, user: string, device: string): Promise<void> {
  authorize(ctx, user, "ListDeviceResources", { device }, noDevice);
  // Validated like every relay route's (the list itself waits on the device's describe, bounded by the session).
  parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
  ctx.body = await s.devices.orNoSession(user, device, async () => {
    const session = s.hub.get(user, device);
    if (session) return session.resourceList();
    if (!s.cluster) throw new AppError("device_offline");
    return s.cluster.resources(user, device);
  });
}

export interface CallTarget {
  user: string;
  device: string;
  resource: string;
  verb: CallVerb;
  hasInput: boolean;
  input: unknown;
}

const JSON_TYPE = "application/json; charset=utf-8";
/** What Koa sends for an empty string body. */
const EMPTY_HEAD: readonly string[] = Object.freeze(["Content-Type", "text/plain; charset=utf-8", "Content-Length", "0"]);

/**
 * One relay call through the hub (here or, in cluster mode, on the node holding the device), with its metrics.
 * `direct`: the 200 is written here with its head as one list (relay/fast-path.ts; the headers Koa would send
 * for the same body), not left to Koa; a caller that reads `ctx.body` afterwards (idempotent calls) passes false.
 */
export async function callResource(s: Services, ctx: Context, t: CallTarget, direct = false): Promise<void> {
  const { user, device, resource, verb, hasInput, input } = t;
  // No query string (the usual call): no query object to parse for `?timeout=`.
  const timeoutMs = ctx.querystring === "" ? s.config.limits.callTimeoutMs
    : parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
  const started = performance.now();
  let outcome = "ok";
  // A client that disconnects cancels its call: the device's in-flight slot is freed at once (issue 13.7).
  // One close listener per socket (http/connection.ts), not one per call.
  const connection = connectionOf(ctx.req.socket);
  const gone = connection.watch();
  try {
    let result: CallResult;
    try {
      result = await s.hub.call(user, device, resource, input, hasInput, timeoutMs, verb, gone);
    } catch (err) {
      // No live session anywhere (here or, in cluster mode, on another node): registered or not? What
      // `devices.orNoSession` does, without its closure and promise on every call.
      if (err instanceof AppError && err.code === "device_offline") throw await s.devices.noSession(user, device);
      throw err;
    }
    ctx.status = 200;
    if (direct) {
      ctx.respond = false;
      if (result.hasOut) {
        const body = JSON.stringify({ out: result.out ?? null });
        ctx.res.writeHead(200, ["Content-Type", JSON_TYPE, "Content-Length", String(Buffer.byteLength(body))]);
        ctx.res.end(body);
      } else {
        ctx.res.writeHead(200, [...EMPTY_HEAD]);
        ctx.res.end();
      }
    } else if (result.hasOut) {
      // What Koa sends for `ctx.body = { out }`, serialised here: the type is set once, without Koa's type lookup.
      ctx.res.setHeader("Content-Type", JSON_TYPE);
      ctx.body = JSON.stringify({ out: result.out ?? null });
    } else {
      ctx.body = "";
    }
  } catch (err) {
    // Nobody is left to answer: the call ends quietly.
    if (gone.cancelled) {
      outcome = "client_closed";
      return;
    }
    outcome = err instanceof AppError ? err.code : "internal_error";
    throw err;
  } finally {
    connection.release(gone);
    s.metrics.relayCalls.inc({ outcome });
    s.metrics.relayLatency.observe(outcome, (performance.now() - started) / 1000);
  }
}

/** The relay: `GET`/`POST /v2/users/{user}/devices/{device}/{resource…}` and `/api`. */
export function relayRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {
  const relay = async (ctx: Context, hasInput: boolean, input: unknown) => {
    const { user, device, resource } = target(ctx);
    const verb: CallVerb = ctx.method === "POST" ? "POST" : "GET";
    if (resource.endsWith(`/${RESERVED_RESOURCE}`)) {
      if (verb !== "GET") throw new AppError("method_not_allowed", "a resource's /api is read with GET", { headers: { Allow: "GET" } });
      await describeOne(s, ctx, user, device, resource.slice(0, -`/${RESERVED_RESOURCE}`.length));
      return;
    }
    if (resource === RESERVED_RESOURCE) {
      // As a resource's /api and a queued POST: a POST here is not a call to a resource named "api" (schemathesis).
      if (verb !== "GET") throw new AppError("method_not_allowed", "a device's /api is read with GET", { headers: { Allow: "GET" } });
      await listResources(s, ctx, user, device);
      return;
    }
    authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
    // The cheap header test first: content negotiation (ctx.accepts) is only worth running for a stream request.
    if (ctx.method === "GET" && ctx.get("Accept").includes("text/event-stream") && ctx.accepts("json", "text/event-stream") === "text/event-stream") {
      await s.streams.resources.open(streamRequest(ctx), user, device, resource, parseInterval(ctx.query.interval));
      return;
    }
    // Wrong method for the kind the device described: 405 before anything reaches the device (a node holding
    // it elsewhere in the cluster makes the same check with the verb hub.call passes on).
    const local = s.hub.get(user, device);
    if (local) await knownKinds(local, s.config.limits.callTimeoutMs);
    if (local) checkVerb(local, resource, verb);
    await callResource(s, ctx, { user, device, resource, verb, hasInput, input });
  };

  const path = "/v2/users/:user/devices/:device/{*resource}";
  router.get(path, requireAuth, (ctx) => {
    // The router answers HEAD with GET handlers; running a resource (a relay, a reset) for a HEAD is wrong.
    const api = isApiPath(ctx.params.resource ?? "");
    if (ctx.method === "HEAD") {
      throw new AppError("method_not_allowed", api ? "use GET" : "use GET or POST", { headers: { Allow: api ? "GET" : "GET, POST" } });
    }
    // An /api never streams: an EventSource there is told so, rather than handed a JSON body it cannot read.
    if (api) requireAcceptable(ctx, "application/json");
    else requireAcceptable(ctx, "application/json", "text/event-stream");
    return relay(ctx, false, undefined);
  });
  router.post(path, requireAuth, async (ctx) => {
    const { hasInput, input } = postInput(ctx);
    // Issue 18: `Prefer: respond-async` queues the call; `Idempotency-Key` keeps the first outcome.
    const queued = prefersAsync(ctx.get("Prefer"));
    const run = () => (queued ? enqueue(ctx, hasInput, input) : relay(ctx, hasInput, input));
    const keyHeader = ctx.get("Idempotency-Key");
    if (keyHeader === "") return run();
    const { user, device, resource } = target(ctx);
    // Authorized before any replay: a kept answer is shown only to a caller allowed to make the call.
    authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
    const key = IdempotencyKeys.parse(keyHeader);
    const timeoutMs = parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
    const ttlS = queued ? parseTtl(ctx.query.ttl) : null;
    const fingerprint = IdempotencyKeys.callFingerprint({ device, resource, queued, ttlS, timeoutMs, hasInput, input });
    await idempotent(ctx, s, user, key, fingerprint, timeoutMs, run);
  });

  /** `POST …/{resource}` with `Prefer: respond-async`: persist the call, answer 202 with its status URL. */
  const enqueue = async (ctx: Context, hasInput: boolean, input: unknown) => {
    const { user, device, resource } = target(ctx);
    // Not a call to a resource named "api": the device's or a resource's /api, read with GET (as without Prefer).
    if (isApiPath(resource)) {
      throw new AppError("method_not_allowed", "an /api is read with GET", { headers: { Allow: "GET" } });
    }
    authorize(ctx, user, "AccessDeviceResources", { device, resource }, noDevice);
    const ttlS = parseTtl(ctx.query.ttl);
    const timeoutMs = parseTimeout(ctx.query.timeout, s.config.limits.callTimeoutMs, s.config.limits.maxCallTimeoutMs);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    await s.calls.checkKind(user, device, resource);
    const call = await s.calls.enqueue(user, device, resource, hasInput, input, ttlS, timeoutMs);
    ctx.status = 202;
    ctx.set("Location", `/v1/users/${user}/devices/${device}/calls/${call.id}`);
    ctx.set("Preference-Applied", "respond-async");
    ctx.body = call;
  };
}

/** True when a `Prefer` header (RFC 7240) asks for `respond-async`. */
export function prefersAsync(header: string): boolean {
  if (header === "") return false;
  return header.split(",").some((p) => p.split(/[;=]/)[0]!.trim().toLowerCase() === "respond-async");
}

/** `?ttl=` of a queued call: whole seconds, default 3600, at most 604800. */
export function parseTtl(value: unknown): number {
  if (value === undefined) return CALL_TTL.defaultS;
  if (typeof value !== "string" || !/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > CALL_TTL.maxS) {
    throw new AppError("invalid_request", `"ttl" must be a whole number of seconds from 1 to ${CALL_TTL.maxS}`);
  }
  return Number(value);
}

/** Runs `run` under an Idempotency-Key: the kept answer when there is one, else runs it and keeps its outcome. */
async function idempotent(ctx: Context, s: Services, user: string, key: string, fingerprint: string, timeoutMs: number, run: () => Promise<void>): Promise<void> {
  const begun = await s.idempotency.begin(user, key, fingerprint, timeoutMs + 5_000);
  if (begun.kind === "replay") {
    const { status, body, headers } = begun.outcome;
    ctx.status = status;
    for (const [k, v] of Object.entries(headers)) ctx.set(k, v);
    ctx.set("Idempotent-Replayed", "true");
    ctx.body = body;
    if (headers["Content-Type"]) ctx.type = headers["Content-Type"];
    return;
  }
  const keep = (outcome: StoredOutcome, code?: string) =>
    s.idempotency.finish(begun.id, outcome, code).catch((err: unknown) => s.logger.warn({ err }, "idempotency outcome not kept"));
  try {
    await run();
  } catch (err) {
    const e = err instanceof AppError ? err : new AppError("internal_error");
    await keep({ status: e.status, body: JSON.stringify(errorBody(e.code, e.message)), headers: { "Content-Type": "application/json; charset=utf-8" } }, e.code);
    throw err;
  }
  const body = ctx.body === undefined || ctx.body === null || ctx.body === "" ? "" : typeof ctx.body === "string" ? ctx.body : JSON.stringify(ctx.body);
  await keep({ status: ctx.status, body, headers: IdempotencyKeys.keptHeaders((h) => String(ctx.response.get(h) ?? "")) });
}
