/**
 * JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12) of every request and response body. Enumerations and
 * patterns come from the code that enforces them (error registry, actions, id patterns), so the document
 * cannot drift from the server.
 */
import { ERROR_CODES } from "../errors.js";
import { ACTIONS, DASHBOARD_ACTIONS } from "../auth/principal.js";
import { RESOURCE_KINDS } from "../gateway/protocol.js";
import { DEVICE_ID_RE, MAX_CREDENTIALS, MAX_DESCRIPTION } from "../devices/service.js";
import { PASSWORD_MAX, PASSWORD_MIN, USERNAME_RE } from "../users/service.js";
import { MAX_PERMISSIONS } from "../tokens/service.js";

export type Schema = Record<string, unknown>;
import { awaySchemas } from "./away-schemas.js";
import { dashboardsSchemas } from "./dashboards-schemas.js";

export const TOKEN_ID_PATTERN = "^[a-f0-9]{32}$";

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const int = (description?: string): Schema => (description ? { type: "integer", description } : { type: "integer" });
const nullableInt = (description: string): Schema => ({ type: ["integer", "null"], description });

/** `allow`/`deny` on input: Thinger's shape, or our earlier array shape (still accepted). */
const permissionsInput: Schema = {
  oneOf: [ref("Permissions"), { type: "array", maxItems: MAX_PERMISSIONS, items: ref("Permission"), description: "earlier form, still accepted" }],
};

/** Component schemas, by name. */
export function componentSchemas(): Record<string, Schema> {
  return {
    ErrorCode: {
      type: "string",
      enum: Object.keys(ERROR_CODES),
      description: "Stable machine-readable error code. Default HTTP status of each code:\n\n"
        + Object.entries(ERROR_CODES).map(([code, e]) => `- \`${code}\` (${e.status}): ${e.message}`).join("\n"),
    },
    Error: {
      type: "object",
      description: "The one error shape of every route (Thinger's shape plus a stable code).",
      required: ["error"],
      additionalProperties: false,
      properties: {
        error: {
          type: "object",
          required: ["code", "message"],
          additionalProperties: false,
          properties: { code: ref("ErrorCode"), message: { type: "string" } },
        },
      },
    },
    Empty: { type: "object", additionalProperties: false, maxProperties: 0, description: "An empty JSON object `{}`." },
    TokenRequest: {
      type: "object",
      required: ["grant_type"],
      description: "RFC 6749 password (§4.3) or refresh-token (§6) grant. Form-urlencoded; JSON also accepted.",
      properties: {
        grant_type: { type: "string", enum: ["password", "refresh_token"] },
        username: { type: "string", maxLength: 64, description: "password grant" },
        password: { type: "string", maxLength: 1024, format: "password", description: "password grant" },
        refresh_token: { type: "string", description: "refresh_token grant; rotates on every use" },
      },
    },
    TokenResponse: {
      type: "object",
      required: ["access_token", "expires_in", "refresh_token", "scope", "token_type"],
      additionalProperties: false,
      properties: {
        access_token: { type: "string", description: "JWT (HS256), payload `{usr,iat,exp}`" },
        expires_in: { type: "integer", description: "seconds (7200)" },
        refresh_token: { type: "string", description: "opaque; lasts about 60 days and rotates on every use" },
        scope: { type: "null" },
        token_type: { type: "string", const: "bearer" },
      },
    },
    RevokeRequest: {
      type: "object",
      required: ["token"],
      description: "RFC 7009: revoke a refresh token (and its family). Unknown tokens also answer 200.",
      properties: { token: { type: "string" } },
    },
    Me: {
      type: "object",
      required: ["user", "token_kind", "admin", "expires_at"],
      additionalProperties: false,
      properties: {
        user: { type: "string" },
        token_kind: { type: "string", enum: ["session", "device_token", "user_token"] },
        admin: { type: "boolean" },
        expires_at: nullableInt("expiry of the presented token, ms since the epoch"),
      },
    },
    NewUser: {
      type: "object",
      required: ["username", "password"],
      additionalProperties: false,
      properties: {
        username: { type: "string", pattern: USERNAME_RE.source },
        password: { type: "string", format: "password", minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX },
        revoke_tokens: { type: "boolean", default: false, description: "Also delete every device and user token of the account." },
      },
    },
    UserEnabled: {
      type: "object", required: ["enabled"], additionalProperties: false, properties: { enabled: { type: "boolean" } },
    },
    UserState: {
      type: "object", required: ["username", "enabled"], additionalProperties: false,
      properties: { username: { type: "string" }, enabled: { type: "boolean" } },
    },
    UserCreated: {
      type: "object", required: ["username"], additionalProperties: false, properties: { username: { type: "string" } },
    },
    PasswordChange: {
      type: "object",
      required: ["current_password", "password"],
      additionalProperties: false,
      properties: {
        current_password: { type: "string", format: "password" },
        password: { type: "string", format: "password", minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX },
      },
    },
    Device: {
      type: "object",
      required: ["device", "description", "type", "connection"],
      additionalProperties: false,
      properties: {
        device: { type: "string", pattern: DEVICE_ID_RE.source, examples: ["nodemcu"] },
        description: { type: "string", examples: ["living room"] },
        type: { type: "string", examples: ["Generic"] },
        connection: {
          type: "object",
          required: ["active", "ts"],
          additionalProperties: false,
          properties: {
            active: { type: "boolean" },
            ts: nullableInt("ms since the epoch of the current (or last) connection"),
          },
        },
      },
    },
    NewDevice: {
      description: "Thinger's classic field names, or its newer ones (`device`, `credentials`, `description`, "
        + "`type`, `name`); not both in one body.",
      oneOf: [
        {
          type: "object",
          required: ["device_id", "device_credentials"],
          additionalProperties: false,
          properties: {
            device_id: { type: "string", pattern: DEVICE_ID_RE.source, examples: ["nodemcu"] },
            device_description: { type: "string", maxLength: MAX_DESCRIPTION },
            device_credentials: { type: "string", minLength: 1, maxLength: MAX_CREDENTIALS, format: "password" },
            device_type: { type: "string", maxLength: 32, default: "Generic" },
          },
        },
        {
          type: "object",
          required: ["device", "credentials"],
          additionalProperties: false,
          properties: {
            device: { type: "string", pattern: DEVICE_ID_RE.source, examples: ["nodemcu"] },
            description: { type: "string", maxLength: MAX_DESCRIPTION },
            name: { type: "string", maxLength: MAX_DESCRIPTION, description: "used as the description when there is none" },
            credentials: { type: "string", minLength: 1, maxLength: MAX_CREDENTIALS, format: "password" },
            type: { type: "string", maxLength: 32, default: "Generic" },
          },
        },
      ],
    },
    User: {
      type: "object",
      required: ["username", "admin", "created_ts", "password_changed_ts"],
      additionalProperties: false,
      properties: {
        username: { type: "string", pattern: USERNAME_RE.source },
        admin: { type: "boolean" },
        created_ts: int("ms since the epoch"),
        password_changed_ts: int("ms since the epoch"),
      },
    },
    AccountExport: {
      type: "object",
      description: "One section per part of the account; features that keep per-account data add theirs. "
        + "No secret or hash anywhere.",
      required: ["format", "version", "exported_ts", "user"],
      properties: {
        format: { const: "thingrelay-account-export" },
        version: { const: 1 },
        exported_ts: int("ms since the epoch"),
        user: ref("User"),
        devices: {
          type: "array",
          items: {
            type: "object",
            required: ["device", "description", "type", "created_ts", "last_connection_ts"],
            properties: {
              device: { type: "string" }, description: { type: "string" }, type: { type: "string" },
              created_ts: int("ms since the epoch"), last_connection_ts: nullableInt("ms since the epoch"),
            },
          },
        },
        device_tokens: {
          type: "array",
          items: {
            type: "object",
            required: ["id", "device", "name", "resources", "created_ts", "expiration"],
            properties: {
              id: { type: "string" }, device: { type: "string" }, name: { type: "string" },
              resources: { type: ["array", "null"], items: { type: "string" } },
              created_ts: int("ms since the epoch"), expiration: nullableInt("ms since the epoch"),
            },
          },
        },
        user_tokens: { type: "array", items: { type: "object", description: "a UserToken without `token`" } },
        properties: {
          type: "array",
          items: {
            type: "object", required: ["device", "property", "value", "updated_ts"],
            properties: { device: { type: "string" }, property: { type: "string" }, value: {}, updated_ts: int("ms since the epoch") },
          },
        },
        calls: { type: "array", items: { type: "object", description: "a queued call's status object with its `device`" } },
      },
    },
    ResourceApi: {
      type: "object",
      required: ["kind"],
      additionalProperties: false,
      properties: {
        kind: { type: "string", enum: [...RESOURCE_KINDS] },
        in: { description: "input/io resources whose device reports it: the current state" },
        out: { description: "output resources: the current value" },
      },
    },
    DeviceUpdate: {
      type: "object",
      additionalProperties: false,
      description: "Partial update; new credentials close the device's live session.",
      properties: {
        device_description: { type: "string", maxLength: MAX_DESCRIPTION },
        device_credentials: { type: "string", minLength: 1, maxLength: MAX_CREDENTIALS, format: "password" },
      },
    },
    Session: {
      type: "object",
      required: ["device", "ip_address", "connected_ts", "rx_bytes", "tx_bytes", "inflight"],
      additionalProperties: false,
      properties: {
        device: { type: "string" },
        ip_address: { type: "string" },
        connected_ts: int("ms since the epoch"),
        rx_bytes: int(),
        tx_bytes: int(),
        inflight: int("calls waiting for the device's answer"),
        buffered_bytes: int("bytes queued to the device's socket"),
      },
    },
    DeviceStats: {
      type: "object",
      required: ["connected", "connected_ts", "ip_address", "rx_bytes", "tx_bytes"],
      additionalProperties: false,
      properties: {
        connected: { type: "boolean" },
        connected_ts: nullableInt("ms since the epoch"),
        ip_address: { type: ["string", "null"] },
        rx_bytes: int(),
        tx_bytes: int(),
      },
    },
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
    ResourceOutput: {
      type: "object",
      required: ["out"],
      additionalProperties: false,
      properties: { out: { description: "the device's answer: any JSON value" } },
    },
    ResourceInput: {
      description: 'Thinger\'s body: `{"in": <any JSON>}`. Any other JSON body is passed whole as the input '
        + '(Thinger\'s own example posts `{"value1":20,"value2":10}` to an io resource).',
      examples: [{ in: true }, { value1: 20, value2: 10 }],
    },
    DeviceApi: {
      type: "object",
      description: "The device's announced resources, by name.",
      additionalProperties: {
        type: "object",
        required: ["kind"],
        additionalProperties: false,
        properties: { kind: { type: "string", enum: [...RESOURCE_KINDS] } },
      },
    },
    DeviceEvent: {
      type: "object",
      description: "Data of the account stream's events (unnamed SSE events): `type` is `online` or `offline`.",
      required: ["type", "device", "ts"],
      properties: {
        type: { type: "string", enum: ["online", "offline"] },
        device: { type: "string" },
        ts: int("ms since the epoch"),
        ip: { type: "string", description: "online events: the device's address" },
      },
    },
    DataEvent: {
      type: "object",
      description: "Data of a resource stream's events (unnamed SSE events).",
      required: ["out", "ts"],
      additionalProperties: false,
      properties: { out: { description: "the resource's value: any JSON" }, ts: int("ms since the epoch") },
    },
    EndEvent: {
      type: "object",
      description: "Data of the final `end` event when the server ends a stream.",
      required: ["reason"],
      additionalProperties: false,
      properties: { reason: { type: "string", description: "e.g. token_revoked, token_expired, forbidden, shutdown" } },
    },
    Health: { type: "object", required: ["status"], additionalProperties: false, properties: { status: { const: "ok" } } },
    Ready: {
      type: "object",
      required: ["status", "store"],
      additionalProperties: false,
      properties: { status: { const: "ready" }, store: { type: "string", description: "store kind (nedb or mongodb)" } },
    },
    ...awaySchemas(),
    ...dashboardsSchemas(),
  };
}
