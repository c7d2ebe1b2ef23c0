import type { Socket } from "node:net";
import type { WebSocket, RawData } from "ws";

/** Time a closing device gets to take its last bytes before its socket is dropped. */
const END_GRACE_MS = 2_000;

/**
 * The byte pipe under a Thinger session, whatever carries it: a TCP or TLS socket (a byte stream) or the
 * IOTMP WebSocket (one message per frame, in TEXT or BINARY frames). Sessions only see bytes.
 */
export interface DeviceLink {
  readonly ip: string;
  /** Bytes queued towards the device and not yet taken by the socket. */
  readonly bufferedBytes: number;
  write(bytes: Uint8Array): void;
  onData(fn: (chunk: Uint8Array) => void): void;
  onClose(fn: () => void): void;
  /** Closes after the queued bytes went out (`code`/`reason` where the transport has them). */
  end(code?: number, reason?: string): void;
  destroy(): void;
}

export class SocketLink implements DeviceLink {
  private closed = false;
  constructor(private readonly socket: Socket, readonly ip: string) {
    socket.setNoDelay(true);
    // Errors end in "close"; without a listener they would be thrown.
    socket.on("error", () => {});
    socket.once("close", () => {
      this.closed = true;
    });
  }

  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  write(bytes: Uint8Array): void {
    if (!this.closed && this.socket.writable) this.socket.write(bytes);
  }

  onData(fn: (chunk: Uint8Array) => void): void {
    this.socket.on("data", fn);
  }

  onClose(fn: () => void): void {
    if (this.closed) queueMicrotask(fn);
    else this.socket.once("close", fn);
  }

  end(): void {
    if (this.closed) return;
    this.socket.end();
    // A peer that stopped reading would hold the socket: drop it after a grace.
    const timer = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
    timer.unref();
    this.socket.once("close", () => clearTimeout(timer));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export class WebSocketLink implements DeviceLink {
  private closed = false;
  constructor(private readonly ws: WebSocket, readonly ip: string) {
    ws.on("error", () => {});
    ws.once("close", () => {
      this.closed = true;
    });
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  write(bytes: Uint8Array): void {
    if (!this.closed && this.ws.readyState === this.ws.OPEN) this.ws.send(bytes, { binary: true });
  }

  onData(fn: (chunk: Uint8Array) => void): void {
    // TEXT frames carry binary bytes too (the IOTMP Linux client sends them so): both are bytes here.
    this.ws.on("message", (data: RawData) => fn(rawBytes(data)));
  }

  onClose(fn: () => void): void {
    if (this.closed) queueMicrotask(fn);
    else this.ws.once("close", fn);
  }

  end(code = 1000, reason = ""): void {
    if (this.closed) return;
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
      return;
    }
    const timer = setTimeout(() => this.ws.terminate(), END_GRACE_MS);
    timer.unref();
    this.ws.once("close", () => clearTimeout(timer));
  }

  destroy(): void {
    this.ws.terminate();
  }
}

function rawBytes(data: RawData): Uint8Array {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return new Uint8Array(data);
}
