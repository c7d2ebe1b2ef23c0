import type { Socket } from "node:net";
import { CallCancel } from "../gateway/call-cancel.js";
import { addressKey } from "../auth/address.js";

/**
 * What the server keeps per client socket across its keep-alive requests (issue 15): built at the socket's
 * first request that needs it and dropped with the socket. It saves each call the work that only changes
 * with the socket: one `close` listener for the socket instead of one per response, and the per-address
 * limit key built once per address instead of once per call.
 */
export class Connection {
  private closed = false;
  /** The call in flight on this socket (HTTP/1.1 answers one request at a time)… */
  private call: CallCancel | undefined = undefined;
  /** …and any more started before it ended (pipelined requests), rare. */
  private more: Set<CallCancel> | undefined = undefined;
  private limitedIp: string | undefined = undefined;
  private limitKey = "";

  constructor(socket: Socket) {
    // Already gone (a request parsed before its socket closed): its calls are cancelled at once.
    if (socket.destroyed) this.closed = true;
    else socket.on("close", () => this.close());
  }

  /**
   * A cancel for a call made on this socket, fired if the client disconnects before {@link release}
   * (issue 13.7: its in-flight slot is freed at once). Already cancelled when the socket is gone.
   */
  watch(): CallCancel {
    const cancel = new CallCancel();
    if (this.closed) cancel.cancel();
    else if (this.call === undefined) this.call = cancel;
    else (this.more ??= new Set()).add(cancel);
    return cancel;
  }

  /** The call is over (answered or failed): the socket's close no longer concerns it. */
  release(cancel: CallCancel): void {
    if (this.call === cancel) this.call = undefined;
    else this.more?.delete(cancel);
  }

  /** The per-address rate-limit key (`ip:…`) of `ip`, built once while the socket's address stays the same. */
  addressLimitKey(ip: string): string {
    if (ip !== this.limitedIp) {
      this.limitKey = `ip:${addressKey(ip)}`;
      this.limitedIp = ip;
    }
    return this.limitKey;
  }

  private close(): void {
    this.closed = true;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    const more = this.more;
    this.more = undefined;
    if (more !== undefined) for (const c of more) c.cancel();
  }
}

const connections = new WeakMap<Socket, Connection>();

/** The {@link Connection} of a request's socket. */
export function connectionOf(socket: Socket): Connection {
  let c = connections.get(socket);
  if (c === undefined) {
    c = new Connection(socket);
    connections.set(socket, c);
  }
  return c;
}
