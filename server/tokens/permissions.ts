/**
 * User-token permissions in Thinger's shape, and the flat list the principal checks.
 *
 * Thinger writes a token's `allow` and `deny` as `{Type|"*": {name|"*": "*" | [action | {action: resource|[resources]}]}}`,
 * e.g. `{"Device": {"door": ["AccessDeviceResources"], "*": [{"AccessDeviceResources": ["temperature"]}]}, "*": {"*": "*"}}`.
 * Every action thingrelay knows concerns a device, so the types are `Device` and `*` (any type: here the same
 * thing), and a name is a device id or `*`. The store keeps the flat list ({@link Permission}[]): one entry per
 * (type, device, action[, resources]); {@link toThinger} turns it back into the object on the way out.
 *
 * Our earlier array shape (`[{"action","target"?,"resources"?}]`) is still accepted on input; answers always use
 * Thinger's shape. See README "User access tokens".
 */
import { AppError } from "../errors.js";
import type { Action, Permission } from "../auth/permission.js";
import { ACTIONS, DASHBOARD_ACTIONS } from "../auth/principal.js";
import { DASHBOARD_ID_RE } from "../dashboards/service.js";
import { isResourceName } from "../gateway/protocol.js";
import { DEVICE_ID_RE } from "../devices/service.js";

/** Most permission entries (after flattening) in one `allow` or `deny`. */
export const MAX_PERMISSIONS = 64;

/** Resource types a permission may name; `*` is any type. */
export const PERMISSION_TYPES = ["Device", "Dashboard", "*"] as const;
export type PermissionType = (typeof PERMISSION_TYPES)[number];

/** One item of a name's action list: an action, or `{action: resource | [resources]}`. */
export type ThingerActionItem = string | Record<string, string[]>;
/** `{Type|"*": {name|"*": "*" | [items]}}`. */
export type ThingerPermissions = Record<string, Record<string, "*" | ThingerActionItem[]>>;

function bad(message: string): AppError {
  return new AppError("invalid_request", message);
}

/** A key as it may appear in a message: quoted, short, printable. */
function shown(key: string): string {
  const q = JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
  return q.replace(/[^\x20-\x7e]/g, "?");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isAction(v: unknown): v is Action | "*" {
  return v === "*" || ACTIONS.includes(v as Action) || DASHBOARD_ACTIONS.includes(v as Action);
}

const ACTION_LIST = `"*" or one of ${[...ACTIONS, ...DASHBOARD_ACTIONS].join(", ")}`;

/** A resource list of the per-resource form: a name, `*` (all), or an array of names. Null = all. */
function parseResourceList(v: unknown, path: string): string[] | null {
  if (v === "*") return null;
  if (typeof v === "string") {
    if (!isResourceName(v)) throw bad(`"${path}" is not a valid resource name`);
    return [v];
  }
  if (!Array.isArray(v)) throw bad(`"${path}" must be a resource name, "*" or an array of resource names`);
  if (v.length === 0 || v.length > MAX_PERMISSIONS) throw bad(`"${path}" must hold 1 to ${MAX_PERMISSIONS} resource names`);
  const out: string[] = [];
  v.forEach((r, i) => {
    if (typeof r !== "string" || !isResourceName(r)) throw bad(`"${path}[${i}]" must be a resource name`);
    if (!out.includes(r)) out.push(r);
  });
  return out;
}

/** Thinger's object shape → flat list. Every error names the JSON path of the offending element. */
function parseThinger(v: Record<string, unknown>, field: string): Permission[] {
  const out: Permission[] = [];
  const add = (p: Permission) => {
    if (out.length >= MAX_PERMISSIONS) throw bad(`"${field}" holds more than ${MAX_PERMISSIONS} permissions`);
    const key = JSON.stringify(p);
    if (!out.some((q) => JSON.stringify(q) === key)) out.push(p);
  };
  for (const [type, names] of Object.entries(v)) {
    if (!PERMISSION_TYPES.includes(type as PermissionType)) {
      throw bad(`"${field}": ${shown(type)} is not a resource type here: expected "Device", "Dashboard" or "*"`);
    }
    const tpath = `${field}.${type}`;
    if (!isPlainObject(names)) throw bad(`"${tpath}" must be an object of device ids (or "*") to actions`);
    for (const [name, actions] of Object.entries(names)) {
      if (type === "Dashboard") {
        if (name !== "*" && !DASHBOARD_ID_RE.test(name)) throw bad(`"${tpath}": ${shown(name)} is not a dashboard id ([a-zA-Z0-9_-]{1,32}) or "*"`);
      } else if (name !== "*" && !DEVICE_ID_RE.test(name) && !(type === "*" && DASHBOARD_ID_RE.test(name))) {
        throw bad(`"${tpath}": ${shown(name)} is not a device id ([a-zA-Z0-9_]{1,25}) or "*"`);
      }
      const npath = `${tpath}.${name}`;
      const base = type === "*" ? { type: "*" as const, target: name } : type === "Dashboard" ? { type: "Dashboard" as const, target: name } : { target: name };
      /** Dashboard actions belong to type Dashboard, the others to Device ("*" takes both). */
      const fits = (action: string, path: string) => {
        if (action === "*" || type === "*") return;
        const dash = DASHBOARD_ACTIONS.includes(action as Action);
        if (type === "Dashboard" && !dash) throw bad(`"${path}": ${shown(action)} is not a dashboard action: expected "*", ${DASHBOARD_ACTIONS.join(" or ")}`);
        if (type === "Device" && dash) throw bad(`"${path}": ${shown(action)} concerns dashboards: write it under "Dashboard"`);
      };
      if (actions === "*") {
        add({ ...base, action: "*" });
        continue;
      }
      if (!Array.isArray(actions)) throw bad(`"${npath}" must be "*" or an array of actions`);
      if (actions.length > MAX_PERMISSIONS) throw bad(`"${field}" holds more than ${MAX_PERMISSIONS} permissions`);
      actions.forEach((item, i) => {
        const ipath = `${npath}[${i}]`;
        if (typeof item === "string") {
          if (!isAction(item)) throw bad(`"${ipath}": ${shown(item)} is not an action: expected ${ACTION_LIST}`);
          fits(item, ipath);
          add({ ...base, action: item });
          return;
        }
        if (!isPlainObject(item) || Object.keys(item).length === 0) {
          throw bad(`"${ipath}" must be an action or an object {action: resource | [resources]}`);
        }
        for (const [action, resources] of Object.entries(item)) {
          if (!isAction(action)) throw bad(`"${ipath}": ${shown(action)} is not an action: expected ${ACTION_LIST}`);
          fits(action, ipath);
          const list = parseResourceList(resources, `${ipath}.${action}`);
          if (list === null) {
            add({ ...base, action });
            continue;
          }
          if (action !== "AccessDeviceResources") throw bad(`"${ipath}.${action}": only AccessDeviceResources can be limited to resources`);
          add({ ...base, action, resources: list });
        }
      });
    }
  }
  return out;
}

/** Our earlier array shape `[{"action","target"?,"resources"?}]` → flat list (still accepted on input). */
function parseArray(v: unknown[], field: string): Permission[] {
  if (v.length > MAX_PERMISSIONS) throw bad(`"${field}" holds more than ${MAX_PERMISSIONS} permissions`);
  return v.map((p, i) => {
    const path = `${field}[${i}]`;
    if (!isPlainObject(p)) throw bad(`"${path}" must be an object`);
    const extra = Object.keys(p).filter((k) => !["action", "target", "resources"].includes(k));
    if (extra.length > 0) throw bad(`"${path}" has unknown field ${shown(extra[0]!)}`);
    if (!isAction(p.action)) throw bad(`"${path}.action" must be ${ACTION_LIST}`);
    if (DASHBOARD_ACTIONS.includes(p.action as Action)) throw bad(`"${path}.action": dashboard actions are written in Thinger's shape, under "Dashboard"`);
    const target = p.target ?? "*";
    if (target !== "*" && (typeof target !== "string" || !DEVICE_ID_RE.test(target))) throw bad(`"${path}.target" must be a device id or "*"`);
    const perm: Permission = { action: p.action, target: target as string };
    if (p.resources !== undefined) {
      if (p.action !== "AccessDeviceResources") throw bad(`"${path}.resources" applies only to AccessDeviceResources`);
      if (!Array.isArray(p.resources)) throw bad(`"${path}.resources" must be an array of resource names`);
      perm.resources = parseResourceList(p.resources, `${path}.resources`) ?? undefined;
    }
    return perm;
  });
}

/**
 * Parses a token's `allow` or `deny`: Thinger's object shape, or our earlier array shape. Absent = nothing.
 * Bad input answers 400 `invalid_request` naming the path of the offending element (`allow.Device.door[1]`).
 */
export function parsePermissions(v: unknown, field: string): Permission[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return parseArray(v, field);
  if (isPlainObject(v)) return parseThinger(v, field);
  throw bad(`"${field}" must be an object {Type|"*": {device|"*": "*" | [action | {action: resource|[resources]}]}}`);
}

/**
 * Flat list → Thinger's object shape, grouped by type then device in the order first met. A name whose only
 * action is `*` answers `"*"`; resource limits always come back as arrays.
 */
export function toThinger(perms: readonly Permission[]): ThingerPermissions {
  // Maps, then Object.fromEntries: a device may be called "__proto__", which an assignment would not keep.
  const types = new Map<string, Map<string, ThingerActionItem[]>>();
  for (const p of perms) {
    const type = p.type ?? "Device";
    let names = types.get(type);
    if (!names) types.set(type, (names = new Map()));
    let items = names.get(p.target);
    if (!items) names.set(p.target, (items = []));
    items.push(p.resources !== undefined ? { [p.action]: [...p.resources] } : p.action);
  }
  return Object.fromEntries([...types].map(([type, names]) => [
    type,
    Object.fromEntries([...names].map(([name, items]) => [name, items.length === 1 && items[0] === "*" ? "*" : items])),
  ])) as ThingerPermissions;
}
