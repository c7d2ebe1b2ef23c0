/** OpenAPI component schemas: devices, their sessions and stats, account export. */
import { RESOURCE_KINDS } from "../../gateway/protocol.js";
import { DEVICE_ID_RE, MAX_CREDENTIALS, MAX_DESCRIPTION } from "../../devices/service.js";
import { USERNAME_RE } from "../../users/service.js";
import { type Schema, int, nullableInt, ref } from "./helpers.js";

export function deviceSchemas(): Record<string, Schema> {
  return { ...registrySchemas(), ...accountSchemas(), ...liveDeviceSchemas() };
}

/** The device registry. */
function registrySchemas(): Record<string, Schema> {
  return {
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
  };
}

/** An account as a whole: its user record and export. */
function accountSchemas(): Record<string, Schema> {
  return {
    User: {
      type: "object",
      required: ["username", "admin", "created_ts", "password_changed_ts", "enabled"],
      additionalProperties: false,
      properties: {
        username: { type: "string", pattern: USERNAME_RE.source },
        admin: { type: "boolean" },
        created_ts: int("ms since the epoch"),
        password_changed_ts: int("ms since the epoch"),
        enabled: { type: "boolean", description: "false once an administrator disabled the account" },
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
  };
}

/** A device's resources, settings, session and stats. */
function liveDeviceSchemas(): Record<string, Schema> {
  return {
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
      description: "Partial update; new credentials close the device's live session. Thinger's newer names "
        + "(`description`, `credentials`, `name` as the description) work too; mixing the two shapes answers 400.",
      properties: {
        device_description: { type: "string", maxLength: MAX_DESCRIPTION },
        device_credentials: { type: "string", minLength: 1, maxLength: MAX_CREDENTIALS, format: "password" },
        description: { type: "string", maxLength: MAX_DESCRIPTION },
        credentials: { type: "string", minLength: 1, maxLength: MAX_CREDENTIALS, format: "password" },
        name: { type: "string", maxLength: MAX_DESCRIPTION },
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
  };
}
