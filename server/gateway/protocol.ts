/** Close codes the server uses on device sockets (documented in docs/protocol.md). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  restart: 1012,
  replaced: 4000,
  unauthorized: 4001,
  closedByUser: 4003,
  deviceDeleted: 4004,
  tooManyAttempts: 4029,
  badConnect: 4400,
  keepaliveTimeout: 4408,
} as const;

/** Server → device frames. */
export type ServerFrame =
  | { type: "connected"; user: string; device: string; keepalive: number; server_time: number }
  | { type: "error"; code: string; message: string; id?: number }
  | { type: "call"; id: number; resource: string; in?: unknown }
  | { type: "state"; id: number; resource: string }
  | { type: "stream"; resource: string; interval: number }
  | { type: "unstream"; resource: string }
  | { type: "pong" };

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
/** Deepest nesting accepted in a device frame (the frame object itself is level 1). */
export const MAX_FRAME_DEPTH = 64;

export function isResourceName(s: unknown): s is string {
  return typeof s === "string" && s.length <= MAX_RESOURCE_LENGTH && RESOURCE_RE.test(s);
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
