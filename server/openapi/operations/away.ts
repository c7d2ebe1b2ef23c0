/** OpenAPI operations of issue 18: device properties and queued calls. */
import { ref } from "../schemas.js";
import { AUTH, BODY, devicePath, EMPTY, list, LIST_PARAMS, ok, type Operation, v3 } from "../operation.js";

export const AWAY_OPERATIONS: Operation[] = [
  // ---- issue 18: properties and queued calls ----
  {
    method: "get", path: `${v3}/properties`, operationId: "listProperties", tag: "properties", params: ["user", "device", ...LIST_PARAMS],
    summary: "List a device's properties", description: "Sorted by name. Needs `ReadDeviceProperties`.",
    ok: [list("The properties.", "Property")],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "post", path: `${v3}/properties`, operationId: "createProperty", tag: "properties", params: ["user", "device"],
    summary: "Create or replace a property (name in the body)",
    description: "Thinger's create call, as its own clients (Node-RED) send it: `{\"property\": name, \"value\": json}`. The same as "
      + "`PUT …/properties/{property}` with `{\"value\"}`: it creates the property or replaces its value. The name is taken as "
      + "written (no percent-decoding). Needs `WriteDeviceProperties`.",
    body: { schema: ref("PropertyCreate") },
    ok: [ok("The stored property.", ref("Property"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found", "property_too_large", "too_many_properties"],
  },
  {
    method: "get", path: `${v3}/properties/{property}`, operationId: "getProperty", tag: "properties", params: ["user", "device", "property"],
    summary: "Read a property", description: "Needs `ReadDeviceProperties`.",
    ok: [ok("The property.", ref("Property"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "property_not_found"],
  },
  {
    method: "put", path: `${v3}/properties/{property}`, operationId: "setProperty", tag: "properties", params: ["user", "device", "property"],
    summary: "Create or replace a property",
    description: "Needs `WriteDeviceProperties`. The device gets the new value at once if it is connected (on any node), "
      + "else when it next connects. Values: at most 16 KiB as JSON (413 `property_too_large`), 16 levels deep; at most 128 "
      + "properties per device (400 `too_many_properties`).",
    body: { schema: ref("PropertyWrite") },
    ok: [ok("The stored property.", ref("Property"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found", "property_too_large", "too_many_properties"],
  },
  {
    method: "delete", path: `${v3}/properties/{property}`, operationId: "deleteProperty", tag: "properties", params: ["user", "device", "property"],
    summary: "Delete a property", description: "Needs `WriteDeviceProperties`. A connected device gets a `property` frame with `deleted: true`.",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "property_not_found"],
  },
  {
    method: "get", path: `${devicePath}/calls`, operationId: "listCalls", tag: "relay", params: ["user", "device", ...LIST_PARAMS],
    summary: "List a device's queued calls (newest first)",
    description: "A list route like every other: `?page=&limit=` (1 to 1000, 100 once paging), `?fields=`, `X-Total-Count` and RFC 8288 `Link`. "
      + "Needs `ListDeviceResources`; a token limited to some resources sees (and counts) the calls of those only. Finished calls are kept 7 days.",
    ok: [list("The calls.", "QueuedCall")],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "get", path: `${devicePath}/calls/{id}`, operationId: "getCall", tag: "relay", params: ["user", "device", "callId"],
    summary: "Status of a queued call", description: "Needs `AccessDeviceResources` on the call's resource.",
    ok: [ok("The call.", ref("QueuedCall"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "call_not_found"],
  },
  {
    method: "delete", path: `${devicePath}/calls/{id}`, operationId: "cancelCall", tag: "relay", params: ["user", "device", "callId"],
    summary: "Cancel a queued call", description: "Only while it is `queued`; afterwards 409 `call_not_queued`.",
    ok: [ok("The cancelled call.", ref("QueuedCall"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "call_not_found", "call_not_queued"],
  },
];
