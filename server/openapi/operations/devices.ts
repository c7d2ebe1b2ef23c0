/** OpenAPI operations: the device registry, sessions and stats. */
import { ref } from "../schemas.js";
import { AUTH, BODY, devicePath, EMPTY, list, LIST_PARAMS, ok, type Operation, SSE, STREAM_NOTE } from "../operation.js";

export const DEVICE_OPERATIONS: Operation[] = [
  // ---- devices ----
  {
    method: "get", path: "/v1/users/{user}/devices", operationId: "listDevices", tag: "devices", params: ["user", "idFilter", ...LIST_PARAMS],
    summary: "List devices",
    ok: [list("The account's devices, sorted by id.", "Device")],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "post", path: "/v1/users/{user}/devices", operationId: "createDevice", tag: "devices", params: ["user"],
    summary: "Register a device",
    description: "`device_id` must match `[a-zA-Z0-9_]{1,25}`; a duplicate id answers 400 `device_exists`. "
      + "Thinger's newer field names are accepted too: `device`, `credentials`, `description`, `type` (and `name`, "
      + "used as the description when there is none); a body mixing both shapes answers 400 naming the fields.",
    body: { schema: ref("NewDevice") },
    ok: [{ status: 201, description: "Registered.", json: ref("Device") }],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_exists", "quota_exceeded"],
  },
  {
    method: "get", path: devicePath, operationId: "getDevice", tag: "devices", params: ["user", "device"],
    summary: "Read a device",
    ok: [ok("The device.", ref("Device"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "put", path: devicePath, operationId: "updateDevice", tag: "devices", params: ["user", "device"],
    summary: "Update a device's description or credentials",
    body: { schema: ref("DeviceUpdate") },
    ok: [ok("The updated device.", ref("Device"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "delete", path: devicePath, operationId: "deleteDevice", tag: "devices", params: ["user", "device", "force"],
    summary: "Delete a device",
    description: "A connected device answers 400 `device_connected` unless `?force=true`, which closes its session "
      + "with close code 4004 (device deleted) and deletes it. Its device tokens are revoked with it.",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_connected"],
  },
  {
    method: "get", path: "/v1/users/{user}/sessions", operationId: "listSessions", tag: "devices", params: ["user", ...LIST_PARAMS],
    summary: "List live device sessions",
    ok: [list("Connected devices of the account.", "Session")],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "delete", path: `${devicePath}/session`, operationId: "closeDeviceSession", tag: "devices", params: ["user", "device"],
    summary: "Close a device's live session",
    description: "The device's socket is closed with code 4003; the device may reconnect.",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_offline"],
  },
  {
    method: "get", path: `${devicePath}/stats`, operationId: "getDeviceStats", tag: "devices", params: ["user", "device"],
    summary: "Device statistics (JSON or an SSE stream)",
    description: "Thinger's stats object. With `Accept: text/event-stream` the same object as a Server-Sent "
      + "Events stream of updates; EventSource cannot send headers, so pass the token as `?authorization=`. "
      + STREAM_NOTE,
    ok: [ok("Current statistics.", ref("DeviceStats"), {
      sse: {
        description: "SSE stream: unnamed events (`id:` + `data:`, what `EventSource.onmessage` receives) whose data "
          + "is a DeviceStats object (the current one at once, then on every change); `:` comment lines are "
          + "heartbeats; a final named `end` event when the server ends it.",
        events: { message: "DeviceStats", end: "EndEvent" },
      },
    })],
    errors: [...AUTH, ...SSE, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "get", path: "/v1/users/{user}/events", operationId: "streamEvents", tag: "devices", params: ["user", "deviceFilter", "lastEventId"],
    summary: "Account event stream (SSE)",
    description: "The account's device events as Server-Sent Events, whatever the Accept header says: "
      + "unnamed events (`id:` + `data:`, what `EventSource.onmessage` receives) whose data is a DeviceEvent, "
      + "its `type` telling `online` from `offline`. Resumes after `Last-Event-ID` while the "
      + "server's buffer still holds the events after it. See docs/streams.md. " + STREAM_NOTE,
    ok: [ok("An SSE stream.", undefined, {
      sse: {
        description: "Unnamed events whose data is a DeviceEvent (`type`: `online`/`offline`), `:` heartbeats, "
          + "a final named `end` event.",
        events: { message: "DeviceEvent", end: "EndEvent" },
      },
    })],
    errors: [...AUTH, ...SSE, "forbidden", "user_not_found"],
  },
];
