/** OpenAPI component schemas: device and user access tokens, permissions. */
import { ACTIONS, DASHBOARD_ACTIONS } from "../../auth/principal.js";
import { MAX_PERMISSIONS } from "../../tokens/service.js";
import { type Schema, TOKEN_ID_PATTERN, int, nullableInt, permissionsInput, ref } from "./helpers.js";

export function tokenSchemas(): Record<string, Schema> {
  return { ...deviceTokenSchemas(), ...permissionSchemas(), ...userTokenSchemas() };
}

/** Device tokens. */
function deviceTokenSchemas(): Record<string, Schema> {
  return {
    DeviceTokenRequest: {
      type: "object",
      required: ["token_name"],
      additionalProperties: false,
      properties: {
        token_name: { type: "string", minLength: 1, maxLength: 64 },
        token_resources: {
          type: ["array", "null"], maxItems: MAX_PERMISSIONS, items: { type: "string" },
          description: "resources the token may call; absent or null = all of the device's resources",
        },
        token_expiration: nullableInt("expiry, ms since the epoch (UTC); absent or null = never"),
      },
    },
    DeviceToken: {
      type: "object",
      required: ["id", "name", "token"],
      additionalProperties: false,
      properties: {
        id: { type: "string", pattern: TOKEN_ID_PATTERN },
        name: { type: "string" },
        token: {
          type: ["string", "null"],
          description: "JWT `{dev,usr,jti,iat,exp?,res?}`; null when listed with a scoped token",
        },
      },
    },
  };
}

/** User-token permissions (Thinger's shape and one flat entry). */
function permissionSchemas(): Record<string, Schema> {
  return {
    Permissions: {
      type: "object",
      description: "A user token's `allow` or `deny` in Thinger's shape: `{Type|\"*\": {device|\"*\": \"*\" | "
        + "[action | {action: resource|[resources]}]}}`. The types are `Device` (a name is a device id or `*`), "
        + "`Dashboard` (a name is a dashboard id or `*`; actions `ReadDashboards`, `WriteDashboards`) and `*` (any type); `\"*\"` as a name's value, or in its list, is every "
        + "action; `{\"AccessDeviceResources\": [\"temperature\"]}` limits that action to some resources (a name, a "
        + `list, or \"*\" for all). At most ${MAX_PERMISSIONS} permissions. Deny wins over allow; no matching allow `
        + "means no access.",
      propertyNames: { enum: ["Device", "Dashboard", "*"] },
      additionalProperties: {
        type: "object",
        propertyNames: { pattern: "^(\\*|[a-zA-Z0-9_-]{1,32})$" },
        additionalProperties: {
          oneOf: [
            { const: "*", description: "every action" },
            {
              type: "array",
              items: {
                oneOf: [
                  { type: "string", enum: ["*", ...ACTIONS, ...DASHBOARD_ACTIONS] },
                  {
                    type: "object",
                    minProperties: 1,
                    description: "an action limited to resources (AccessDeviceResources), or `\"*\"` for all",
                    propertyNames: { enum: ["*", ...ACTIONS, ...DASHBOARD_ACTIONS] },
                    additionalProperties: {
                      oneOf: [{ type: "string" }, { type: "array", minItems: 1, maxItems: MAX_PERMISSIONS, items: { type: "string" } }],
                    },
                  },
                ],
              },
            },
          ],
        },
      },
      examples: [{ Device: { door: ["AccessDeviceResources"], "*": [{ AccessDeviceResources: ["temperature"] }] }, "*": { d2: ["ReadDevice"] } }],
    },
    Permission: {
      type: "object",
      description: "Our earlier array form of a permission, still accepted on input (answers use Thinger's shape, Permissions).",
      required: ["action"],
      additionalProperties: false,
      properties: {
        action: { type: "string", enum: ["*", ...ACTIONS] },
        target: { type: "string", description: 'a device id or "*"', default: "*" },
        resources: { type: "array", items: { type: "string" }, description: "AccessDeviceResources only" },
      },
    },
  };
}

/** User access tokens. */
function userTokenSchemas(): Record<string, Schema> {
  return {
    UserTokenRequest: {
      type: "object",
      required: ["name"],
      additionalProperties: false,
      properties: {
        name: { type: "string", minLength: 1, maxLength: 64 },
        enabled: { type: "boolean", default: true },
        expiration: nullableInt("expiry, ms since the epoch (UTC); absent or null = never"),
        allow: permissionsInput,
        deny: permissionsInput,
      },
    },
    UserTokenUpdate: {
      type: "object",
      additionalProperties: false,
      properties: {
        name: { type: "string", minLength: 1, maxLength: 64 },
        enabled: { type: "boolean" },
        expiration: nullableInt("expiry, ms since the epoch (UTC); null = never"),
        allow: permissionsInput,
        deny: permissionsInput,
      },
    },
    UserToken: {
      type: "object",
      required: ["id", "name", "token", "enabled", "expiration", "allow", "deny", "created_ts"],
      additionalProperties: false,
      properties: {
        id: { type: "string", pattern: TOKEN_ID_PATTERN },
        name: { type: "string" },
        token: { type: "string", description: "JWT `{usr,jti,iat}`" },
        enabled: { type: "boolean" },
        expiration: nullableInt("ms since the epoch"),
        allow: ref("Permissions"),
        deny: ref("Permissions"),
        created_ts: int("ms since the epoch"),
      },
    },
  };
}
