/**
 * Type test (issue 17.3), compiled by `npm run typecheck`, never run: the `WebSocket` option takes the
 * standard WebSocket class and the `ws` package's class as they are, without casts, and a transport may
 * return either; a class that lacks what the SDK needs is refused.
 */
import WsDefault, { WebSocket as WsWebSocket } from "ws";
import { Device, type DeviceSocket, type Transport } from "../../device-sdk/index.js";
import { Device as PortableDevice } from "../../device-sdk/portable.js";

const base = { server: "ws://127.0.0.1:8080", user: "alice", device: "d1", credentials: "s3cret" };

export const standard = new Device({ ...base, WebSocket: WebSocket });
export const standardPortable = new PortableDevice({ ...base, WebSocket: globalThis.WebSocket });
export const wsNamed = new Device({ ...base, WebSocket: WsWebSocket });
export const wsDefault = new PortableDevice({ ...base, WebSocket: WsDefault });
export const viaTransport = new Device({ ...base, transport: (url) => new WebSocket(url) });
export const viaWsTransport: Transport = (url) => new WsWebSocket(url);
export const socket: DeviceSocket = new WsWebSocket("ws://127.0.0.1:1");
export const standardSocket: DeviceSocket = new WebSocket("ws://127.0.0.1:1");

class NoSend {
  readyState = 0;
  onopen = null;
  onmessage = null;
  onclose = null;
  onerror = null;
  close(): void {}
  constructor(readonly url: string) {}
}
// @ts-expect-error a class without send() is not a WebSocket
export const refused = new Device({ ...base, WebSocket: NoSend });
