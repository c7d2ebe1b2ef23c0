/**
 * thingrelay device SDK, portable entry (`@thingrelay/device` in browsers, Deno, Bun and bundlers): no
 * import of `ws` or of anything else. It uses the global WebSocket, or the `WebSocket` or `transport`
 * option. Wire protocol: docs/protocol.md.
 */
export { Device, DeviceError } from "./device.js";
export type { DeviceOptions, DeviceEvents, InputOptions, DeviceState, DeviceSocket, ResourceKind, Transport, WebSocketLike, WebSocketFactory } from "./device.js";
export type { PropertyHandler, DeviceTimers } from "./device.js";
export { Backoff } from "./backoff.js";
