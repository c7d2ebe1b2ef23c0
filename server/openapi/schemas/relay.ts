/** OpenAPI component schemas: resource calls, streams and health. */
import { RESOURCE_KINDS } from "../../gateway/protocol.js";
import { type Schema, int } from "./helpers.js";

export function relaySchemas(): Record<string, Schema> {
  return {
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
  };
}
