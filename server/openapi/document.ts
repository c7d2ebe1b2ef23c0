/**
 * The OpenAPI 3.1 document of every route, served at `GET /openapi.json`. Operations are listed in one
 * table below; error responses are generated from the error registry (server/errors.ts), so a code cannot
 * be documented with the wrong status. test/openapi.test.ts checks the table against the live router in
 * both directions and validates real responses against these schemas.
 */
import { ERROR_CODES, type ErrorCode } from "../errors.js";
import { DEVICE_ID_RE } from "../devices/service.js";
import { USERNAME_RE } from "../users/service.js";
import { MAX_RESOURCE_LENGTH } from "../gateway/protocol.js";
import { componentSchemas, TOKEN_ID_PATTERN, type Schema } from "./schemas.js";
import { packageVersion } from "../version.js";

type Method = "get" | "post" | "put" | "delete";

interface Success {
  status: number;
  description: string;
  /** JSON body schema; omitted = no body. */
  json?: Schema;
  /**
   * The route also answers `text/event-stream` (with `Accept: text/event-stream`): a description and the
   * schema of each event's data by event name, published as the `x-sse-events` extension.
   */
  sse?: { description: string; events: Record<string, string> };
  /** Other media types, e.g. `text/html`, with a schema each. */
  other?: Record<string, Schema>;
  headers?: Record<string, Schema>;
}

interface Operation {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Default true: bearer header or `?authorization=`. */
  auth?: boolean;
  params?: string[];
  body?: { schema: Schema; form?: boolean; required?: boolean; description?: string };
  ok: Success[];
  errors: ErrorCode[];
  /** Device handler failures carry the device's own status: documented as the `default` response. */
  deviceError?: boolean;
}

/**
 * Codes any request can get, not tied to one operation (listed in the document's introduction): no such
 * route, wrong method, and the HTTP server's own answers to slow or oversized request headers.
 */
export const GLOBAL_ERROR_CODES: readonly ErrorCode[] = ["not_found", "method_not_allowed", "request_timeout", "headers_too_large"];

const AUTH: ErrorCode[] = ["invalid_request", "unauthorized", "too_many_requests", "internal_error", "service_unavailable"];
const BODY: ErrorCode[] = ["invalid_json", "invalid_request", "payload_too_large", "unsupported_media_type"];
const SSE: ErrorCode[] = ["not_acceptable", "too_many_streams"];

/**
 * Told on every streaming operation: a stream never ends, so Swagger UI's try-it-out (which waits for the
 * whole body) cannot show one. The /docs page leaves `text/event-stream` out of its copy of the document.
 */
const STREAM_NOTE = "**Streams are read with `EventSource` (`new EventSource(url + '?authorization=' + token)"
  + ".onmessage`) or `curl -N -H 'Accept: text/event-stream'`**, not with try-it-out on /docs, which waits "
  + "for a response that never ends and so does not offer `text/event-stream`.";

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const arrayOf = (name: string): Schema => ({ type: "array", items: ref(name) });
const ok = (description: string, json?: Schema, extra: Partial<Success> = {}): Success =>
  json ? { status: 200, description, json, ...extra } : { status: 200, description, ...extra };
const EMPTY = ok("Done.", ref("Empty"));
/** Every list route: the body stays an array; paging and projection through server/http/list.ts. */
const LIST_PARAMS = ["page", "limit", "fields"];
const LIST_HEADERS: Record<string, Schema> = {
  "X-Total-Count": { type: "string", description: "number of items before paging" },
  Link: { type: "string", description: 'RFC 8288 links to the `first`, `prev`, `next` and `last` pages (only with `?page=` or `?limit=`)' },
};
const list = (description: string, item: string): Success => ok(description, arrayOf(item), { headers: LIST_HEADERS });

const devicePath = "/v1/users/{user}/devices/{device}";
const v2 = "/v2/users/{user}/devices/{device}";
const v3 = "/v3/users/{user}/devices/{device}";

const OPERATIONS: Operation[] = [
  // ---- OAuth ----
  {
    method: "post", path: "/oauth/token", operationId: "getToken", tag: "oauth", auth: false,
    summary: "Sign in (password grant) or refresh a token",
    description: "RFC 6749 password grant (`grant_type=password&username=&password=`) or refresh-token grant "
      + "(`grant_type=refresh_token&refresh_token=`). Refresh tokens rotate on every use; reusing a rotated "
      + "one revokes its whole family. Bad credentials answer 401 `invalid_grant` "
      + '("invalid username or password"), as the Thinger API documents. Other methods answer 405.',
    body: { schema: ref("TokenRequest"), form: true },
    ok: [{ status: 200, description: "Tokens.", json: ref("TokenResponse"), headers: { "Cache-Control": { type: "string", const: "no-store" } } }],
    errors: [...BODY, "unsupported_grant_type", "invalid_grant", "too_many_requests", "internal_error", "service_unavailable"],
  },
  {
    method: "post", path: "/oauth/revoke", operationId: "revokeToken", tag: "oauth", auth: false,
    summary: "Revoke a refresh token (RFC 7009)",
    description: "Revokes the refresh token's whole family and every access token issued from it. "
      + "An unknown token also answers 200.",
    body: { schema: ref("RevokeRequest"), form: true },
    ok: [EMPTY],
    errors: [...BODY, "too_many_requests", "internal_error", "service_unavailable"],
  },
  {
    method: "get", path: "/v1/me", operationId: "getMe", tag: "oauth",
    summary: "Who am I", description: "The caller's account and the kind of token presented.",
    ok: [ok("The caller.", ref("Me"))],
    errors: AUTH,
  },
  // ---- users ----
  {
    method: "post", path: "/v1/users", operationId: "createUser", tag: "users",
    summary: "Create an account (administrators only)",
    body: { schema: ref("NewUser") },
    ok: [{ status: 201, description: "Created.", json: ref("UserCreated") }],
    errors: [...AUTH, ...BODY, "forbidden", "conflict"],
  },
  {
    method: "get", path: "/v1/users", operationId: "listUsers", tag: "users", params: LIST_PARAMS,
    summary: "List accounts (administrators only)",
    ok: [list("Every account, sorted by name.", "User")],
    errors: [...AUTH, "forbidden"],
  },
  {
    method: "get", path: "/v1/users/{user}", operationId: "getUser", tag: "users", params: ["user"],
    summary: "Read an account (an administrator, or the account's own session)",
    description: "Another account answers 404 `user_not_found`, as a missing one does. Never the password hash.",
    ok: [ok("The account.", ref("User"))],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}", operationId: "deleteUser", tag: "users", params: ["user"],
    summary: "Delete an account and everything it owns (administrators only)",
    description: "Deletes the account, its devices, device tokens, user tokens and sign-in sessions (refresh "
      + "families); its live device sessions are closed with 4004 and its open streams end (`token_revoked`). "
      + "Its tokens answer 401 at once. An administrator cannot delete their own account (409 `conflict`).",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "conflict"],
  },
  {
    method: "get", path: "/v1/users/{user}/export", operationId: "exportAccount", tag: "users", params: ["user"],
    summary: "Export the whole account as one JSON document",
    description: "The account's own password-grant session or an administrator. One section per part of the "
      + "account (`user`, `devices`, `device_tokens`, `user_tokens`, `properties`, `calls`, and those other features add). No secret "
      + "or hash: no password hash, no device credentials, no token values, no sign-in sessions.",
    ok: [ok("The export document.", ref("AccountExport"), { headers: { "Content-Disposition": { type: "string" } } })],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/password", operationId: "changePassword", tag: "users", params: ["user"],
    summary: "Change one's own password",
    description: "Only the account's own password-grant session may do this, and only with the current "
      + "password (403 `forbidden` when it is wrong). Every refresh family of the account (and so every access "
      + "token issued from it) is revoked; device and user tokens stay valid unless `revoke_tokens` is true, "
      + "which deletes them all.",
    body: { schema: ref("PasswordChange") },
    ok: [EMPTY],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}", operationId: "setUserEnabled", tag: "users", params: ["user"],
    summary: "Enable or disable an account (administrators only)",
    description: "`{\"enabled\": false}` refuses the account's sign-in and refresh, every token of it and its device "
      + "sessions at once (open sessions close with 4001); `{\"enabled\": true}` lets it sign in again. An "
      + "administrator cannot disable their own account.",
    body: { schema: ref("UserEnabled") },
    ok: [ok("The account's new state.", ref("UserState"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found"],
  },
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
  // ---- device tokens ----
  {
    method: "get", path: `${devicePath}/tokens`, operationId: "listDeviceTokens", tag: "tokens", params: ["user", "device", ...LIST_PARAMS],
    summary: "List a device's tokens",
    description: "A scoped token sees which tokens exist, with `token: null`.",
    ok: [list("The device's tokens.", "DeviceToken")],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
  },
  {
    method: "post", path: `${devicePath}/tokens`, operationId: "createDeviceToken", tag: "tokens", params: ["user", "device"],
    summary: "Create a device token",
    description: "A token that opens one device (optionally only some resources), its `/api` and its stats. "
      + "Only a password-grant session may create tokens.",
    body: { schema: ref("DeviceTokenRequest") },
    ok: [ok("The new token.", ref("DeviceToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "device_not_found", "quota_exceeded"],
  },
  {
    method: "delete", path: `${devicePath}/tokens/{id}`, operationId: "deleteDeviceToken", tag: "tokens", params: ["user", "device", "tokenId"],
    summary: "Delete (revoke) a device token", description: "Takes effect on the next request.",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "token_not_found"],
  },
  // ---- user tokens ----
  {
    method: "get", path: "/v1/users/{user}/tokens", operationId: "listUserTokens", tag: "tokens", params: ["user", ...LIST_PARAMS],
    summary: "List user access tokens", description: "Only the account's own password-grant session.",
    ok: [list("The account's user tokens.", "UserToken")],
    errors: [...AUTH, "forbidden", "user_not_found"],
  },
  {
    method: "post", path: "/v1/users/{user}/tokens", operationId: "createUserToken", tag: "tokens", params: ["user"],
    summary: "Create a user access token",
    description: "`allow` and `deny` in Thinger's shape (see the Permissions schema), e.g. "
      + "`{\"Device\": {\"door\": [\"AccessDeviceResources\"]}, \"*\": {\"*\": [\"ListDevices\"]}}`: Thinger actions "
      + "(`AccessDeviceResources`, `ListDevices`, `GetDeviceStats`, …) per device and, for AccessDeviceResources, "
      + "per resource. `deny` wins over `allow`. The earlier array form is still accepted; answers use Thinger's "
      + "shape. A bad shape answers 400 naming the JSON path of the offending element (`allow.Device.door[1]`).",
    body: { schema: ref("UserTokenRequest") },
    ok: [ok("The new token.", ref("UserToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "quota_exceeded"],
  },
  {
    method: "get", path: "/v1/users/{user}/tokens/{id}", operationId: "getUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Read a user access token",
    ok: [ok("The token.", ref("UserToken"))],
    errors: [...AUTH, "forbidden", "user_not_found", "token_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/tokens/{id}", operationId: "updateUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Update a user access token", description: "Takes effect on the next request.",
    body: { schema: ref("UserTokenUpdate") },
    ok: [ok("The updated token.", ref("UserToken"))],
    errors: [...AUTH, ...BODY, "forbidden", "user_not_found", "token_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}/tokens/{id}", operationId: "deleteUserToken", tag: "tokens", params: ["user", "tokenId"],
    summary: "Delete (revoke) a user access token",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "user_not_found", "token_not_found"],
  },
  // ---- relay ----
  {
    method: "get", path: `${v2}/api`, operationId: "getDeviceApi", tag: "relay", params: ["user", "device"],
    summary: "The device's resources and their kinds",
    ok: [ok("Resources by name.", ref("DeviceApi"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_offline"],
  },
  {
    method: "get", path: `${v2}/{resource}/api`, operationId: "getResourceApi", tag: "relay", params: ["user", "device", "resource", "timeout"],
    summary: "One resource: its kind and current state",
    description: "Thinger's resource API: `{\"kind\"}` plus, for an **output**, its current value `out` (the "
      + "device runs it), and for an **input** or **io** resource whose device reports its state (SDK: "
      + "`device.input(name, handler, { state })`), the state `in`, read without running the handler. A device "
      + "that has not described its resources answers 404 `resource_not_found`.",
    ok: [ok("The resource.", ref("ResourceApi"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found", "device_offline", "resource_not_found",
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
  // ---- issue 18: properties and queued calls ----
  {
    method: "get", path: `${v3}/properties`, operationId: "listProperties", tag: "properties", params: ["user", "device"],
    summary: "List a device's properties", description: "Sorted by name. Needs `ReadDeviceProperties`.",
    ok: [ok("The properties.", arrayOf("Property"))],
    errors: [...AUTH, "forbidden", "user_not_found", "device_not_found"],
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
    method: "get", path: `${devicePath}/calls`, operationId: "listCalls", tag: "relay", params: ["user", "device", "callsPage", "callsLimit"],
    summary: "List a device's queued calls (newest first)",
    description: "Paginated with `?page=&limit=` (default 50, at most 200), `X-Total-Count` and RFC 8288 `Link`. "
      + "Needs `ListDeviceResources`; a token limited to some resources sees the calls of those only. Finished calls are kept 7 days.",
    ok: [ok("The calls.", arrayOf("QueuedCall"), { headers: { "X-Total-Count": { type: "string" }, Link: { type: "string" } } })],
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
  // ---- issue 19: console dashboards ----
  {
    method: "get", path: "/v1/users/{user}/dashboards", operationId: "listDashboards", tag: "dashboards", params: ["user", ...LIST_PARAMS],
    summary: "List the account's dashboards",
    description: "Oldest first. Needs `ReadDashboards` (a user token sees the dashboards its `Dashboard` permissions name).",
    ok: [list("The dashboards.", "Dashboard")],
    errors: [...AUTH, "forbidden", "dashboard_not_found"],
  },
  {
    method: "post", path: "/v1/users/{user}/dashboards", operationId: "createDashboard", tag: "dashboards", params: ["user"],
    summary: "Create a dashboard",
    description: "Needs `WriteDashboards`. Widgets are checked one by one; a bad one answers 400 naming its path "
      + "(`widgets[2].layout.w`). At most 50 dashboards per account (400 `too_many_dashboards`), 64 widgets each.",
    body: { schema: ref("DashboardWrite") },
    ok: [ok("The dashboard.", ref("Dashboard"), { status: 201, headers: { Location: { type: "string" } } })],
    errors: [...AUTH, ...BODY, "forbidden", "dashboard_not_found", "dashboard_exists", "too_many_dashboards"],
  },
  {
    method: "get", path: "/v1/users/{user}/dashboards/{id}", operationId: "getDashboardDoc", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Read a dashboard", description: "Needs `ReadDashboards` on it.",
    ok: [ok("The dashboard.", ref("Dashboard"))],
    errors: [...AUTH, "forbidden", "dashboard_not_found"],
  },
  {
    method: "put", path: "/v1/users/{user}/dashboards/{id}", operationId: "replaceDashboard", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Replace a dashboard's name and widgets", description: "Needs `WriteDashboards` on it. Validated as on create.",
    body: { schema: ref("DashboardWrite") },
    ok: [ok("The dashboard.", ref("Dashboard"))],
    errors: [...AUTH, ...BODY, "forbidden", "dashboard_not_found"],
  },
  {
    method: "delete", path: "/v1/users/{user}/dashboards/{id}", operationId: "deleteDashboard", tag: "dashboards", params: ["user", "dashboard"],
    summary: "Delete a dashboard", description: "Needs `WriteDashboards` on it. Share tokens made for it stay until deleted (they then read nothing).",
    ok: [EMPTY],
    errors: [...AUTH, "forbidden", "dashboard_not_found"],
  },
  // ---- operations ----
  {
    method: "get", path: "/health", operationId: "health", tag: "operations", auth: false,
    summary: "Liveness", ok: [ok("The process is up.", ref("Health"))], errors: [],
  },
  {
    method: "get", path: "/ready", operationId: "ready", tag: "operations", auth: false,
    summary: "Readiness (store reachable)", ok: [ok("Ready.", ref("Ready"))], errors: ["service_unavailable"],
  },
  {
    method: "get", path: "/metrics", operationId: "metrics", tag: "operations", auth: false,
    summary: "Prometheus metrics",
    description: "Open unless `THINGRELAY_METRICS_TOKEN` is set; then `Authorization: Bearer <that token>` is required.",
    ok: [ok("Prometheus text exposition format.", undefined, { other: { "text/plain": { type: "string" } } })],
    errors: ["unauthorized", "internal_error"],
  },
  {
    method: "get", path: "/openapi.json", operationId: "getOpenApi", tag: "operations", auth: false,
    summary: "This document", ok: [ok("OpenAPI 3.1 document.", { type: "object" })], errors: [],
  },
  // ---- browser pages ----
  {
    method: "get", path: "/", operationId: "home", tag: "pages", auth: false,
    summary: "Redirect to the dashboard",
    ok: [{
      status: 302, description: "Redirect to /dashboard/ (with koa's small HTML note).",
      headers: { Location: { type: "string", const: "/dashboard/" } }, other: { "text/html": { type: "string" } },
    }],
    errors: [],
  },
  {
    method: "get", path: "/dashboard", operationId: "getDashboard", tag: "pages", auth: false,
    summary: "The console (devices, tokens, users, dashboards; README \"The console and dashboards\")",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/dashboard/", operationId: "getDashboardSlash", tag: "pages", auth: false,
    summary: "The dashboard (same page as /dashboard)",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/dashboard/{file}", operationId: "getDashboardFile", tag: "pages", auth: false, params: ["file"],
    summary: "Static files of the dashboard",
    ok: [ok("The file.", undefined, { other: { "*/*": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/docs", operationId: "getDocs", tag: "pages", auth: false,
    summary: "Interactive API reference (this page)",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: [],
  },
  {
    method: "get", path: "/docs/{asset}", operationId: "getDocsAsset", tag: "pages", auth: false, params: ["asset"],
    summary: "Static files of the API reference page",
    ok: [ok("The file.", undefined, { other: { "*/*": { type: "string" } } })], errors: ["not_found"],
  },
];

const PARAMETERS: Record<string, Schema> = {
  user: { name: "user", in: "path", required: true, description: "account name", schema: { type: "string", pattern: USERNAME_RE.source }, example: "alice" },
  device: { name: "device", in: "path", required: true, description: "device id", schema: { type: "string", pattern: DEVICE_ID_RE.source }, example: "nodemcu" },
  tokenId: { name: "id", in: "path", required: true, description: "token id", schema: { type: "string", pattern: TOKEN_ID_PATTERN } },
  resource: {
    name: "resource", in: "path", required: true,
    description: `resource name (at most ${MAX_RESOURCE_LENGTH} characters). Names may be nested (\`$ota/begin\`): `
      + "send the slashes unencoded in the path; an encoded `%2F`, `.` or `..` segment answers 400.",
    schema: { type: "string" }, example: "temperature",
  },
  timeout: {
    name: "timeout", in: "query", required: false,
    description: "seconds to wait for the device (decimals allowed); default 10, at most the server's maximum (60)",
    schema: { type: "string", pattern: "^\\d+(\\.\\d+)?$" },
  },
  interval: {
    name: "interval", in: "query", required: false,
    description: "resource streams only: seconds between samples (at most one decimal, 0.1 to 86400); 0 or absent = only values the device pushes",
    schema: { type: "string", pattern: "^\\d{1,6}(\\.\\d)?$" },
  },
  lastEventId: {
    name: "Last-Event-ID", in: "header", required: false,
    description: "SSE resume point (sent by EventSource when it reconnects)", schema: { type: "string" },
  },
  deviceFilter: { name: "device", in: "query", required: false, description: "only this device's events", schema: { type: "string", pattern: DEVICE_ID_RE.source } },
  idFilter: { name: "id", in: "query", required: false, description: "only this device", schema: { type: "string", pattern: DEVICE_ID_RE.source } },
  force: { name: "force", in: "query", required: false, description: "delete even while connected", schema: { type: "string", enum: ["true", "false"] } },
  page: { name: "page", in: "query", required: false, description: "list routes: page number, from 1 (default page size 100)", schema: { type: "string", pattern: "^[1-9]\\d{0,6}$" } },
  limit: { name: "limit", in: "query", required: false, description: "list routes: items per page, 1 to 1000", schema: { type: "string", pattern: "^[1-9]\\d{0,3}$" } },
  fields: { name: "fields", in: "query", required: false, description: "list routes: comma-separated keys to keep in each item, e.g. `device,connection`", schema: { type: "string" } },
  asset: { name: "asset", in: "path", required: true, description: "file name", schema: { type: "string" } },
  property: { name: "property", in: "path", required: true, description: "property name (resource-name rules; may be nested)", schema: { type: "string" }, example: "setpoint" },
  callId: { name: "id", in: "path", required: true, description: "queued call id", schema: { type: "string", pattern: "^[A-Za-z0-9_-]{16}$" } },
  dashboard: { name: "id", in: "path", required: true, description: "dashboard id", schema: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,32}$" } },
  callsPage: { name: "page", in: "query", required: false, description: "page number, from 1", schema: { type: "string", pattern: "^\\d{1,6}$" } },
  callsLimit: { name: "limit", in: "query", required: false, description: "items per page (default 50, at most 200)", schema: { type: "string", pattern: "^\\d{1,3}$" } },
  prefer: { name: "Prefer", in: "header", required: false, description: "`respond-async` queues the call (RFC 7240)", schema: { type: "string" } },
  ttl: { name: "ttl", in: "query", required: false, description: "queued calls: seconds to wait for the device (default 3600, at most 604800)", schema: { type: "string", pattern: "^\\d{1,7}$" } },
  idempotencyKey: {
    name: "Idempotency-Key", in: "header", required: false,
    description: "1 to 255 printable ASCII characters (bare or quoted); the first outcome is kept 24 h per account and key",
    schema: { type: "string", maxLength: 257 },
  },
  file: { name: "file", in: "path", required: true, description: "file name", schema: { type: "string" } },
};

const RETRY_AFTER = { "Retry-After": { description: "seconds to wait", schema: { type: "string" } } };
const CHALLENGE = { "WWW-Authenticate": { description: "RFC 6750 challenge", schema: { type: "string" } } };

function errorResponses(codes: readonly ErrorCode[], deviceError: boolean): Record<string, Schema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  // A device error usually carries the device's own 4xx/5xx status: listed with every status it may share,
  // and as the default response for the others.
  if (deviceError) for (const [status, list] of byStatus) if (status >= 400 && !list.includes("device_error")) list.push("device_error");
  const out: Record<string, Schema> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    const list = byStatus.get(status)!;
    out[String(status)] = errorResponse(list, status === 429 || status === 503 ? RETRY_AFTER : status === 401 ? CHALLENGE : undefined);
  }
  if (deviceError) {
    out.default = errorResponse(["device_error"], undefined, "`device_error` with the status the device's handler gave.");
  }
  return out;
}

/**
 * Codes a status's examples show first, when an operation shares the status among several: the one a caller
 * most likely meets there (a 404 on a device route is usually `device_not_found`, a 429 `device_busy`).
 */
const EXAMPLE_FIRST: readonly ErrorCode[] = [
  "invalid_request", "unauthorized", "forbidden", "device_not_found", "device_busy", "internal_error", "service_unavailable",
];

/**
 * One example per code, the likeliest first. Without them Swagger UI derives a single example from the
 * schema, and that shows the ErrorCode enum's first value (`invalid_request`) under every status.
 */
function errorExamples(codes: readonly ErrorCode[]): Record<string, Schema> {
  const rank = (c: ErrorCode) => (EXAMPLE_FIRST.includes(c) ? EXAMPLE_FIRST.indexOf(c) : EXAMPLE_FIRST.length);
  const ordered = [...codes].sort((a, b) => rank(a) - rank(b));
  return Object.fromEntries(ordered.map((code) => [code, {
    summary: code,
    value: { error: { code, message: ERROR_CODES[code].message } },
  }]));
}

function errorResponse(codes: ErrorCode[], headers?: Record<string, Schema>, description?: string): Schema {
  const r: Schema = {
    description: description ?? codes.map((c) => `\`${c}\``).join(", "),
    content: {
      "application/json": {
        schema: {
          allOf: [ref("Error")],
          properties: { error: { properties: { code: { enum: codes } } } },
        },
        examples: errorExamples(codes),
      },
    },
  };
  if (headers) r.headers = headers;
  return r;
}

function successResponse(s: Success): Schema {
  const content: Record<string, Schema> = {};
  if (s.json) content["application/json"] = { schema: s.json };
  if (s.sse) {
    content["text/event-stream"] = {
      schema: { type: "string", description: s.sse.description },
      "x-sse-events": Object.fromEntries(Object.entries(s.sse.events).map(([name, schema]) => [name, ref(schema)])),
    };
  }
  for (const [type, schema] of Object.entries(s.other ?? {})) content[type] = { schema };
  const r: Schema = { description: s.description };
  if (Object.keys(content).length > 0) r.content = content;
  if (s.headers) r.headers = Object.fromEntries(Object.entries(s.headers).map(([k, schema]) => [k, { schema }]));
  return r;
}

function operationObject(op: Operation): Schema {
  const o: Schema = { operationId: op.operationId, summary: op.summary, tags: [op.tag] };
  if (op.description) o.description = op.description;
  if (op.auth === false) o.security = [];
  if (op.params) o.parameters = op.params.map((p) => ({ $ref: `#/components/parameters/${p}` }));
  if (op.body) {
    const types = op.body.form ? ["application/x-www-form-urlencoded", "application/json"] : ["application/json"];
    o.requestBody = {
      required: op.body.required ?? true,
      content: Object.fromEntries(types.map((t) => [t, { schema: op.body!.schema }])),
    };
  }
  o.responses = {
    ...Object.fromEntries(op.ok.map((s) => [String(s.status), successResponse(s)])),
    ...errorResponses(op.errors, op.deviceError ?? false),
  };
  return o;
}


const INTRO = `A self-hosted, Thinger-compatible relay of REST calls to IoT devices over WebSocket sessions.

**Authentication.** Every \`/v1\` and \`/v2\` route takes a token as \`Authorization: Bearer <token>\` or as
the case-sensitive query parameter \`?authorization=<token>\` (for EventSource, which cannot send headers).
Get one with \`POST /oauth/token\` — or press **Authorize** and sign in with the password flow.

**Errors.** Every error answers \`{"error":{"code":"<code>","message":"<text>"}}\`; the codes are listed
in the \`ErrorCode\` schema. Any request may also get
${GLOBAL_ERROR_CODES.map((c) => `\`${c}\` (${ERROR_CODES[c].status}, ${ERROR_CODES[c].message})`).join(", ")}.`;

/** Builds the document. Pure: the same input gives the same document. */
export function buildOpenApiDocument(): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  return {
    openapi: "3.1.0",
    info: {
      title: "thingrelay API",
      version: packageVersion("0.0.0"),
      description: INTRO,
      license: { name: "MIT", identifier: "MIT" },
    },
    // Relative: calls go to the server that served the document (so "Try it out" hits this server).
    servers: [{ url: "/" }],
    security: [{ bearerAuth: [] }, { queryAuth: [] }, { passwordGrant: [] }],
    tags: [
      { name: "oauth", description: "Tokens: password and refresh-token grants, revocation" },
      { name: "users", description: "Accounts" },
      { name: "devices", description: "Device registry, live sessions and statistics" },
      { name: "tokens", description: "Device tokens and user access tokens" },
      { name: "relay", description: "Calls relayed to a device's resources" },
      { name: "properties", description: "Device properties kept server-side (Thinger v3)" },
      { name: "dashboards", description: "Console dashboards kept per account" },
      { name: "operations", description: "Health, readiness, metrics and this document" },
      { name: "pages", description: "Browser pages: the dashboard and this reference" },
    ],
    paths,
    components: {
      schemas: componentSchemas(),
      parameters: PARAMETERS,
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "`Authorization: Bearer <token>`" },
        queryAuth: {
          type: "apiKey", in: "query", name: "authorization",
          description: "`?authorization=<token>` (RFC 6750 §2.3), for EventSource and links. Redacted from logs.",
        },
        passwordGrant: {
          type: "oauth2",
          description: "Sign in with a username and password (RFC 6749 password grant); the access token is then sent as a bearer token.",
          flows: { password: { tokenUrl: "/oauth/token", refreshUrl: "/oauth/token", scopes: {} } },
        },
      },
    },
  };
}

/** Operations as (method, OpenAPI path) pairs, for the router cross-check in the tests. */
export function documentedOperations(): Array<{ method: Method; path: string; operationId: string }> {
  return OPERATIONS.map(({ method, path, operationId }) => ({ method, path, operationId }));
}
