import { Backoff } from "./backoff.js";
import { TypedEmitter } from "./emitter.js";
import { CLOSE_KEEPALIVE_TIMEOUT, DEVICE_RE, FATAL_CLOSE_CODES, NAME_RE, resourceNameProblem, type ResourceKind } from "./protocol.js";

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

export type { ResourceKind };
export type DeviceState = "idle" | "connecting" | "open" | "closing" | "closed";

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
}

/** Throw this (or any error with a numeric `status`) from a handler to answer with that HTTP status. */
export class DeviceError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "DeviceError";
  }
}

export interface DeviceEvents extends Record<string, unknown[]> {
  connected: [];
  disconnected: [{ code: number; reason: string }];
  error: [Error];
  state: [DeviceState];
}

type Handler = (input: any) => unknown;
/** Called with a property's value (undefined once deleted) and its name. */
export type PropertyHandler = (value: unknown, name: string) => void;
/** How long `property()` / `setProperty()` wait for the server's answer (ms). */
const PROPERTY_TIMEOUT_MS = 10_000;
interface Resource {
  kind: ResourceKind;
  handler: Handler;
  state?: () => unknown;
}

/** Options of an input or io resource. */
export interface InputOptions {
  /**
   * Returns the resource's current state (may be async), served by `GET …/{resource}/api` as `{"in": state}`
   * without running the handler. Without it, the resource's `/api` answers its kind only.
   */
  state?: () => unknown;
}

const DEFAULTS = Object.freeze({ keepalive: 60, reconnectInitialMs: 500, reconnectMaxMs: 30_000, connectTimeoutMs: 10_000 });

/** Output and io resources produce a value: a call answers it and they stream. */
const hasOutput = (kind: ResourceKind | undefined) => kind === "output" || kind === "io";

function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new TypeError(message);
}

/** `http(s)://host[:port][/path]` → `ws(s)://…`, with `/v1/connect` when no path is given. No `URL` (Moddable XS has none). */
function toUrl(server: unknown): string {
  const m = typeof server === "string" && /^(?:http|ws)(s?):\/\/([^/?#]+)([^?#]*)(.*)$/.exec(server);
  check(m, '"server" must be a ws(s):// or http(s):// URL or a list of them');
  const path = m[3] === "" || m[3] === "/" ? "/v1/connect" : m[3];
  return `ws${m[1]}://${m[2]}${path}${m[4]}`;
}

/**
 * A device: declares resources, holds one session to the server, answers calls, reconnects by itself
 * (capped exponential backoff with jitter) and re-announces its resources after every reconnect.
 */
export class Device extends TypedEmitter<DeviceEvents> {
  private readonly urls: string[];
  private readonly opts: Required<Omit<DeviceOptions, "WebSocket" | "transport" | "server">> & { WebSocket?: WebSocketFactory; transport?: Transport };
  private readonly resources = new Map<string, Resource>();
  private readonly streams = new Map<string, ReturnType<typeof setInterval>>();
  /** Resources whose stream sample is still being computed. */
  private readonly busy = new Set<string>();
  /** Set while close() waits for the closing handshake. */
  private closing: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private ws: DeviceSocket | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private urlIndex = 0;
  private _state: DeviceState = "idle";
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private lastSeen = 0;
  private describing = false;
  /** Pending connect() promises, settled by the next `connected` or fatal close. */
  private waiters: Array<(err?: Error) => void> = [];
  private readonly watchers = new Map<string, Set<PropertyHandler>>();
  /** Pending property requests by id: each settles its promise and clears its timer. */
  private readonly requests = new Map<number, (err: Error | undefined, value?: unknown) => void>();
  private lastId = 0;

  constructor(options: DeviceOptions) {
    super();
    // An empty list stays one (bad) server, so toUrl refuses it with the same message.
    const { server } = options;
    this.urls = (Array.isArray(server) && server.length > 0 ? server : [server]).map(toUrl);
    check(typeof options.user === "string" && NAME_RE.test(options.user), '"user" must match [a-zA-Z0-9_]{1,32}');
    check(typeof options.device === "string" && DEVICE_RE.test(options.device), '"device" must match [a-zA-Z0-9_]{1,25}');
    check(options.transport === undefined || typeof options.transport === "function", '"transport" must be a function (url) => socket');
    check(typeof options.credentials === "string" && options.credentials.length > 0, '"credentials" must be a non-empty string');
    this.opts = { ...DEFAULTS, ...options } as typeof this.opts;
    check(Number.isInteger(this.opts.keepalive) && this.opts.keepalive >= 1 && this.opts.keepalive <= 3600, '"keepalive" must be an integer from 1 to 3600');
    this.backoff = new Backoff(this.opts.reconnectInitialMs, this.opts.reconnectMaxMs);
  }

  get state(): DeviceState {
    return this._state;
  }

  /** Output resource: `GET` answers `{"out": handler()}`. */
  output(name: string, handler: () => unknown): this {
    return this.add(name, "output", handler);
  }
  /** Input resource: `POST {"in": x}` calls `handler(x)`; `options.state` reports its current state. */
  input<T = any>(name: string, handler: (input: T) => unknown, options: InputOptions = {}): this {
    return this.add(name, "input", handler, options.state);
  }
  /** Input/output resource: `POST {"in": x}` answers `{"out": handler(x)}`; `options.state` reports its input state. */
  io<T = any>(name: string, handler: (input: T) => unknown, options: InputOptions = {}): this {
    return this.add(name, "io", handler, options.state);
  }
  /** Run resource: `GET` calls `handler()` with no parameters. */
  run(name: string, handler: () => unknown): this {
    return this.add(name, "run", handler);
  }

  private add(name: string, kind: ResourceKind, handler: Handler, state?: () => unknown): this {
    const problem = resourceNameProblem(name);
    check(problem === undefined, `invalid resource name ${JSON.stringify(name)}: ${problem}`);
    check(typeof handler === "function", "handler must be a function");
    check(state === undefined || typeof state === "function", '"state" must be a function');
    this.resources.set(name, { kind, handler, state });
    this.describeSoon();
    return this;
  }

  /** Pushes the current value of an output (or io, called without input) resource to its subscribers. */
  async stream(name: string): Promise<void> {
    const r = this.resources.get(name);
    if (!r) throw new TypeError(`unknown resource "${name}"`);
    // Input and run handlers actuate things: streaming must never call them.
    if (!hasOutput(r.kind)) throw new TypeError(`"${name}" is an ${r.kind} resource: only output and io resources stream`);
    if (this._state !== "open") return;
    const out = await r.handler(undefined);
    this.send({ type: "data", resource: name, out: out ?? null });
  }

  /**
   * Reads a property kept on the server (docs/protocol.md `property_get`). Rejects while not connected, and
   * with an error whose `code` is `property_not_found` when there is none.
   */
  property(name: string): Promise<unknown> {
    return this.propertyRequest({ type: "property_get", name });
  }

  /** Writes a property on the server; resolves once it is stored. Rejects while not connected. */
  async setProperty(name: string, value: unknown): Promise<void> {
    check(value !== undefined, "property value must not be undefined");
    await this.propertyRequest({ type: "property_set", name, value });
  }

  /**
   * Calls `handler(value, name)` for a property (or every property with `"*"`): with each value the server
   * sends when the session opens, and on every change made elsewhere (REST, another client) while connected.
   * `value` is undefined when the property was deleted. Returns a function that removes the handler.
   */
  onProperty(name: string, handler: PropertyHandler): () => void {
    check(typeof name === "string" && name.length > 0, "property name must be a non-empty string");
    check(typeof handler === "function", "handler must be a function");
    let set = this.watchers.get(name);
    if (!set) this.watchers.set(name, (set = new Set()));
    set.add(handler);
    return () => {
      this.watchers.get(name)?.delete(handler);
    };
  }

  private propertyRequest(frame: { type: string; name: string; value?: unknown }): Promise<unknown> {
    check(typeof frame.name === "string" && frame.name.length > 0 && frame.name.length <= 128, "property name must be 1 to 128 characters");
    if (this._state !== "open") return Promise.reject(new Error("device is not connected"));
    const id = (this.lastId = (this.lastId + 1) % Number.MAX_SAFE_INTEGER);
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => this.endRequest(id, new Error("the server did not answer the property request in time")), PROPERTY_TIMEOUT_MS);
      this.requests.set(id, (err, value) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      });
      this.send({ ...frame, id });
    });
  }

  /** Settles a pending property request once: on its answer, its timeout or the end of the session. */
  private endRequest(id: number, err: Error | undefined, value?: unknown): void {
    const settle = this.requests.get(id);
    this.requests.delete(id);
    settle?.(err, value);
  }

  private failRequests(err: Error): void {
    for (const id of this.requests.keys()) this.endRequest(id, err);
  }

  private propertyFrame(f: Record<string, unknown>): void {
    if (typeof f.id === "number") {
      return this.endRequest(f.id, f.type === "error" ? Object.assign(new Error(String(f.message ?? f.code)), { code: f.code }) : undefined, f.value);
    }
    if (f.type !== "property" || typeof f.name !== "string") return;
    const value = f.deleted === true ? undefined : f.value;
    for (const key of [f.name, "*"]) {
      for (const h of this.watchers.get(key) ?? []) {
        try {
          h(value, f.name);
        } catch (err) {
          this.emit("error", err as Error);
        }
      }
    }
  }

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
    this.stopTimers();
    const ws = this.ws;
    this.ws = undefined;
    this.settle(new Error("closed before connecting"));
    this.failRequests(new Error("device closed"));
    if (ws) ws.onmessage = null; // frames still in flight must not reopen timers or state
    if (ws && ws.readyState < 2) {
      this.setState("closing");
      this.closing = new Promise<void>((resolve) => {
        const prev = ws.onclose;
        const t = setTimeout(resolve, 2000);
        ws.onclose = (ev) => {
          clearTimeout(t);
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
    const url = this.urls[this.urlIndex % this.urls.length]!;
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
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => {
      if (!accepted) this.abandon(ws, CLOSE_KEEPALIVE_TIMEOUT, "connect timeout");
    }, this.opts.connectTimeoutMs);
    ws.onopen = () => {
      opened = true;
      const { user, device, credentials, keepalive } = this.opts;
      ws.send(JSON.stringify({ type: "connect", user, device, credentials, keepalive }));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return; // closed or replaced meanwhile
      this.lastSeen = Date.now();
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
          clearTimeout(this.connectTimer);
          this.onAccepted(f);
        } else if (f.type === "error") {
          this.emit("error", new Error(`server refused the session: ${String(f.message ?? f.code)}`));
        }
        return;
      }
      void this.onFrame(ws, f);
    };
    ws.onerror = () => {
      // After open, the close event follows and drives reconnection. Before open, some runtimes (undici:
      // Node 22, Node 20 --experimental-websocket) fire no close at all for a refused connection: this
      // attempt failed, so retry after the backoff instead of waiting for the connect timeout.
      if (opened || this.ws !== ws) return;
      this.emit("error", new Error(`cannot connect to ${url}`));
      this.abandon(ws, 1006, "connection failed");
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return; // closed or replaced meanwhile: close() or the next attempt cleared the timers
      this.ws = undefined;
      this.stopTimers();
      this.failRequests(new Error("disconnected before the server answered"));
      if (accepted) this.emit("disconnected", { code: ev.code, reason: ev.reason });
      if (this._state === "closing" || this._state === "closed") return;
      if (FATAL_CLOSE_CODES.indexOf(ev.code) !== -1) return this.stop(new Error(`session closed by server: ${ev.code} ${ev.reason}`));
      this.urlIndex++;
      this.retry();
    };
  }

  private retry(): void {
    this.setState("connecting");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.open(), this.backoff.next());
  }

  private onAccepted(f: Record<string, unknown>): void {
    this.backoff.reset();
    this.setState("open");
    // The server may ask for a shorter interval than ours, never a longer one.
    const keepalive = typeof f.keepalive === "number" && f.keepalive >= 1 ? Math.min(this.opts.keepalive, f.keepalive) : this.opts.keepalive;
    this.describe();
    this.lastSeen = Date.now();
    const ws = this.ws;
    const intervalMs = keepalive * 1000;
    let lastPing = Date.now();
    // Checked four times per interval, so silence is noticed at most a quarter interval after 2 intervals.
    this.pingTimer = setInterval(() => {
      const now = Date.now();
      if (now - this.lastSeen > 2 * intervalMs) {
        // Two silent intervals: the server (or the path to it) is gone. Drop and reconnect.
        if (ws) this.abandon(ws, CLOSE_KEEPALIVE_TIMEOUT, "keepalive timeout");
        return;
      }
      if (now - lastPing >= intervalMs - 5) {
        lastPing = now;
        this.send({ type: "ping" });
      }
    }, Math.max(1, Math.floor(intervalMs / 4)));
    this.emit("connected");
    this.settle();
  }

  /**
   * Gives up on a socket at once and handles it as closed. Waiting for the closing handshake would stall
   * reconnection: a dead peer never answers it (ws waits 30 s).
   */
  private abandon(ws: DeviceSocket, code: number, reason: string): void {
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

  private async onFrame(ws: DeviceSocket, f: Record<string, unknown>): Promise<void> {
    const { type, id, resource } = f;
    if (type === "property" || type === "error") this.propertyFrame(f);
    else if (typeof resource !== "string") return;
    else if (type === "call" || type === "state") {
      if (typeof id === "number") await this.answer(ws, id, resource, f.in, type === "state");
    } else if (type === "stream") {
      if (typeof f.interval === "number") this.startStream(resource, f.interval);
    } else if (type === "unstream") this.stopStream(resource);
  }

  /**
   * Runs a handler (or, for a `state` frame, the resource's state function; the handler never runs) and
   * answers on the socket the call came from: ids belong to one session only.
   */
  private async answer(ws: DeviceSocket, id: number, name: string, input: unknown, state: boolean): Promise<void> {
    const r = this.resources.get(name);
    const run = state ? r?.state : r?.handler;
    let reply: object;
    if (!r || !run) {
      reply = { type: "error", id, status: 404, code: "resource_not_found", message: `no ${state ? "state for" : "resource"} "${name}"` };
    } else {
      try {
        const out = await run(input);
        reply = state ? { type: "result", id, in: out ?? null } : hasOutput(r.kind) ? { type: "result", id, out: out ?? null } : { type: "result", id };
      } catch (err) {
        const status = (err as { status?: unknown } | null)?.status;
        reply = { type: "error", id, status: !state && typeof status === "number" ? status : 500, message: err instanceof Error ? err.message : String(err) };
      }
    }
    if (this.ws === ws) this.send(reply);
  }

  private startStream(name: string, intervalMs: number): void {
    this.stopStream(name);
    const kind = this.resources.get(name)?.kind;
    if (intervalMs <= 0 || !hasOutput(kind)) return;
    const ms = Math.max(50, intervalMs);
    const sample = () => {
      // A slow or hung handler: skip ticks instead of piling up calls.
      if (this.busy.has(name)) return;
      this.busy.add(name);
      void this.stream(name)
        .catch((e: unknown) => this.emit("error", e as Error))
        .finally(() => this.busy.delete(name));
    };
    this.streams.set(name, setInterval(sample, ms));
    sample();
  }

  private stopStream(name: string): void {
    clearInterval(this.streams.get(name));
    this.streams.delete(name);
  }

  private stopTimers(): void {
    clearTimeout(this.connectTimer);
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    for (const t of this.streams.values()) clearInterval(t);
    this.streams.clear();
  }

  private describeSoon(): void {
    if (this.describing || this._state !== "open") return;
    this.describing = true;
    // Not queueMicrotask: Moddable XS and older engines lack it.
    void Promise.resolve().then(() => {
      this.describing = false;
      this.describe();
    });
  }

  private describe(): void {
    const resources: Record<string, { kind: ResourceKind; state: true | undefined }> = {};
    for (const [name, r] of this.resources) resources[name] = { kind: r.kind, state: r.state && true }; // JSON drops state: undefined
    this.send({ type: "describe", resources });
  }

  private send(frame: object): void {
    const ws = this.ws;
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
  }
}
