import type { Action, Permission } from "./permission.js";

export interface Target {
  /**
   * Device id the action concerns, when it concerns one. `"*"` asks "on at least one device?" (list and
   * stream routes); such routes must then filter every item through `can(action, { device })`.
   */
  device?: string;
  /** Normalised resource name (AccessDeviceResources only). */
  resource?: string;
}

/** Who is calling, and the one place that answers whether they may act. */
export interface Principal {
  readonly user: string;
  readonly kind: "session" | "device_token" | "user_token";
  readonly admin: boolean;
  /** Token id (jti) or refresh family, for rate limiting and stream revocation. */
  readonly tokenRef: string;
  /** Expiry of the presented token (ms), if any: streams end then. */
  readonly expiresAt: number | null;
  can(action: Action, target?: Target): boolean;
  /** Only the account's own password-grant sessions may create, widen or delete tokens and users. */
  readonly canManageTokens: boolean;
}

export class SessionPrincipal implements Principal {
  readonly kind = "session";
  readonly canManageTokens = true;
  constructor(readonly user: string, readonly admin: boolean, readonly tokenRef: string, readonly expiresAt: number) {}
  can(): boolean {
    return true;
  }
}

/** Device tokens open one device: its resources (limited to `res`), its `/api`, its stats and (without `res`) reading its properties. */
export class DeviceTokenPrincipal implements Principal {
  readonly kind = "device_token";
  readonly admin = false;
  readonly canManageTokens = false;
  constructor(
    readonly user: string,
    readonly device: string,
    readonly resources: readonly string[] | null,
    readonly tokenRef: string,
    readonly expiresAt: number | null,
  ) {}
  can(action: Action, target: Target = {}): boolean {
    if (target.device !== this.device) return false;
    switch (action) {
      case "AccessDeviceResources":
        return target.resource !== undefined && (this.resources === null || this.resources.includes(target.resource));
      case "ListDeviceResources":
      case "GetDeviceStats":
        return true;
      case "ReadDeviceProperties":
        // Properties are device-wide configuration: only a token not limited to some resources reads them;
        // no device token writes them (issue 18, docs/security.md).
        return this.resources === null;
      default:
        return false;
    }
  }
}

function matches(p: Permission, action: Action, target: Target): boolean {
  if (!typeCovers(p, action)) return false;
  if (p.action !== "*" && p.action !== action) return false;
  if (p.target !== "*" && p.target !== target.device) return false;
  if (p.resources !== undefined && action === "AccessDeviceResources") {
    // A resource-limited allow covers only those resources; a resource-limited deny removes only those.
    if (target.resource === undefined) return false;
    return p.resources.includes(target.resource);
  }
  return true;
}

/** User access tokens: Thinger's allow/deny model. Deny wins; no matching allow means no access. */
export class UserTokenPrincipal implements Principal {
  readonly kind = "user_token";
  readonly admin = false;
  readonly canManageTokens = false;
  constructor(
    readonly user: string,
    readonly allow: readonly Permission[],
    readonly deny: readonly Permission[],
    readonly tokenRef: string,
    readonly expiresAt: number | null,
  ) {}
  can(action: Action, target: Target = {}): boolean {
    if (target.device === "*") {
      // Some device may qualify unless a deny covers every device; the route filters item by item.
      if (this.deny.some((p) => typeCovers(p, action) && (p.action === "*" || p.action === action) && p.target === "*" && p.resources === undefined)) return false;
      return this.allow.some((p) => typeCovers(p, action) && (p.action === "*" || p.action === action));
    }
    if (this.deny.some((p) => matches(p, action, target))) return false;
    return this.allow.some((p) => matches(p, action, target));
  }
}

/** Actions a user token may name, with the ones that take a device target. */
export const ACTIONS: readonly Action[] = [
  "AccessDeviceResources", "ListDevices", "GetDeviceStats", "ListDeviceResources", "ReadDevice", "CreateDevice",
  "UpdateDevice", "DeleteDevice", "CreateDeviceToken", "ListDeviceTokens", "DeleteDeviceToken",
  "ListDeviceSessions", "CloseDeviceSession", "ReadEvents", "ReadDeviceProperties", "WriteDeviceProperties",
];

/** Actions on dashboards (type "Dashboard", the name is a dashboard id); {@link ACTIONS} are the device actions. */
export const DASHBOARD_ACTIONS: readonly Action[] = ["ReadDashboards", "WriteDashboards"];

/** A permission of type "Device" (absent) covers device actions only, one of type "Dashboard" dashboard actions only. */
function typeCovers(p: Permission, action: Action): boolean {
  if (p.type === "*") return true;
  return (p.type === "Dashboard") === DASHBOARD_ACTIONS.includes(action);
}
