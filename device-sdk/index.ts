/**
 * thingrelay device SDK (`thingrelay/device`). Runs wherever a standard WebSocket exists; on Node 20 it
 * uses the `ws` package. Wire protocol: docs/protocol.md.
 */
export { Device, DeviceError } from "./device.js";
export type { DeviceOptions, DeviceEvents, InputOptions, DeviceState, ResourceKind, WebSocketLike, WebSocketFactory } from "./device.js";
export type { PropertyHandler } from "./device.js";
export { Backoff } from "./backoff.js";
