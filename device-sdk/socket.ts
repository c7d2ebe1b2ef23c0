/** A listener type checked bivariantly, so the DOM's and `ws`'s own event types are accepted without casts. */
type Listener<E> = { bivarianceHack(ev: E): void }["bivarianceHack"];

/**
 * What a socket must offer the SDK: the subset of the WHATWG WebSocket it uses. The global WebSocket
 * (browsers, Deno, Bun, Node ≥ 22) and the `ws` package's class have it as they are; a runtime with another
 * socket API plugs in an adapter through the `transport` option (device-sdk/README.md, "Transports").
 *
 * - `readyState`: 0 connecting, 1 open, 2 closing, 3 closed.
 * - `send(text)`: sends one text message (a JSON frame); only called while `readyState` is 1.
 * - `close(code, reason)`: starts the closing handshake; `onclose` must follow.
 * - `onopen`: the connection is open (before any frame). `onmessage({data})`: one text message, `data` a
 *   string. `onclose({code, reason})`: the connection is gone. `onerror`: a failure; before `onopen` it
 *   counts as a failed attempt (no `onclose` needed), after it `onclose` must follow.
 * - optional `terminate()`: drop the connection at once without a closing handshake.
 */
export interface DeviceSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Listener<any> | null;
  onmessage: Listener<{ data: any }> | null;
  onclose: Listener<{ code: number; reason: string }> | null;
  onerror: Listener<any> | null;
  terminate?(): void;
}
/** Another name for DeviceSocket. */
export type WebSocketLike = DeviceSocket;
/** A WebSocket class: the global `WebSocket` or `ws`'s `WebSocket`. */
export type WebSocketFactory = new (url: string) => DeviceSocket;
/** Opens a socket to `url` (a `ws://` or `wss://` URL ending in `/v1/connect`). */
export type Transport = (url: string) => DeviceSocket;

/**
 * Gives up on a socket at once and handles it as closed. Waiting for the closing handshake would stall
 * reconnection: a dead peer never answers it (ws waits 30 s).
 */
export function abandon(ws: DeviceSocket, code: number, reason: string): void {
  const onclose = ws.onclose;
  ws.onclose = null;
  ws.onmessage = null;
  ws.onerror = () => undefined; // ws emits "error" while aborting a handshake; it must have a listener
  try {
    if (typeof ws.terminate === "function") ws.terminate();
    else if (ws.readyState < 2) ws.close(code >= 4000 ? code : 1000, reason); // connecting or open
  } catch {
    /* already closed */
  }
  onclose?.({ code, reason });
}

/** Sends one frame if the socket is open (frames for a socket that is gone are dropped). */
export function send(ws: DeviceSocket | undefined, frame: object): void {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
}
