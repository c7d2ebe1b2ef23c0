/**
 * A transport adapter: how a runtime whose sockets are not a WHATWG WebSocket plugs into the SDK.
 *
 * Here the runtime's socket is a raw TCP connection (`node:net`) and its WebSocket layer is the `ws`
 * package driven over that connection (`createConnection`), with Node-style events (`on("message",
 * (data: Buffer, isBinary))`, `on("close", (code, reason: Buffer))`) instead of the `onopen`/`onmessage`/
 * `onclose`/`onerror` properties the SDK expects (`DeviceSocket`). The adapter maps one onto the other; an
 * adapter for another runtime's socket module has the same shape (device-sdk/README.md, "Transports").
 *
 *   const device = new Device({ server: "ws://relay.local:8080", user, device, credentials,
 *                               transport: tcpTransport("relay.local", 8080) });
 */
import { connect, type Socket } from "node:net";
import WebSocket from "ws";
import type { DeviceSocket, Transport } from "../portable.js";

/** A transport that opens each session over a new TCP connection to host:port; `onSocket` sees each one. */
export function tcpTransport(host: string, port: number, onSocket?: (tcp: Socket) => void): Transport {
  return (url) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      createConnection: () => {
        const tcp = connect({ host, port });
        tcp.setNoDelay(true);
        onSocket?.(tcp);
        return tcp;
      },
    });
    const socket: DeviceSocket = {
      get readyState() {
        return ws.readyState;
      },
      send: (text) => ws.send(text),
      close: (code, reason) => ws.close(code, reason),
      terminate: () => ws.terminate(),
      onopen: null,
      onmessage: null,
      onclose: null,
      onerror: null,
    };
    ws.on("open", () => socket.onopen?.({}));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (!isBinary) socket.onmessage?.({ data: data.toString("utf8") });
    });
    ws.on("close", (code: number, reason: Buffer) => socket.onclose?.({ code, reason: reason.toString("utf8") }));
    ws.on("error", (err: Error) => socket.onerror?.(err));
    return socket;
  };
}
