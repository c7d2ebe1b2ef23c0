/**
 * The device wire protocol in one place (docs/protocol.md): frame types, close codes, error codes of
 * error frames, and the rules for user, device and resource names. The SDK owns this module and the server
 * imports it (server/gateway/protocol.ts re-exports it); it imports nothing, so it runs on every runtime.
 * test/protocol-docs.test.ts checks that docs/protocol.md lists every frame type, close code and error code.
 */

// The codes the SDK itself uses are plain constants too, so a bundler can drop the CLOSE table from the
// SDK's bundle (it is held to ≤ 4 KB min+gzip, issue 17).
const REPLACED = 4000;
const UNAUTHORIZED = 4001;
const DEVICE_DELETED = 4004;
const BAD_CONNECT = 4400;
/** Close code the reference SDK uses when the server stays silent (keepalive or connect timeout). */
export const CLOSE_KEEPALIVE_TIMEOUT = 4408;

/** Close codes on device sockets, with who sends each (docs/protocol.md §5). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  internalError: 1011,
  restart: 1012,
  replaced: REPLACED,
  unauthorized: UNAUTHORIZED,
  closedByUser: 4003,
  deviceDeleted: DEVICE_DELETED,
  badConnect: BAD_CONNECT,
  keepaliveTimeout: CLOSE_KEEPALIVE_TIMEOUT,
} as const;

/** Close codes after which reconnecting would not help: the reference SDK stops (docs/protocol.md §5). */
export const FATAL_CLOSE_CODES: readonly number[] = [REPLACED, UNAUTHORIZED, DEVICE_DELETED, BAD_CONNECT];

/** Frame `type`s, by direction. */
export const SERVER_FRAME_TYPES = ["connected", "error", "call", "state", "stream", "unstream", "pong", "property"] as const;
export const DEVICE_FRAME_TYPES = ["connect", "describe", "result", "error", "data", "ping", "property_get", "property_set"] as const;

/**
 * `code`s of error frames. The server sends the first four (then closes); a device sends
 * `resource_not_found` for a call to a resource it does not have.
 */
export const WS_ERROR_CODES = {
  authentication_timeout: "no connect frame before the deadline (close 1008)",
  invalid_request: "the first frame was not a valid connect frame (close 4400)",
  unauthorized: "unknown user or device, or wrong credentials (close 4001)",
  internal_error: "the server could not check the credentials, e.g. its store is down (close 1011)",
  resource_not_found: "device → server: the device has no such resource (HTTP 404)",
} as const;
export type WsErrorCode = keyof typeof WS_ERROR_CODES;

/** Server → device frames. */
export type ServerFrame =
  | { type: "connected"; user: string; device: string; keepalive: number; server_time: number }
  | { type: "error"; code: string; message: string; id?: number }
  | { type: "call"; id: number; resource: string; in?: unknown }
  | { type: "state"; id: number; resource: string }
  | { type: "stream"; resource: string; interval: number }
  | { type: "unstream"; resource: string }
  | { type: "pong" }
  | { type: "property"; id?: number; name: string; value?: unknown; updated_ts?: number; deleted?: true };

export type ResourceKind = "output" | "input" | "io" | "run";
export const RESOURCE_KINDS: readonly ResourceKind[] = ["output", "input", "io", "run"];

export interface ConnectFrame {
  type: "connect";
  user: string;
  device: string;
  credentials: string;
  keepalive?: number;
}

export const NAME_RE = /^[a-zA-Z0-9_]{1,32}$/;
export const DEVICE_RE = /^[a-zA-Z0-9_]{1,25}$/;
/** Resource names: printable segments joined by "/", no "." or ".." segments, at most 128 characters. */
export const RESOURCE_RE = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[^\s/\\?#%\x00-\x1f\x7f]+(?:\/[^\s/\\?#%\x00-\x1f\x7f]+)*$/;
export const MAX_RESOURCE_LENGTH = 128;
/** The REST route `…/{device}/api` lists the resources, so no resource may be called `api`. */
export const RESERVED_RESOURCE = "api";
/** Deepest nesting accepted in a device frame (the frame object itself is level 1). */
export const MAX_FRAME_DEPTH = 64;

export function isResourceName(s: unknown): s is string {
  return typeof s === "string" && s.length <= MAX_RESOURCE_LENGTH && RESOURCE_RE.test(s);
}

/** Why a device may not declare `name` (the server would drop it), or undefined if it may. */
export function resourceNameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || name.length === 0) return "a name must be a non-empty string";
  if (name.length > MAX_RESOURCE_LENGTH) return `a name has at most ${MAX_RESOURCE_LENGTH} characters`;
  if (name === RESERVED_RESOURCE || name.endsWith(`/${RESERVED_RESOURCE}`)) {
    return `"${RESERVED_RESOURCE}" is reserved as a name and as a last segment (…/api lists the resources, …/{resource}/api describes one)`;
  }
  if (!isResourceName(name)) return "a name is \"/\"-separated segments without whitespace, control characters, \\ ? # % or empty, \".\" and \"..\" segments";
  return undefined;
}

export function parseConnect(data: unknown): ConnectFrame | string {
  if (typeof data !== "object" || data === null || Array.isArray(data)) return "frame must be a JSON object";
  const f = data as Record<string, unknown>;
  if (f.type !== "connect") return "first frame must be {\"type\":\"connect\",…}";
  if (typeof f.user !== "string" || !NAME_RE.test(f.user)) return "user must match [a-zA-Z0-9_]{1,32}";
  if (typeof f.device !== "string" || !DEVICE_RE.test(f.device)) return "device must match [a-zA-Z0-9_]{1,25}";
  if (typeof f.credentials !== "string" || f.credentials.length === 0 || f.credentials.length > 256) return "credentials must be a string of 1 to 256 characters";
  if (f.keepalive !== undefined && (typeof f.keepalive !== "number" || !Number.isInteger(f.keepalive) || f.keepalive < 1 || f.keepalive > 3600)) {
    return "keepalive must be an integer number of seconds from 1 to 3600";
  }
  const frame: ConnectFrame = { type: "connect", user: f.user, device: f.device, credentials: f.credentials };
  if (typeof f.keepalive === "number") frame.keepalive = f.keepalive;
  return frame;
}
