import { DEVICE_RE, NAME_RE } from "./protocol.js";
import type { Transport, WebSocketFactory } from "./socket.js";
import { globalTimers, type DeviceTimers } from "./timers.js";

export interface DeviceOptions {
  /** Server URL (`ws://host:8080`, `wss://…`, or http(s) which is mapped to ws(s)); several for failover. */
  server: string | string[];
  user: string;
  device: string;
  credentials: string;
  /** Seconds between app-level pings; the connection is dropped after two silent intervals. Default 60, or the server's value. */
  keepalive?: number;
  /** First reconnect delay (ms). Default 500. */
  reconnectInitialMs?: number;
  /** Longest reconnect delay (ms). Default 30000. */
  reconnectMaxMs?: number;
  /** Time to wait for the server's `connected` frame (ms). Default 10000. */
  connectTimeoutMs?: number;
  /** WebSocket class; defaults to the global one, else (Node entry only) the `ws` package. */
  WebSocket?: WebSocketFactory;
  /** Opens the socket instead of a WebSocket class: for runtimes with their own socket API (see DeviceSocket). */
  transport?: Transport;
  /** The clock for every timer the device sets (see DeviceTimers). Default: the global timer functions and `Date.now`. */
  timers?: DeviceTimers;
  /** The reconnect jitter's random source, a number in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** The options with their defaults filled in, and the server URLs in ws(s) form. */
export type Settings = Required<Omit<DeviceOptions, "WebSocket" | "transport" | "server" | "random">> &
  Pick<DeviceOptions, "WebSocket" | "transport" | "random"> & { urls: string[] };

export function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new TypeError(message);
}

/** `http(s)://host[:port][/path]` → `ws(s)://…`, with `/v1/connect` when no path is given. No `URL` (Moddable XS has none). */
function toUrl(server: unknown): string {
  const m = typeof server === "string" && /^(?:http|ws)(s?):\/\/([^/?#]+)([^?#]*)(.*)$/.exec(server);
  check(m, '"server" must be a ws(s):// or http(s):// URL or a list of them');
  const path = m[3] === "" || m[3] === "/" ? "/v1/connect" : m[3];
  return `ws${m[1]}://${m[2]}${path}${m[4]}`;
}

/** Checks the options (a TypeError naming the bad one) and fills in the defaults. */
export function settings(options: DeviceOptions): Settings {
  // An empty list stays one (bad) server, so toUrl refuses it with the same message.
  const { server } = options;
  const urls = (Array.isArray(server) && server.length > 0 ? server : [server]).map(toUrl);
  check(typeof options.user === "string" && NAME_RE.test(options.user), '"user" must match [a-zA-Z0-9_]{1,32}');
  check(typeof options.device === "string" && DEVICE_RE.test(options.device), '"device" must match [a-zA-Z0-9_]{1,25}');
  check(options.transport === undefined || typeof options.transport === "function", '"transport" must be a function (url) => socket');
  check(typeof options.credentials === "string" && options.credentials.length > 0, '"credentials" must be a non-empty string');
  // The defaults of DeviceOptions; `timers: undefined` must not hide the default timers as a spread would.
  const s = { keepalive: 60, reconnectInitialMs: 500, reconnectMaxMs: 30_000, connectTimeoutMs: 10_000, ...options, urls, timers: options.timers || globalTimers } as Settings;
  check(Number.isInteger(s.keepalive) && s.keepalive >= 1 && s.keepalive <= 3600, '"keepalive" must be an integer from 1 to 3600');
  return s;
}
