/**
 * An emulated Thinger device for tests: the legacy protocol as the "thinger.io" Arduino library and the old
 * Linux client speak it, and IOTMP as IOTMP-Linux speaks it (dialect 1 = release 1.3 with legacy PSON, dialect
 * 2 = HEAD with PSON v2), over TCP, TLS or WebSocket (binary bytes in TEXT frames, as IOTMP-Linux sends them).
 *
 * It encodes exactly what the real clients send (THINGER-PROTOCOL.md): legacy field order 1,2,3,4,6 and the
 * float32 narrowing of protoson; IOTMP-Linux's field orders (payload before stream id in OK/ERROR/CONNECT,
 * stream id first in STREAM_DATA), its top-level number rules, sorted object keys (nlohmann::json) in dialect 2,
 * CONNECT stream id 17767 and the following ids from glibc's unseeded rand(). A test checks it against the
 * captured vectors (test/thinger/emulator.test.ts).
 */
import { EventEmitter } from "node:events";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";
import { WebSocket } from "ws";
import {
  FrameReader,
  IOTMP_KEEPALIVE,
  IOTMP_SERVER_RUN,
  IOTMP_TYPE,
  LEGACY_FLAG,
  LEGACY_KEEPALIVE,
  decodeIotmpFrame,
  decodeLegacyFrame,
  encodeIotmpMessage,
  encodeLegacyMessage,
  type Frame,
  type IotmpDialect,
  type IotmpEncodeOptions,
  type IotmpMessage,
  type LegacyMessage,
  type PsonValue,
} from "../../server/thinger/index.js";

export type ThingerProtocol = "legacy" | "iotmp1" | "iotmp2";
export type ThingerTransport = "tcp" | "tls" | "ws";

/** Thrown by a resource handler: legacy answers flag 2 (no detail); IOTMP answers ERROR `{"error":message}` + params `code`. */
export class ThingerDeviceError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

type Maybe<T> = T | Promise<T>;

/**
 * One resource, by kind (`fn` 1 run, 2 input, 3 output, 4 io). `al` is the legacy access level (default 0).
 * Handlers may return a promise (the answer waits for it; one that never settles makes a device that never answers).
 */
export type ThingerResource =
  | { kind: "run"; run?: () => unknown; al?: number }
  | { kind: "input"; in: (v: PsonValue) => unknown; state?: () => Maybe<PsonValue>; al?: number }
  | { kind: "output"; out: () => Maybe<PsonValue>; al?: number }
  | { kind: "io"; io: (v: PsonValue | undefined) => Maybe<PsonValue>; al?: number };

function isThenable<T>(v: Maybe<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null | undefined)?.then === "function";
}

function then<T, U>(v: Maybe<T>, f: (t: T) => U): Maybe<U> {
  return isThenable(v) ? v.then(f) : f(v);
}

/** Runs `f`; answers synchronously when it is synchronous (keeps reply order), after the promise otherwise. */
function settle<T>(f: () => Maybe<T>, done: (v: T) => void, failed: (e: unknown) => void): void {
  let v: Maybe<T>;
  try {
    v = f();
  } catch (err) {
    failed(err);
    return;
  }
  if (isThenable(v)) v.then(done, failed);
  else done(v);
}

const FN = { run: 1, input: 2, output: 3, io: 4 } as const;

export interface ThingerDeviceOptions {
  protocol: ThingerProtocol;
  /** Default "tcp". "ws" is IOTMP only. */
  transport?: ThingerTransport;
  host?: string;
  port?: number;
  /** WebSocket URL, e.g. `ws://127.0.0.1:1234/iotmp` (transport "ws"). */
  url?: string;
  user: string;
  device: string;
  credentials: string;
  resources?: Record<string, ThingerResource>;
  /** Extra TLS options (e.g. `ca` for a checked connection). Default: no certificate check, as IOTMP-Linux. */
  tls?: ConnectionOptions;
  /** Send a keep-alive every `keepAliveMs` (the clients use 60,000). 0 (default) = only on `keepAlive()`. */
  keepAliveMs?: number;
  /** Send one keep-alive right after authentication (the legacy Linux client does). Default false. */
  keepAliveAfterAuth?: boolean;
  /**
   * Disconnect when no keep-alive came from the server by the next keep-alive tick (legacy clients and
   * IOTMP-Linux 1.3 do; IOTMP-Linux HEAD does not). Default: true for legacy and iotmp1, false for iotmp2.
   */
  requireKeepAliveEcho?: boolean;
  /** Answer calls, describes and streams (default true). False: only record frames; drive it with `sendRaw`. */
  autoRespond?: boolean;
  /** How long `connect()` waits for the server's answer (the Arduino library waits 10 s). */
  authTimeoutMs?: number;
  /** Answer the first N describes of the whole resource tree with an error (a lost or refused describe). */
  refuseDescribes?: number;
}

/** A frame received from the server, decoded. */
export interface ThingerDeviceFrame {
  type: number;
  body: Uint8Array;
  keepAlive: boolean;
  legacy?: LegacyMessage;
  iotmp?: IotmpMessage;
}

/** glibc's `rand()` (TYPE_3 additive feedback) from its default seed 1: IOTMP-Linux never seeds it. */
export function glibcRand(seed = 1): () => number {
  const r: number[] = [seed];
  for (let i = 1; i < 31; i++) {
    const hi = Math.floor(r[i - 1]! / 127773);
    const lo = r[i - 1]! % 127773;
    let word = 16807 * lo - 2836 * hi;
    if (word < 0) word += 2147483647;
    r.push(word);
  }
  for (let i = 31; i < 34; i++) r.push(r[i - 31]!);
  for (let i = 34; i < 344; i++) r.push((r[i - 31]! + r[i - 3]!) >>> 0);
  return () => {
    const next = (r[r.length - 31]! + r[r.length - 3]!) >>> 0;
    r.push(next);
    r.shift();
    return next >>> 1;
  };
}

/** Deep copy with object keys sorted (nlohmann::json objects are std::map). */
function sortKeys(v: PsonValue): PsonValue {
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(sortKeys);
  const out: { [k: string]: PsonValue } = {};
  for (const k of Object.keys(v).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) out[k] = sortKeys(v[k]!);
  return out;
}

interface Stream {
  id: number;
  resource: string;
  intervalMs: number;
  timer?: NodeJS.Timeout;
}

export interface ThingerDevice {
  on(event: "frame", listener: (f: ThingerDeviceFrame) => void): this;
  on(event: "keepalive", listener: () => void): this;
  on(event: "close", listener: (reason: string) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  /** The set of streams the server has open on this device changed (see `openStreams()`). */
  on(event: "streams", listener: () => void): this;
}

export class ThingerDevice extends EventEmitter {
  readonly protocol: ThingerProtocol;
  readonly transport: ThingerTransport;
  /** Every frame received, in order. */
  readonly received: ThingerDeviceFrame[] = [];
  /** Every byte string sent, in order (one entry per message). */
  readonly sent: Uint8Array[] = [];
  private readonly opts: ThingerDeviceOptions;
  private readonly resources: Map<string, ThingerResource>;
  private readonly rand = glibcRand();
  private reader = new FrameReader();
  private socket: Socket | undefined;
  private ws: WebSocket | undefined;
  private state: "idle" | "authenticating" | "open" | "closed" = "idle";
  private authWaiter: ((f: ThingerDeviceFrame | undefined) => void) | undefined;
  private readonly streams = new Map<number, Stream>();
  private keepAliveTimer: NodeJS.Timeout | undefined;
  private echoSinceTick = true;
  private readonly pending = new Map<number, (f: ThingerDeviceFrame | undefined) => void>();
  private closedPromise: Promise<void> | undefined;
  private closeReason = "closed";

  constructor(opts: ThingerDeviceOptions) {
    super();
    if (opts.transport === "ws" && opts.protocol === "legacy") throw new TypeError("the legacy protocol has no WebSocket transport");
    if ((opts.transport ?? "tcp") === "ws" ? !opts.url : opts.port === undefined) throw new TypeError('"port" (or "url" for ws) is required');
    this.opts = opts;
    this.protocol = opts.protocol;
    this.transport = opts.transport ?? "tcp";
    this.resources = new Map(Object.entries(opts.resources ?? {}));
  }

  get dialect(): IotmpDialect | undefined {
    return this.protocol === "iotmp1" ? 1 : this.protocol === "iotmp2" ? 2 : undefined;
  }

  get connected(): boolean {
    return this.state === "open";
  }

  /** Adds or replaces a resource (the sketch's `thing["name"] << …`). */
  resource(name: string, r: ThingerResource): this {
    this.resources.set(name, r);
    return this;
  }

  /** Opens the transport, authenticates, and resolves "ok" or "refused" (refusal, close or timeout). */
  async connect(): Promise<"ok" | "refused"> {
    if (this.state !== "idle") throw new Error("connect() called twice");
    this.state = "authenticating";
    await this.openTransport();
    const answer = new Promise<ThingerDeviceFrame | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), this.opts.authTimeoutMs ?? 10_000);
      this.authWaiter = (f) => {
        clearTimeout(timer);
        this.authWaiter = undefined;
        // Open at once, in the same read as the auth answer: a server request that arrived in that chunk
        // (Thinger servers describe the device right away) is handled, as a real client would after its handshake.
        if (this.authOk(f) && this.state === "authenticating") this.state = "open";
        resolve(f);
      };
    });
    if (this.protocol === "legacy") {
      this.sendLegacy({ flag: LEGACY_FLAG.AUTH, resource: [this.opts.user, this.opts.device, this.opts.credentials] });
    } else {
      const m: IotmpMessage = { type: IOTMP_TYPE.CONNECT, streamId: this.nextId(), payload: [this.opts.user, this.opts.device, this.opts.credentials] };
      if (this.dialect === 1) m.params = 1;
      this.sendIotmp(m);
    }
    const f = await answer;
    if (!this.authOk(f)) {
      await this.close("refused");
      return "refused";
    }
    if (this.opts.keepAliveAfterAuth) this.keepAlive();
    const every = this.opts.keepAliveMs ?? 0;
    if (every > 0) {
      this.keepAliveTimer = setInterval(() => this.keepAliveTick(), every);
      this.keepAliveTimer.unref();
    }
    return "ok";
  }

  private refusedDescribes = 0;

  /** True (and counted) while `refuseDescribes` tree describes are still to be refused. */
  private refuseDescribe(): boolean {
    if (this.refusedDescribes >= (this.opts.refuseDescribes ?? 0)) return false;
    this.refusedDescribes++;
    return true;
  }

  /** Legacy clients accept any flag-1 message; IOTMP-Linux checks only the type (1.3 also the id). */
  private authOk(f: ThingerDeviceFrame | undefined): boolean {
    return f !== undefined && (this.protocol === "legacy" ? f.legacy?.flag === LEGACY_FLAG.REQUEST_OK : f.iotmp?.type === IOTMP_TYPE.OK);
  }

  /** Sends a keep-alive now (`02 00` or `05 00`). */
  keepAlive(): void {
    this.sendRaw(this.protocol === "legacy" ? LEGACY_KEEPALIVE : IOTMP_KEEPALIVE);
  }

  private keepAliveTick(): void {
    const require = this.opts.requireKeepAliveEcho ?? this.protocol !== "iotmp2";
    if (require && !this.echoSinceTick) {
      void this.close("keepalive");
      return;
    }
    this.echoSinceTick = false;
    this.keepAlive();
  }

  /** Sends bytes as they are (one WebSocket TEXT frame on ws). */
  sendRaw(bytes: Uint8Array): void {
    if (this.state === "closed") return;
    this.sent.push(bytes);
    if (this.ws) this.ws.send(bytes, { binary: false });
    else this.socket?.write(bytes);
  }

  /** Sends a legacy MESSAGE. */
  sendLegacy(m: LegacyMessage): void {
    this.sendRaw(encodeLegacyMessage(m));
  }

  /** Sends an IOTMP message the way IOTMP-Linux orders and encodes its fields. */
  sendIotmp(m: IotmpMessage): void {
    const dialect = this.dialect ?? 2;
    const opts: IotmpEncodeOptions = {
      numberMode: dialect === 1 ? "iotmp-linux-1.3" : "iotmp-linux",
      fieldOrder: m.type === IOTMP_TYPE.STREAM_DATA ? [1, 2, 3, 4] : [3, 2, 4, 1],
    };
    const sorted = dialect === 2 ? { ...m, ...pick(m, sortKeys) } : m;
    this.sendRaw(encodeIotmpMessage(sorted, dialect, opts));
  }

  /**
   * The sketch's `thing.stream(resource)`: pushes the current value to the resource's open streams (legacy:
   * flag 6 `{"out"|"in": v}`; IOTMP: STREAM_DATA with the raw value). False when no stream is open.
   */
  stream(resource: string): boolean {
    const open = [...this.streams.values()].filter((s) => s.resource === resource);
    for (const s of open) this.pushSample(s, this.protocol === "legacy" ? LEGACY_FLAG.STREAM_EVENT : undefined);
    return open.length > 0;
  }

  /** Stream ids the server has open on this device, by resource. */
  openStreams(): Array<{ id: number; resource: string; intervalMs: number }> {
    return [...this.streams.values()].map(({ id, resource, intervalMs }) => ({ id, resource, intervalMs }));
  }

  /**
   * A device-initiated request (legacy flags 8-12; IOTMP RUN with the server-run code in RESOURCE, as
   * IOTMP-Linux does). With `confirm` (default) it carries a fresh stream id and resolves with the reply
   * (undefined on close or after `timeoutMs`).
   */
  request(m: LegacyMessage | IotmpMessage, confirm = true, timeoutMs = 10_000): Promise<ThingerDeviceFrame | undefined> {
    const id = confirm ? this.nextId() : undefined;
    if (this.protocol === "legacy") this.sendLegacy({ ...(m as LegacyMessage), ...(id !== undefined ? { streamId: id } : {}) });
    else this.sendIotmp({ ...(m as IotmpMessage), ...(id !== undefined ? { streamId: id } : {}) });
    if (id === undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.pending.set(id, (f) => {
        clearTimeout(timer);
        this.pending.delete(id);
        resolve(f);
      });
    });
  }

  /**
   * The client's property requests (THINGER-PROTOCOL §2.8, §3.8): `get_property` (legacy flag 11; IOTMP RUN
   * READ_PROPERTY) and `set_property` (flag 12; RUN SET_PROPERTY, the value in the payload). The Arduino library
   * always confirms a get and confirms a set only when asked (`confirm`); IOTMP clients confirm both. `layout`
   * picks where an IOTMP client puts the code: "linux" (IOTMP-Linux: code in RESOURCE, name in PARAMETERS) or
   * "embedded" (IOTMP-Embedded / IOTMP-Arduino: code in PARAMETERS, name in RESOURCE).
   */
  propertyRequest(
    op: "get" | "set",
    name: PsonValue,
    value?: PsonValue,
    opts: { confirm?: boolean; layout?: "linux" | "embedded"; timeoutMs?: number } = {},
  ): Promise<ThingerDeviceFrame | undefined> {
    const payload = op === "set" && value !== undefined ? { payload: value } : {};
    if (this.protocol === "legacy") {
      return this.request({ flag: op === "get" ? LEGACY_FLAG.GET_PROPERTY : LEGACY_FLAG.SET_PROPERTY, identifier: name, ...payload }, opts.confirm ?? true, opts.timeoutMs);
    }
    const code = op === "get" ? IOTMP_SERVER_RUN.READ_PROPERTY : IOTMP_SERVER_RUN.SET_PROPERTY;
    const where = (opts.layout ?? "linux") === "linux" ? { resource: code, params: name } : { params: code, resource: name };
    return this.request({ type: IOTMP_TYPE.RUN, ...where, ...payload }, opts.confirm ?? true, opts.timeoutMs);
  }

  /** Resolves with the next received frame (after those already in `received`) matching `pred`. */
  nextFrame(pred: (f: ThingerDeviceFrame) => boolean = () => true, timeoutMs = 8_000): Promise<ThingerDeviceFrame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off("frame", on);
        reject(new Error("no matching frame in time"));
      }, timeoutMs);
      const on = (f: ThingerDeviceFrame): void => {
        if (!pred(f)) return;
        clearTimeout(timer);
        this.off("frame", on);
        resolve(f);
      };
      this.on("frame", on);
    });
  }

  /** Resolves when the transport has closed (by either side), with the reason. */
  closed(): Promise<string> {
    return (this.closedPromise ?? Promise.resolve()).then(() => this.closeReason);
  }

  /** Closes the socket (the clients just close; no DISCONNECT). */
  async close(reason = "closed"): Promise<void> {
    if (this.state === "closed") return this.closedPromise;
    this.closeReason = reason;
    this.teardown();
    if (this.ws) this.ws.close();
    else this.socket?.end();
    // A peer that never finishes the close gets its socket destroyed.
    const force = setTimeout(() => (this.ws ? this.ws.terminate() : this.socket?.destroy()), 1_000);
    await this.closedPromise;
    clearTimeout(force);
  }

  // ————————————————————————————————————————————————————————— transport

  private async openTransport(): Promise<void> {
    const host = this.opts.host ?? "127.0.0.1";
    if (this.transport === "ws") {
      const ws = new WebSocket(this.opts.url!, "iotmp", { rejectUnauthorized: false, skipUTF8Validation: true, ...(this.opts.tls ?? {}) });
      this.ws = ws;
      this.closedPromise = new Promise((resolve) => ws.once("close", () => resolve()));
      ws.on("message", (data: Buffer) => this.onBytes(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)));
      ws.on("close", () => this.onClose());
      ws.on("error", (err) => this.emitError(err));
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      return;
    }
    const socket =
      this.transport === "tls"
        ? tlsConnect({ host, port: this.opts.port!, servername: host === "127.0.0.1" ? undefined : host, rejectUnauthorized: false, ...(this.opts.tls ?? {}) })
        : netConnect({ host, port: this.opts.port! });
    this.socket = socket;
    socket.setNoDelay(true);
    this.closedPromise = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("data", (d: Buffer) => this.onBytes(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)));
    socket.on("close", () => this.onClose());
    socket.on("error", (err) => this.emitError(err));
    await new Promise<void>((resolve, reject) => {
      socket.once(this.transport === "tls" ? "secureConnect" : "connect", () => resolve());
      socket.once("error", reject);
    });
  }

  private emitError(err: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", err);
  }

  private onClose(): void {
    this.teardown();
    this.authWaiter?.(undefined);
    for (const p of [...this.pending.values()]) p(undefined);
    this.emit("close", this.closeReason);
  }

  private teardown(): void {
    this.state = "closed";
    clearInterval(this.keepAliveTimer);
    for (const s of this.streams.values()) clearInterval(s.timer);
    const had = this.streams.size > 0;
    this.streams.clear();
    if (had) this.emit("streams");
  }

  private onBytes(chunk: Uint8Array): void {
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      // A real client would desync; the emulator reports and drops the connection.
      this.emitError(err as Error);
      void this.close("codec");
      return;
    }
    for (const f of frames) {
      let decoded: ThingerDeviceFrame;
      try {
        decoded = this.decode(f);
      } catch (err) {
        this.emitError(err as Error);
        void this.close("codec");
        return;
      }
      this.received.push(decoded);
      this.emit("frame", decoded);
      if (decoded.keepAlive) {
        this.echoSinceTick = true;
        this.emit("keepalive");
        continue;
      }
      if (this.authWaiter) {
        this.authWaiter(decoded);
        continue;
      }
      const id = decoded.legacy?.streamId ?? decoded.iotmp?.streamId;
      if (id !== undefined && this.pending.has(id) && this.isReply(decoded)) {
        this.pending.get(id)!(decoded);
        continue;
      }
      if (this.state === "open" && (this.opts.autoRespond ?? true)) {
        try {
          if (decoded.legacy) this.onLegacy(decoded.legacy);
          else if (decoded.iotmp) this.onIotmp(decoded.iotmp);
        } catch (err) {
          this.emitError(err as Error);
        }
      }
    }
  }

  private decode(f: Frame): ThingerDeviceFrame {
    if (this.protocol === "legacy") {
      const d = decodeLegacyFrame(f);
      return d.kind === "keepalive" ? { ...f, keepAlive: true } : { ...f, keepAlive: false, legacy: d.message };
    }
    const m = decodeIotmpFrame(f, this.dialect);
    return { ...f, keepAlive: f.type === IOTMP_TYPE.KEEP_ALIVE, iotmp: m };
  }

  private isReply(f: ThingerDeviceFrame): boolean {
    if (f.legacy) return f.legacy.flag === LEGACY_FLAG.REQUEST_OK || f.legacy.flag === LEGACY_FLAG.REQUEST_ERROR;
    return f.iotmp?.type === IOTMP_TYPE.OK || f.iotmp?.type === IOTMP_TYPE.ERROR;
  }

  private nextId(): number {
    return this.rand() & 0xffff;
  }

  // ————————————————————————————————————————————————————————— legacy

  private onLegacy(m: LegacyMessage): void {
    const flag = m.flag ?? LEGACY_FLAG.RUN;
    const path = Array.isArray(m.resource) && m.resource.every((s) => typeof s === "string") ? (m.resource as string[]) : undefined;
    const reply = (ok: boolean, payload?: PsonValue): void => {
      // A request without a stream id gets no reply (thinger.h).
      if (m.streamId === undefined) return;
      this.sendLegacy({ streamId: m.streamId, flag: ok ? LEGACY_FLAG.REQUEST_OK : LEGACY_FLAG.REQUEST_ERROR, ...(payload !== undefined ? { payload } : {}) });
    };
    switch (flag) {
      case LEGACY_FLAG.RUN: {
        if (!path) return reply(false);
        if (path.length === 1 && path[0] === "api") return this.refuseDescribe() ? reply(false) : reply(true, this.legacyTree());
        const describe = path.length > 1 && path[path.length - 1] === "api";
        const name = (describe ? path.slice(0, -1) : path).join("/");
        const r = this.resources.get(name);
        if (!r) return reply(false);
        settle(
          () => (describe ? this.apiIo(r) : this.run(r, m.payload)),
          (out) => {
            reply(true, out);
            if (!describe && r.kind === "input") this.echoInput(name);
          },
          () => reply(false),
        );
        return;
      }
      case LEGACY_FLAG.START_STREAM: {
        const name = path?.join("/");
        const r = name === undefined ? undefined : this.resources.get(name);
        if (!r || name === undefined || m.streamId === undefined) return reply(false);
        // One stream per resource: a new START_STREAM replaces the previous one.
        for (const s of [...this.streams.values()]) if (s.resource === name) this.stopStream(s.id);
        const intervalMs = typeof m.payload === "number" && m.payload > 0 ? m.payload : 0;
        const s: Stream = { id: m.streamId, resource: name, intervalMs };
        this.streams.set(s.id, s);
        this.emit("streams");
        reply(true);
        if (r.kind === "input") this.pushSample(s, LEGACY_FLAG.STREAM_EVENT);
        else if (intervalMs > 0) {
          this.pushSample(s, LEGACY_FLAG.STREAM_SAMPLE);
          s.timer = setInterval(() => this.pushSample(s, LEGACY_FLAG.STREAM_SAMPLE), intervalMs);
        }
        return;
      }
      case LEGACY_FLAG.STOP_STREAM: {
        const name = path?.join("/");
        for (const s of [...this.streams.values()]) if (s.resource === name || s.id === m.streamId) this.stopStream(s.id);
        return reply(true);
      }
      default:
        return; // replies to nothing pending, or flags a device does not serve
    }
  }

  /** `{name: {"al","fn"}, parent: {"/": {child: …}}}` (thinger_resource.hpp). */
  private legacyTree(): PsonValue {
    const root: { [k: string]: PsonValue } = {};
    for (const [name, r] of this.resources) {
      const parts = name.split("/");
      let level = root;
      parts.forEach((part, i) => {
        const node = (level[part] ??= {}) as { [k: string]: PsonValue };
        if (i === parts.length - 1) {
          const children = node["/"];
          delete node["/"];
          node.al = r.al ?? 0;
          node.fn = FN[r.kind];
          if (children !== undefined) node["/"] = children;
        } else {
          level = (node["/"] ??= {}) as { [k: string]: PsonValue };
        }
      });
    }
    return root;
  }

  /** `[…, "api"]`: the callbacks run with empty input; `{"in": state, "out": value}`. */
  private apiIo(r: ThingerResource): Maybe<PsonValue> {
    switch (r.kind) {
      case "input":
        return r.state ? then(r.state(), (v): PsonValue => ({ in: v })) : {};
      case "output":
        return then(r.out(), (v): PsonValue => ({ out: v }));
      case "io":
        return then(r.io(undefined), (v): PsonValue => ({ out: v }));
      default:
        return {};
    }
  }

  /** Runs a resource; the OK payload (raw output) or undefined. */
  private run(r: ThingerResource, payload: PsonValue | number | undefined): Maybe<PsonValue | undefined> {
    switch (r.kind) {
      case "run":
        return then(r.run?.(), () => undefined);
      case "input":
        return payload === undefined ? undefined : then(r.in(payload), () => undefined);
      case "output":
        return r.out();
      case "io":
        return r.io(payload);
    }
  }

  /** A run that wrote a streamed input echoes its state as an event. */
  private echoInput(name: string): void {
    for (const s of this.streams.values()) {
      if (s.resource === name) this.pushSample(s, this.protocol === "legacy" ? LEGACY_FLAG.STREAM_EVENT : undefined);
    }
  }

  private pushSample(s: Stream, legacyFlag: number | undefined): void {
    const r = this.resources.get(s.resource);
    if (!r || this.state !== "open") return;
    settle(
      (): Maybe<PsonValue | undefined> => (r.kind === "input" ? r.state?.() : r.kind === "output" ? r.out() : r.kind === "io" ? r.io(undefined) : undefined),
      (value) => this.sendSample(s, r, value, legacyFlag),
      (err) => this.emitError(err as Error),
    );
  }

  private sendSample(s: Stream, r: ThingerResource, value: PsonValue | undefined, legacyFlag: number | undefined): void {
    if (this.state !== "open" || this.streams.get(s.id) !== s) return;
    if (this.protocol === "legacy") {
      const wrapped: PsonValue = r.kind === "input" ? { in: value ?? null } : { out: value ?? null };
      this.sendLegacy({ streamId: s.id, flag: legacyFlag ?? LEGACY_FLAG.STREAM_SAMPLE, payload: wrapped });
      return;
    }
    const m: IotmpMessage = { type: IOTMP_TYPE.STREAM_DATA, streamId: s.id };
    if (value !== undefined) m.payload = value;
    if (this.dialect === 1) m.params = r.kind === "input" ? 1 : 2;
    this.sendIotmp(m);
  }

  private stopStream(id: number): void {
    const s = this.streams.get(id);
    if (!s) return;
    clearInterval(s.timer);
    this.streams.delete(id);
    this.emit("streams");
  }

  // ————————————————————————————————————————————————————————— IOTMP

  private onIotmp(m: IotmpMessage): void {
    // IOTMP-Linux answers even without a stream id (with id 0).
    const streamId = m.streamId ?? 0;
    const ok = (payload?: PsonValue): void => this.sendIotmp({ type: IOTMP_TYPE.OK, streamId, ...(payload !== undefined ? { payload } : {}) });
    const fail = (err?: unknown): void => {
      const e: IotmpMessage = { type: IOTMP_TYPE.ERROR, streamId };
      if (err instanceof Error) {
        e.payload = { error: err.message };
        if (err instanceof ThingerDeviceError && err.code !== undefined) e.params = err.code;
      }
      this.sendIotmp(e);
    };
    const name = typeof m.resource === "string" ? m.resource : Array.isArray(m.resource) ? m.resource.join("/") : undefined;
    const r = name === undefined ? undefined : this.resources.get(name);
    switch (m.type) {
      case IOTMP_TYPE.RUN: {
        if (!r) return fail();
        return settle(
          () => this.run(r, m.payload),
          (out) => {
            ok(out);
            if (r.kind === "input" && m.payload !== undefined) this.echoInput(name!);
          },
          fail,
        );
      }
      case IOTMP_TYPE.DESCRIBE: {
        if (m.resource === undefined) {
          if (this.refuseDescribe()) return fail();
          const flat: { [k: string]: PsonValue } = {};
          for (const [n, res] of this.resources) flat[n] = { fn: FN[res.kind] };
          return ok(flat);
        }
        if (!r) return fail();
        return settle(() => this.apiIo(r), ok, fail);
      }
      case IOTMP_TYPE.START_STREAM: {
        if (!r || name === undefined) return fail();
        const p = m.params;
        const interval = typeof p === "number" ? p : p !== null && typeof p === "object" && !Array.isArray(p) && !(p instanceof Uint8Array) ? p.interval : undefined;
        const intervalMs = typeof interval === "number" && interval > 0 ? interval : 0;
        this.stopStream(streamId);
        const s: Stream = { id: streamId, resource: name, intervalMs };
        this.streams.set(streamId, s);
        this.emit("streams");
        ok();
        this.pushSample(s, undefined); // the echo
        if (intervalMs > 0) s.timer = setInterval(() => this.pushSample(s, undefined), intervalMs);
        return;
      }
      case IOTMP_TYPE.STOP_STREAM:
        this.stopStream(streamId);
        return ok();
      case IOTMP_TYPE.STREAM_DATA: {
        const s = this.streams.get(streamId);
        const target = s ? this.resources.get(s.resource) : undefined;
        if (s && target && (target.kind === "input" || target.kind === "io") && m.payload !== undefined) {
          settle(
            () => this.run(target, m.payload),
            () => this.pushSample(s, undefined),
            (err) => this.emitError(err as Error),
          );
        }
        return;
      }
      default:
        return; // DISCONNECT is only logged by IOTMP-Linux; OK/ERROR to nothing pending are ignored
    }
  }
}

function pick(m: IotmpMessage, f: (v: PsonValue) => PsonValue): Partial<IotmpMessage> {
  const out: Partial<IotmpMessage> = {};
  for (const k of ["params", "payload", "resource"] as const) {
    const v = m[k];
    if (v !== undefined && typeof v !== "number") out[k] = f(v);
  }
  return out;
}
