import { Backoff } from "./backoff.js";
import { TypedEmitter } from "./emitter.js";
import { settings, type DeviceOptions, type Settings } from "./options.js";
import { CLOSE_KEEPALIVE_TIMEOUT, FATAL_CLOSE_CODES } from "./protocol.js";
import { abandon, send, type DeviceSocket, type Transport, type WebSocketFactory } from "./socket.js";
import type { DeviceTimers } from "./timers.js";

export type DeviceState = "idle" | "connecting" | "open" | "closing" | "closed";

export interface DeviceEvents extends Record<string, unknown[]> {
  connected: [];
  disconnected: [{ code: number; reason: string }];
  error: [Error];
  state: [DeviceState];
}

/**
 * The session's lifecycle, under Device (device.ts): opens a socket, sends `connect`, waits for `connected`
 * (or the connect timeout), keeps the session alive with pings, and reconnects by itself after a drop
 * (capped exponential backoff with jitter, the server URLs in turn) until close() or a fatal close code.
 * Device answers the frames (`frame`), announces its resources (`accepted`) and ends its streams and
 * requests (`ended`).
 */
export abstract class Session extends TypedEmitter<DeviceEvents> {
  /** @internal */
  protected readonly opts: Settings;
  /** @internal */
  protected readonly clock: DeviceTimers;
  /** The socket of the current attempt or session. @internal */
  protected ws: DeviceSocket | undefined;
  /** @internal */
  protected _state: DeviceState = "idle";
  /** Set while close() waits for the closing handshake. */
  private closing: Promise<void> | undefined;
  private readonly backoff: Backoff;
  /** The timer of the connecting state: the connect timeout of an attempt, or the delay before the next one (never both). */
  private timer: unknown;
  private pingTimer: unknown;
  private urlIndex = 0;
  private lastSeen = 0;
  /** Pending connect() promises, settled by the next `connected` or fatal close. */
  private waiters: Array<(err?: Error) => void> = [];

  constructor(options: DeviceOptions) {
    super();
    this.opts = settings(options);
    this.clock = this.opts.timers;
    this.backoff = new Backoff(this.opts.reconnectInitialMs, this.opts.reconnectMaxMs, this.opts.random);
  }

  get state(): DeviceState {
    return this._state;
  }

  /** A frame of the open session (after `connected`). @internal */
  protected abstract frame(ws: DeviceSocket, f: Record<string, unknown>): void;
  /** Sends the `describe` frame: on every accepted session, so the server knows the resources. @internal */
  protected abstract describe(): void;
  /** The session is gone (dropped or closed): end its streams and pending requests with `err`. @internal */
  protected abstract ended(err: Error): void;

  /** Opens the session. Resolves once the server accepted it; rejects if it refuses the credentials. */
  connect(): Promise<void> {
    if (this._state === "open") return Promise.resolve();
    // A close in progress finishes first; then this opens a new session.
    if (this._state === "closing" && this.closing) return this.closing.then(() => this.connect());
    return new Promise<void>((resolve, reject) => {
      this.waiters.push((err) => (err ? reject(err) : resolve()));
      if (this._state !== "connecting") this.open();
    });
  }

  /** Closes the session for good (no reconnect). */
  async close(): Promise<void> {
    this.end(new Error("device closed"));
    const ws = this.ws;
    this.ws = undefined;
    this.settle(new Error("closed before connecting"));
    if (ws) ws.onmessage = null; // frames still in flight must not reopen timers or state
    if (ws && ws.readyState < 2) {
      this.setState("closing");
      this.closing = new Promise<void>((resolve) => {
        const prev = ws.onclose;
        const t = this.clock.setTimeout(resolve, 2000);
        ws.onclose = (ev) => {
          this.clock.clearTimeout(t);
          prev?.(ev);
          resolve();
        };
        ws.close(1000, "device closing");
      });
      await this.closing;
      this.closing = undefined;
    }
    this.setState("closed");
  }

  private settle(err?: Error): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w(err);
  }

  private setState(s: DeviceState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit("state", s);
  }

  /**
   * The WebSocket class when the runtime has no global one and none was passed. The portable entry has
   * none; the Node entry (index.ts) loads the `ws` package.
   */
  protected loadWebSocket(): Promise<WebSocketFactory> {
    return Promise.reject(new Error('no WebSocket: this runtime has no global WebSocket. Pass the "WebSocket" option (e.g. the ws package\'s WebSocket class) or a "transport" (see DeviceSocket)'));
  }

  private transport(): Transport | Promise<Transport> {
    if (this.opts.transport) return this.opts.transport;
    const WS = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (WS) return (url) => new WS(url);
    return this.loadWebSocket().then((L) => (url: string) => new L(url));
  }

  private open(): void {
    this.setState("connecting");
    const { urls } = this.opts;
    const url = urls[this.urlIndex % urls.length]!;
    let t: Transport | Promise<Transport>;
    try {
      t = this.transport();
    } catch (err) {
      t = Promise.reject(err);
    }
    if (typeof t === "function") this.attempt(t, url);
    else t.then((f) => this.attempt(f, url), (err: unknown) => this._state === "connecting" && this.stop(err instanceof Error ? err : new Error(String(err))));
  }

  /** Retrying cannot help (no way to open a socket, or a fatal close): connect() rejects and the device stops. */
  private stop(err: Error): void {
    if (this.waiters.length > 0) this.settle(err);
    else this.emit("error", err);
    this.setState("closed");
  }

  private attempt(transport: Transport, url: string): void {
    if (this._state !== "connecting") return;
    let ws: DeviceSocket;
    try {
      ws = transport(url);
    } catch (err) {
      this.emit("error", err as Error);
      this.retry();
      return;
    }
    this.ws = ws;
    let accepted = false;
    let opened = false;
    const clock = this.clock;
    clock.clearTimeout(this.timer);
    this.timer = clock.setTimeout(() => {
      if (!accepted) abandon(ws, CLOSE_KEEPALIVE_TIMEOUT, "connect timeout");
    }, this.opts.connectTimeoutMs);
    ws.onopen = () => {
      opened = true;
      const { user, device, credentials, keepalive } = this.opts;
      ws.send(JSON.stringify({ type: "connect", user, device, credentials, keepalive }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return; // closed or replaced meanwhile
      this.lastSeen = clock.now();
      if (typeof ev.data !== "string") return;
      let f: Record<string, unknown>;
      try {
        f = JSON.parse(ev.data) as Record<string, unknown>;
      } catch {
        return;
      }
      if (!accepted) {
        if (f.type === "connected") {
          accepted = true;
          clock.clearTimeout(this.timer);
          this.onAccepted(f);
        } else if (f.type === "error") {
          this.emit("error", new Error(`server refused the session: ${String(f.message ?? f.code)}`));
        }
        return;
      }
      this.frame(ws, f);
    };
    ws.onerror = () => {
      // After open, the close event follows and drives reconnection. Before open, some runtimes (undici:
      // Node 22, Node 20 --experimental-websocket) fire no close at all for a refused connection: this
      // attempt failed, so retry after the backoff instead of waiting for the connect timeout.
      if (opened || this.ws !== ws) return;
      this.emit("error", new Error(`cannot connect to ${url}`));
      abandon(ws, 1006, "connection failed");
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return; // closed or replaced meanwhile: close() or the next attempt cleared the timers
      this.ws = undefined;
      this.end(new Error("disconnected before the server answered"));
      if (accepted) this.emit("disconnected", { code: ev.code, reason: ev.reason });
      if (this._state === "closing" || this._state === "closed") return;
      if (FATAL_CLOSE_CODES.indexOf(ev.code) !== -1) return this.stop(new Error(`session closed by server: ${ev.code} ${ev.reason}`));
      this.urlIndex++;
      this.retry();
    };
  }

  /** Waits the next backoff delay, then opens a new connection. */
  private retry(): void {
    this.setState("connecting");
    this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => this.open(), this.backoff.next());
  }

  private onAccepted(f: Record<string, unknown>): void {
    this.backoff.reset();
    this.setState("open");
    // The server may ask for a shorter interval than ours, never a longer one.
    const keepalive = typeof f.keepalive === "number" && f.keepalive >= 1 ? Math.min(this.opts.keepalive, f.keepalive) : this.opts.keepalive;
    this.describe();
    const clock = this.clock;
    const ws = this.ws;
    const intervalMs = keepalive * 1000;
    let lastPing = (this.lastSeen = clock.now());
    // Checked four times per interval, so silence is noticed at most a quarter interval after 2 intervals.
    this.pingTimer = clock.setInterval(() => {
      const now = clock.now();
      if (now - this.lastSeen > 2 * intervalMs) {
        // Two silent intervals: the server (or the path to it) is gone. Drop and reconnect.
        if (ws) abandon(ws, CLOSE_KEEPALIVE_TIMEOUT, "keepalive timeout");
        return;
      }
      if (now - lastPing >= intervalMs - 5) {
        lastPing = now;
        send(this.ws, { type: "ping" });
      }
    }, Math.max(1, Math.floor(intervalMs / 4)));
    this.emit("connected");
    this.settle();
  }

  /** The session (or attempt) is over: its timers stop, and Device ends its streams and pending requests with `err`. */
  private end(err: Error): void {
    this.clock.clearTimeout(this.timer);
    this.clock.clearInterval(this.pingTimer);
    this.ended(err);
  }
}
