import type { Router, RouterMiddleware } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { authorize } from "../http/authorize.js";
import { requireOwnAccount } from "../http/auth.js";
import { hasArrayForm, objectBody, optionalString, requireString } from "../http/validate.js";
import { DEVICE_ID_RE, MAX_CREDENTIALS, MAX_DESCRIPTION } from "./service.js";
import { deviceParam, noDevice, noUser, userParam } from "../http/params.js";
import { sendList } from "../http/list.js";

const DEVICE_FIELDS = ["device", "description", "type", "connection"];
const SESSION_FIELDS = ["device", "ip_address", "connected_ts", "rx_bytes", "tx_bytes", "inflight", "buffered_bytes"];

const CLASSIC_FIELDS = ["device_id", "device_description", "device_credentials", "device_type"] as const;
/** Thinger's newer console API names the same fields without the `device_` prefix. */
const NEWER_FIELDS: Readonly<Record<string, (typeof CLASSIC_FIELDS)[number]>> = {
  device: "device_id", description: "device_description", credentials: "device_credentials", type: "device_type",
};

/** A device body as the classic shape, with the name each classic field had in the request (for error messages). */
interface DeviceBody {
  body: Record<string, unknown>;
  sent: (classic: string) => string;
}

/**
 * A create-device body in either of Thinger's shapes, as the classic one: `{"device_id","device_credentials",
 * "device_description"?,"device_type"?}` or the newer `{"device","credentials","description"?,"type"?,"name"?}`
 * (`name`, which we do not keep separately, becomes the description when there is none). Mixing the two shapes
 * is refused with a 400 that names both sets of fields, so a half-renamed body never loses a field silently.
 */
function createBody(body: Record<string, unknown>): DeviceBody {
  const newer = Object.keys(body).filter((k) => k in NEWER_FIELDS || k === "name");
  if (newer.length === 0) return { body, sent: (k) => k };
  const classic = Object.keys(body).filter((k) => (CLASSIC_FIELDS as readonly string[]).includes(k));
  if (classic.length > 0) {
    throw new AppError("invalid_request", `mixed field names (${[...classic, ...newer].join(", ")}): send either device_id, device_credentials, device_description, device_type or device, credentials, description, type, name`);
  }
  const out: Record<string, unknown> = {};
  const names: Record<string, string> = {};
  for (const [k, v] of Object.entries(body)) {
    if (k === "name") continue;
    out[NEWER_FIELDS[k]!] = v;
    names[NEWER_FIELDS[k]!] = k;
  }
  if (out.device_description === undefined && body.name !== undefined) {
    out.device_description = body.name;
    names.device_description = "name";
  }
  if (out.device_id === undefined) throw new AppError("invalid_request", '"device" (or "device_id") is required and must be a string');
  if (out.device_credentials === undefined) throw new AppError("invalid_request", '"credentials" (or "device_credentials") is required and must be a string');
  return { body: out, sent: (k) => names[k] ?? k };
}

/** An update-device body in either shape, as the classic one (`device_description`, `device_credentials`). */
function updateBody(body: Record<string, unknown>): DeviceBody {
  const newer = Object.keys(body).filter((k) => k === "description" || k === "credentials" || k === "name");
  if (newer.length === 0) return { body, sent: (k) => k };
  const classic = Object.keys(body).filter((k) => k === "device_description" || k === "device_credentials");
  if (classic.length > 0) {
    throw new AppError("invalid_request", `mixed field names (${[...classic, ...newer].join(", ")}): send either device_description, device_credentials or description, credentials, name`);
  }
  const out: Record<string, unknown> = {};
  const names: Record<string, string> = { device_credentials: "credentials" };
  if (body.description !== undefined) {
    out.device_description = body.description;
    names.device_description = "description";
  } else if (body.name !== undefined) {
    out.device_description = body.name;
    names.device_description = "name";
  }
  if (body.credentials !== undefined) out.device_credentials = body.credentials;
  return { body: out, sent: (k) => names[k] ?? k };
}

export function deviceRoutes(router: Router, s: Services, requireAuth: RouterMiddleware): void {

  router.get("/v1/users/:user/devices", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const p = authorize(ctx, user, "ListDevices", { device: "*" }, noUser);
    const id = ctx.query.id;
    if (id !== undefined && (typeof id !== "string" || !DEVICE_ID_RE.test(id))) throw new AppError("invalid_request", '"id" must be a device id');
    // `?id[]=x` (PHP/Rails array syntax) is not a filter this route knows: refused rather than silently ignored.
    if (hasArrayForm(ctx.query, "id")) throw new AppError("invalid_request", '"id" must be given once, as ?id=<device id>');
    // A scoped token sees only the devices it may list (a per-device deny hides that device).
    sendList(ctx, (await s.devices.list(user, id)).filter((d) => p.can("ListDevices", { device: d.device })), { fields: DEVICE_FIELDS });
  });

  router.post("/v1/users/:user/devices", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    // Another account answers 404 before its body is even read, like every other route of that account.
    requireOwnAccount(ctx, user, noUser());
    const { body, sent } = createBody(objectBody(ctx, [...CLASSIC_FIELDS, ...Object.keys(NEWER_FIELDS), "name"]));
    const id = requireString(body, "device_id", DEVICE_ID_RE, "must match [a-zA-Z0-9_]{1,25}", sent("device_id"));
    authorize(ctx, user, "CreateDevice", { device: id }, noUser);
    const credentials = requireString(body, "device_credentials", undefined, undefined, sent("device_credentials"));
    if (credentials.length < 1 || credentials.length > MAX_CREDENTIALS) throw new AppError("invalid_request", `"${sent("device_credentials")}" must be 1 to ${MAX_CREDENTIALS} characters`);
    const description = optionalString(body, "device_description", MAX_DESCRIPTION, sent("device_description")) ?? "";
    const type = optionalString(body, "device_type", 32, sent("device_type")) ?? "Generic";
    const doc = await s.devices.create(user, { id, description, credentials, type });
    ctx.status = 201;
    ctx.body = s.devices.view(doc);
  });

  router.get("/v1/users/:user/devices/:device", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "ReadDevice", { device }, noDevice);
    ctx.body = s.devices.view(await s.devices.get(user, device));
  });

  router.put("/v1/users/:user/devices/:device", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "UpdateDevice", { device }, noDevice);
    // Thinger's newer names (`description`, `credentials`, `name`) as on create; mixing the shapes is a 400.
    const { body, sent } = updateBody(objectBody(ctx, ["device_description", "device_credentials", "description", "credentials", "name"]));
    const description = optionalString(body, "device_description", MAX_DESCRIPTION, sent("device_description"));
    const credentials = optionalString(body, "device_credentials", MAX_CREDENTIALS, sent("device_credentials"));
    if (credentials === "") throw new AppError("invalid_request", `"${sent("device_credentials")}" must not be empty`);
    const patch: { description?: string; credentials?: string } = {};
    if (description !== undefined) patch.description = description;
    if (credentials !== undefined) patch.credentials = credentials;
    ctx.body = s.devices.view(await s.devices.update(user, device, patch));
  });

  router.delete("/v1/users/:user/devices/:device", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "DeleteDevice", { device }, noDevice);
    const force = ctx.query.force;
    if (force !== undefined && force !== "true" && force !== "false") throw new AppError("invalid_request", '"force" must be true or false');
    await s.devices.delete(user, device, force === "true");
    ctx.body = {};
  });

  /** Live sessions of the account (flespi-style connection list). */
  router.get("/v1/users/:user/sessions", requireAuth, (ctx) => {
    const user = userParam(ctx.params.user);
    const p = authorize(ctx, user, "ListDeviceSessions", { device: "*" }, noUser);
    sendList(ctx, s.hub.list(user).filter((d) => p.can("ListDeviceSessions", { device: d.device })), { fields: SESSION_FIELDS });
  });

  /** Force a device's live session closed (close code 4003); the device may reconnect. */
  router.delete("/v1/users/:user/devices/:device/session", requireAuth, async (ctx) => {
    const user = userParam(ctx.params.user);
    const device = deviceParam(ctx.params.device);
    authorize(ctx, user, "CloseDeviceSession", { device }, noDevice);
    if (!(await s.devices.exists(user, device))) throw noDevice();
    s.devices.closeSession(user, device);
    ctx.body = {};
  });
}
