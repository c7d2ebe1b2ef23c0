import type { Command } from "../command.js";
import { list, str } from "../command.js";
import { usageError } from "../errors.js";
import { note, print, printJson, table } from "../io.js";
import { accountPath } from "./devices.js";
import type { UserTokenView } from "../../server/tokens/service.js";

interface DeviceToken {
  id: string;
  name: string;
  token: string | null;
}

/** Thinger's permission shape, as the server takes and answers it (docs: README "User access tokens"). */
type Permissions = Record<string, Record<string, "*" | Array<string | Record<string, string[] | string>>>>;

/** The server's answer shape (a type only: the CLI stays a client of the REST API). */
type UserToken = UserTokenView;

const DEVICE_OPTION = { type: "string" as const, short: "d", value: "DEVICE", description: "a device token of this device (default: user access tokens)" };

/**
 * Expiry from `30d`, `12h`, `45m`, `90s` (from now) or an ISO 8601 date; returns ms since the epoch.
 * @param now for tests
 */
export function parseExpiry(value: string, now = Date.now()): number {
  const rel = /^(\d{1,6})([smhd])$/.exec(value);
  if (rel) return now + Number(rel[1]) * { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "s" | "m" | "h" | "d"];
  const abs = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(abs)) throw usageError(`--expires "${value}": use e.g. 30d, 12h, 45m or an ISO date (2030-01-31T12:00:00Z)`);
  if (abs <= now) throw usageError(`--expires "${value}" is in the past`);
  return abs;
}

/**
 * Adds one `--allow`/`--deny` value to a permission object in Thinger's shape: `[TYPE/]ACTION[:DEVICE[:RES1,RES2]]`
 * (the type defaults to `Dashboard` for a dashboard action, else `Device`, as `tokens list` prints them)
 * (e.g. `AccessDeviceResources:nodemcu:temperature`, `ListDevices`; the device defaults to `*`), or a JSON
 * object in Thinger's shape itself (`{"Device":{"door":["AccessDeviceResources"]}}`). The server checks the rest.
 */
export function addPermission(into: Permissions, spec: string): Permissions {
  if (spec.trimStart().startsWith("{")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(spec);
    } catch {
      throw usageError(`permission ${JSON.stringify(spec.slice(0, 40))}: not valid JSON`);
    }
    for (const [type, names] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof names !== "object" || names === null || Array.isArray(names)) {
        into[type] = names as Permissions[string]; // the server answers with the exact path of the problem
        continue;
      }
      for (const [name, actions] of Object.entries(names)) merge(into, type, name, actions as Permissions[string][string]);
    }
    return into;
  }
  const [typed, target, resources, ...rest] = spec.split(":");
  // `TYPE/ACTION` as `tokens list` prints types other than Device; a dashboard action alone means its type.
  const slash = typed?.indexOf("/") ?? -1;
  const action = slash >= 0 ? typed!.slice(slash + 1) : typed;
  if (!action || rest.length > 0) throw usageError(`permission "${spec}": use [TYPE/]ACTION[:NAME[:RESOURCE,…]], e.g. AccessDeviceResources:nodemcu:temperature, or a JSON object in Thinger's shape`);
  const type = slash >= 0 ? typed!.slice(0, slash) : DASHBOARD_ACTIONS.includes(action) ? "Dashboard" : "Device";
  const list = resources ? resources.split(",").filter((r) => r !== "") : [];
  merge(into, type, target || "*", action === "*" && list.length === 0 ? "*" : [list.length > 0 ? { [action]: list } : action]);
  return into;
}

/** The actions of type Dashboard (the server's list; the CLI stays a client, so it is written out here). */
const DASHBOARD_ACTIONS = ["ReadDashboards", "WriteDashboards"];

function merge(into: Permissions, type: string, name: string, actions: Permissions[string][string]): void {
  const names = (into[type] ??= {});
  const current = names[name];
  if (current === undefined || !Array.isArray(actions)) names[name] = current === undefined || actions === "*" ? actions : current;
  else names[name] = [...(current === "*" ? ["*"] : current), ...actions];
}

function when(ms: number | null): string {
  return ms === null ? "never" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Thinger's shape, one `ACTION:DEVICE[:RESOURCES]` per permission (as --allow takes them); other types prefixed `TYPE/`. */
function describe(perms: Permissions): string {
  const out: string[] = [];
  for (const [type, names] of Object.entries(perms)) {
    const prefix = type === "Device" ? "" : `${type}/`;
    for (const [name, actions] of Object.entries(names)) {
      for (const item of actions === "*" ? ["*"] : actions) {
        if (typeof item === "string") out.push(`${prefix}${item}:${name}`);
        else for (const [action, res] of Object.entries(item)) out.push(`${prefix}${action}:${name}:${[res].flat().join(",")}`);
      }
    }
  }
  return out.join(" ");
}

export const tokensList: Command = {
  path: ["tokens", "list"],
  summary: "list user access tokens, or a device's tokens with --device",
  maxArgs: 0,
  options: { device: DEVICE_OPTION },
  async run(ctx, _args, options) {
    const device = str(options, "device");
    if (device !== undefined) {
      const tokens = await ctx.client.call<DeviceToken[]>("GET", await accountPath(ctx, "devices", device, "tokens"));
      if (ctx.json) return printJson(ctx.io, tokens);
      if (tokens.length === 0) return print(ctx.io, `No tokens for ${device}.`);
      return print(ctx.io, table([["ID", "NAME"], ...tokens.map((t) => [t.id, t.name])]));
    }
    const tokens = await ctx.client.call<UserToken[]>("GET", await accountPath(ctx, "tokens"));
    if (ctx.json) return printJson(ctx.io, tokens);
    if (tokens.length === 0) return print(ctx.io, "No user access tokens.");
    print(ctx.io, table([
      ["ID", "NAME", "ENABLED", "EXPIRES", "ALLOW", "DENY"],
      ...tokens.map((t) => [t.id, t.name, t.enabled ? "yes" : "no", when(t.expiration), describe(t.allow as Permissions), describe(t.deny as Permissions)]),
    ]));
  },
};

export const tokensCreate: Command = {
  path: ["tokens", "create"],
  summary: "create a user access token, or a device token with --device",
  description: "Prints the new token alone on stdout (so `TOKEN=$(thingrelay tokens create …)` works) and its id "
    + "on stderr. A device token opens one device (--resource limits it to some resources); a user access token "
    + "holds --allow/--deny permissions: [TYPE/]ACTION[:NAME[:RESOURCE,…]] with Thinger's actions "
    + "(AccessDeviceResources, ListDevices, GetDeviceStats, ReadDevice, …; ReadDashboards:home goes under "
    + "Dashboard) or * for every action, as tokens list prints them, or a JSON "
    + "object in Thinger's shape ('{\"Device\":{\"door\":[\"AccessDeviceResources\"]}}'). The server stores them "
    + "in Thinger's shape.",
  maxArgs: 0,
  options: {
    name: { type: "string", short: "n", value: "NAME", description: "token name (required)" },
    device: DEVICE_OPTION,
    resource: { type: "string", short: "r", multiple: true, value: "RESOURCE", description: "device token: a resource it may call (repeatable; default all)" },
    allow: { type: "string", multiple: true, value: "PERMISSION", description: "user token: a permission to grant (repeatable)" },
    deny: { type: "string", multiple: true, value: "PERMISSION", description: "user token: a permission to refuse (repeatable; wins over allow)" },
    expires: { type: "string", short: "e", value: "WHEN", description: "expiry: 30d, 12h, 45m, 90s or an ISO date (default never)" },
    disabled: { type: "boolean", description: "user token: create it disabled" },
  },
  examples: [
    'thingrelay tokens create --device nodemcu --name "wall screen" --resource temperature',
    "thingrelay tokens create --name reader --allow ListDevices --allow AccessDeviceResources:nodemcu:temperature --expires 30d",
    `thingrelay tokens create --name door --allow '{"Device":{"door":["AccessDeviceResources"]}}'`,
  ],
  async run(ctx, _args, options) {
    const name = str(options, "name");
    if (!name) throw usageError("--name is required");
    const device = str(options, "device");
    const expiresRaw = str(options, "expires");
    const expires = expiresRaw === undefined ? undefined : parseExpiry(expiresRaw);
    let created: DeviceToken | UserToken;
    if (device !== undefined) {
      if (list(options, "allow").length > 0 || list(options, "deny").length > 0 || options.disabled === true) {
        throw usageError("--allow, --deny and --disabled apply to user access tokens (no --device)");
      }
      const body: Record<string, unknown> = { token_name: name };
      const resources = list(options, "resource");
      if (resources.length > 0) body.token_resources = resources;
      if (expires !== undefined) body.token_expiration = expires;
      created = await ctx.client.call<DeviceToken>("POST", await accountPath(ctx, "devices", device, "tokens"), { json: body });
    } else {
      if (list(options, "resource").length > 0) throw usageError("--resource applies to device tokens (with --device); use --allow ACTION:DEVICE:RESOURCE");
      const body: Record<string, unknown> = {
        name, enabled: options.disabled !== true,
        allow: list(options, "allow").reduce(addPermission, {}), deny: list(options, "deny").reduce(addPermission, {}),
      };
      if (expires !== undefined) body.expiration = expires;
      created = await ctx.client.call<UserToken>("POST", await accountPath(ctx, "tokens"), { json: body });
    }
    if (ctx.json) return printJson(ctx.io, created);
    note(ctx.io, `Created ${device !== undefined ? `device token for ${device}` : "user access token"} "${created.name}" (id ${created.id}).`);
    print(ctx.io, created.token ?? "");
  },
};

export const tokensRm: Command = {
  path: ["tokens", "rm"],
  args: "<id>",
  minArgs: 1,
  maxArgs: 1,
  summary: "delete (revoke) a user access token, or a device token with --device",
  options: { device: DEVICE_OPTION },
  async run(ctx, [id], options) {
    const device = str(options, "device");
    const path = device !== undefined ? await accountPath(ctx, "devices", device, "tokens", id!) : await accountPath(ctx, "tokens", id!);
    await ctx.client.call("DELETE", path);
    if (ctx.json) printJson(ctx.io, { id, deleted: true });
    else print(ctx.io, `Deleted token ${id}.`);
  },
};
