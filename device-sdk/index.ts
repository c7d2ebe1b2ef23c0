/**
 * thingrelay device SDK, Node entry (`thingrelay/device`, and `@thingrelay/device` under Node). The same
 * as the portable entry (portable.ts), except that on a Node without a global WebSocket (Node 20) it
 * loads the `ws` package. Wire protocol: docs/protocol.md.
 */
import { Device as PortableDevice, type WebSocketFactory } from "./device.js";

export class Device extends PortableDevice {
  protected override loadWebSocket(): Promise<WebSocketFactory> {
    return import("ws").then(
      (m: unknown) => {
        const mod = m as { WebSocket?: WebSocketFactory; default?: WebSocketFactory };
        const WS = mod.WebSocket ?? mod.default;
        if (typeof WS !== "function") throw new Error('the "ws" package has no WebSocket class');
        return WS;
      },
      (err: unknown) => {
        const why = (err as { code?: string } | null)?.code ?? String(err);
        throw new Error(
          `no WebSocket: this Node has no global WebSocket and the "ws" package cannot be loaded (${why}). ` +
            'Install it (npm install ws), run Node ≥ 22 or Node 20 with --experimental-websocket, or pass the "WebSocket" or "transport" option',
        );
      },
    );
  }
}
export { DeviceError } from "./device.js";
export type { PropertyHandler, DeviceTimers } from "./device.js";
export type { DeviceOptions, DeviceEvents, InputOptions, DeviceState, DeviceSocket, ResourceKind, Transport, WebSocketLike, WebSocketFactory } from "./device.js";
export { Backoff } from "./backoff.js";
