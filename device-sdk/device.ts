import { check, type DeviceOptions } from "./options.js";
import type { ResourceKind } from "./protocol.js";
import { answer, declare, describeFrame, hasOutput, type Handler, type InputOptions, type Resources } from "./resources.js";
import { Session } from "./session.js";
import { send, type DeviceSocket } from "./socket.js";
import { sampler, type Sampler } from "./streams.js";
import type { DeviceTimers } from "./timers.js";

export { DeviceError } from "./resources.js";
export type { DeviceEvents, DeviceState } from "./session.js";
export type { DeviceOptions, InputOptions, ResourceKind, DeviceTimers };
export type { DeviceSocket, Transport, WebSocketFactory, WebSocketLike } from "./socket.js";

/** Called with a property's value (undefined once deleted) and its name. */
export type PropertyHandler = (value: unknown, name: string) => void;
/** How long `property()` / `setProperty()` wait for the server's answer (ms). */
const PROPERTY_TIMEOUT_MS = 10_000;

/**
 * A device: declares resources, holds one session to the server (session.ts: connecting, keepalive,
 * reconnecting with backoff), answers calls, streams values, reads and writes its properties, and
 * re-announces its resources after every reconnect.
 */
export class Device extends Session {
  private readonly resources: Resources = new Map();
  private readonly streams: Sampler;
  private describing = false;
  private readonly watchers = new Map<string, Set<PropertyHandler>>();
  /** Pending property requests by id: each settles its promise and clears its timer. */
  private readonly requests = new Map<number, (err: Error | undefined, value?: unknown) => void>();
  private lastId = 0;

  constructor(options: DeviceOptions) {
    super(options);
    this.streams = sampler(this.clock, (name) => this.stream(name), (err) => this.emit("error", err));
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
    declare(this.resources, name, kind, handler, state);
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
    send(this.ws, { type: "data", resource: name, out: out ?? null });
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
      const timer = this.clock.setTimeout(() => this.endRequest(id, new Error("the server did not answer the property request in time")), PROPERTY_TIMEOUT_MS);
      this.requests.set(id, (err, value) => {
        this.clock.clearTimeout(timer);
        if (err) reject(err);
        else resolve(value);
      });
      send(this.ws, { ...frame, id });
    });
  }

  /** Settles a pending property request once: on its answer, its timeout or the end of the session. */
  private endRequest(id: number, err: Error | undefined, value?: unknown): void {
    const settle = this.requests.get(id);
    this.requests.delete(id);
    settle?.(err, value);
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

  /** @internal */
  protected ended(err: Error): void {
    this.streams.clear();
    for (const id of this.requests.keys()) this.endRequest(id, err);
  }

  /** @internal */
  protected async frame(ws: DeviceSocket, f: Record<string, unknown>): Promise<void> {
    const { type, id, resource, interval } = f;
    if (type === "property" || type === "error") this.propertyFrame(f);
    else if (typeof resource !== "string") return;
    else if (type === "call" || type === "state") {
      // Ids belong to one session only: a handler that outlived its socket answers nowhere.
      if (typeof id !== "number") return;
      const reply = await answer(this.resources, id, resource, f.in, type === "state");
      if (this.ws === ws) send(ws, reply);
    } else if (type === "stream") {
      if (typeof interval === "number") this.streams.start(resource, interval > 0 && hasOutput(this.resources.get(resource)?.kind) ? interval : 0);
    } else if (type === "unstream") this.streams.stop(resource);
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

  /** @internal */
  protected describe(): void {
    send(this.ws, describeFrame(this.resources));
  }
}
