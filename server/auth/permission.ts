/**
 * Authorization vocabulary: the actions a principal may be allowed, and one allow/deny entry. The store keeps
 * user tokens' lists in this shape (server/store/repos.ts holds only the document); server/auth/principal.ts
 * answers with it, server/tokens/permissions.ts converts it from and to Thinger's shape.
 */
export type Action =
  | "AccessDeviceResources" | "ListDevices" | "GetDeviceStats" | "ListDeviceResources" | "ReadDevice"
  | "CreateDevice" | "UpdateDevice" | "DeleteDevice" | "CreateDeviceToken" | "ListDeviceTokens"
  | "DeleteDeviceToken" | "ListDeviceSessions" | "CloseDeviceSession" | "ReadEvents"
  | "ReadDeviceProperties" | "WriteDeviceProperties"
  // Issue 19: console dashboards; the target is the dashboard id (type "Dashboard" in Thinger's shape).
  | "ReadDashboards" | "WriteDashboards";

/** One entry of a user token's allow/deny list; the API shows the list in Thinger's shape (server/tokens/permissions.ts). */
export interface Permission {
  /** Thinger's resource type: absent = "Device", "Dashboard" (dashboard actions, target = dashboard id), "*" = any type. */
  type?: "*" | "Dashboard";
  action: Action | "*";
  /** A device id or "*". */
  target: string;
  /** For AccessDeviceResources: the resources allowed (or denied); absent = all. */
  resources?: string[];
}
