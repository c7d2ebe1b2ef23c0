/** OpenAPI schemas of issue 18: device properties and queued calls. */
import { PROPERTY_LIMITS } from "../properties/service.js";
import type { Schema } from "./schemas.js";

export function awaySchemas(): Record<string, Schema> {
  return {
    Property: {
      type: "object",
      required: ["property", "value", "updated_ts"],
      additionalProperties: false,
      description: "A device property (Thinger v3): a JSON value kept server-side.",
      properties: {
        property: { type: "string", description: "name (resource-name rules; may be nested)" },
        value: { description: `any JSON value, at most ${PROPERTY_LIMITS.maxValueBytes} bytes as JSON and ${PROPERTY_LIMITS.maxDepth} levels deep` },
        updated_ts: { type: "integer", description: "last change (ms since the epoch)" },
      },
    },
    PropertyWrite: {
      type: "object",
      required: ["value"],
      additionalProperties: false,
      properties: { value: { description: "any JSON value" } },
      examples: [{ value: { target: 21.5, mode: "eco" } }],
    },
    PropertyCreate: {
      type: "object",
      required: ["property", "value"],
      additionalProperties: false,
      properties: {
        property: { type: "string", minLength: 1, description: "name (resource-name rules; may be nested)" },
        value: { description: "any JSON value" },
      },
      examples: [{ property: "setpoint", value: { target: 21.5, mode: "eco" } }],
    },
    QueuedCall: {
      type: "object",
      required: ["id", "resource", "status", "created_ts", "done_ts"],
      additionalProperties: false,
      description: "A call sent with `Prefer: respond-async`.",
      properties: {
        id: { type: "string", pattern: "^[A-Za-z0-9_-]{16}$" },
        resource: { type: "string" },
        status: { type: "string", enum: ["queued", "running", "succeeded", "failed", "expired", "cancelled"] },
        out: { description: "succeeded calls of output and io resources: the device's answer" },
        error: {
          type: "object",
          required: ["code", "message", "status"],
          additionalProperties: false,
          description: "failed calls: the error the synchronous call would have answered (`device_disconnected`, "
            + "`device_timeout`, `device_error`, `resource_not_found`…), or `call_interrupted` when the server stopped while it ran",
          properties: { code: { type: "string" }, message: { type: "string" }, status: { type: "integer" } },
        },
        created_ts: { type: "integer" },
        done_ts: { type: ["integer", "null"], description: "when it reached a final state" },
      },
    },
  };
}
