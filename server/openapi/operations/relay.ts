/** OpenAPI operations: calls relayed to device resources, and their streams. */
import { ref } from "../schemas.js";
import { AUTH, BODY, ok, type Operation, SSE, STREAM_NOTE, v2 } from "../operation.js";

export const RELAY_OPERATIONS: Operation[] = [
  // ---- relay ----
  {
    method: "get", path: `${v2}/api`, operationId: "getDeviceApi", tag: "relay", params: ["user", "device"],
    summary: "The device's resources and their kinds",
    description: "JSON only: an `Accept` without `application/json` (or a wildcard covering it), such as `text/event-stream`, answers 406 `not_acceptable`.",
    ok: [ok("Resources by name.", ref("DeviceApi"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_offline", "not_acceptable"],
  },
  {
    method: "get", path: `${v2}/{resource}/api`, operationId: "getResourceApi", tag: "relay", params: ["user", "device", "resource", "timeout"],
    summary: "One resource: its kind and current state",
    description: "Thinger's resource API: `{\"kind\"}` plus, for an **output**, its current value `out` (the "
      + "device runs it), and for an **input** or **io** resource whose device reports its state (SDK: "
      + "`device.input(name, handler, { state })`), the state `in`, read without running the handler. A device "
      + "that has not described its resources answers 404 `resource_not_found`. JSON only: an `Accept` without "
      + "`application/json` (or a wildcard covering it), such as `text/event-stream`, answers 406 `not_acceptable`.",
    ok: [ok("The resource.", ref("ResourceApi"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_offline", "resource_not_found", "not_acceptable",
      "device_busy", "device_disconnected", "device_timeout"],
    deviceError: true,
  },
  {
    method: "get", path: `${v2}/{resource}`, operationId: "callResource", tag: "relay",
    params: ["user", "device", "resource", "timeout", "interval", "lastEventId"],
    summary: "Call an output or run resource",
    description: "An **output** resource answers `{\"out\": <json>}`; a **run** resource answers 200 with an "
      + "empty body. With `Accept: text/event-stream`, a stream of the resource's values instead "
      + "(see docs/streams.md). On a resource the device described as an **input**: 405 `method_not_allowed` "
      + "with `Allow: POST`, and its handler does not run. " + STREAM_NOTE,
    ok: [ok("The device's answer (no body for a run resource).", ref("ResourceOutput"), {
      sse: {
        description: "SSE stream of an output or io resource: unnamed events (`id:` + `data:`, what "
          + "`EventSource.onmessage` receives) whose data is a DataEvent, sampled every `?interval=` seconds and "
          + "whenever the device pushes a value; `:` heartbeats; a final named `end` event.",
        events: { message: "DataEvent", end: "EndEvent" },
      },
    })],
    errors: [...AUTH, ...SSE, "forbidden", "user_not_found", "device_not_found", "device_offline", "resource_not_found",
      "method_not_allowed", "device_busy", "device_disconnected", "device_timeout"],
    deviceError: true,
  },
  {
    method: "post", path: `${v2}/{resource}`, operationId: "sendToResource", tag: "relay",
    params: ["user", "device", "resource", "timeout", "prefer", "ttl", "idempotencyKey"],
    summary: "Call an input or input/output resource",
    description: "Body `{\"in\": <json>}`; any other JSON body is passed whole as the input. An **input** "
      + "resource answers 200 with an empty body, an **io** resource `{\"out\": <json>}`. On a resource the "
      + "device described as an **output**: 405 `method_not_allowed` with `Allow: GET`. With `Prefer: respond-async` "
      + "the call is queued (202, `Location` of its status); with `Idempotency-Key` the first outcome is kept 24 h and a "
      + "repeat answers it again (`Idempotent-Replayed: true`) without calling the device.",
    body: { schema: ref("ResourceInput"), required: false },
    ok: [ok("The device's answer (no body for an input resource).", ref("ResourceOutput")), {
      status: 202, description: "`Prefer: respond-async`: the call is queued (see `getCall`).", json: ref("QueuedCall"),
      headers: { Location: { type: "string", description: "/v1/users/{user}/devices/{device}/calls/{id}" }, "Preference-Applied": { type: "string", const: "respond-async" } },
    }],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found", "device_offline", "resource_not_found",
      "method_not_allowed", "device_busy", "device_disconnected", "device_timeout", "queue_full", "idempotency_key_reused",
      "idempotency_key_in_flight", "too_many_idempotency_keys", "call_interrupted"],
    deviceError: true,
  },
];
