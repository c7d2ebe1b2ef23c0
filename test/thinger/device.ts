/**
 * The Thinger device the server tests drive: one interface over every protocol, dialect and transport
 * (legacy over TCP/TLS, IOTMP v1/v2 over TCP/TLS/WebSocket). It answers like the real clients do
 * (THINGER-PROTOCOL §2.6-2.7, §3.6-3.7): raw run replies, `api`/DESCRIBE trees, wrapped legacy samples,
 * errors without detail (legacy) or `{"error"}` + code (IOTMP).
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { WebSocket } from "ws";
import {
  decodeIotmpFrame, decodeLegacyFrame, encodeIotmpMessage, encodeLegacyMessage, FrameReader, IOTMP_KEEPALIVE, IOTMP_TYPE,
  LEGACY_FLAG, LEGACY_KEEPALIVE, type Frame, type IotmpDialect, type IotmpMessage, type LegacyMessage, type PsonValue,
} from "../../server/thinger/index.js";

export type Protocol = "legacy" | "iotmp1" | "iotmp2";
export type Transport = "tcp" | "tls" | "ws";

export type Resource =
  | { kind: "output"; get(): PsonValue }
  | { kind: "input"; set(v: PsonValue | undefined): void; state(): PsonValue }
  | { kind: "io"; fn(v: PsonValue | undefined): PsonValue }
  | { kind: "run"; fn(): void };

/** A handler error; IOTMP carries `message` and `code`, legacy nothing. */
export class HandlerError extends Error {
  constructor(readonly code: number | undefined, message: string) {
    super(message);
  }
}

export interface TestDeviceOptions {
  protocol: Protocol;
  transport: Transport;
  host?: string;
  port?: number;
  url?: string;
  user: string;
  device: string;
  credentials: string;
  resources: Record<string, Resource>;
  /** Resources whose runs are never answered (timeouts, busy, disconnects). */
  silent?: readonly string[];
}

const FN: Record<Resource["kind"], number> = { run: 1, input: 2, output: 3, io: 4 };

export class TestDevice {
  private socket: Socket | undefined;
  private ws: WebSocket | undefined;
  private readonly reader = new FrameReader();
  private authWaiter: { resolve(): void; reject(e: Error): void } | undefined;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  /** stream id → resource of started streams. */
  readonly streams = new Map<number, string>();
  /** Keep-alive echoes received. */
  keepalives = 0;
  /** Every decoded message the server sent (requests and replies). */
  readonly received: Array<LegacyMessage | IotmpMessage> = [];
  readonly closed: Promise<void>;
  private markClosed!: () => void;
  private listeners: Array<() => void> = [];

  constructor(readonly o: TestDeviceOptions) {
    this.closed = new Promise((r) => (this.markClosed = r));
  }

  private get dialect(): IotmpDialect {
    return this.o.protocol === "iotmp1" ? 1 : 2;
  }

  /** Opens the connection and authenticates; rejects when the server refuses. */
  async connect(): Promise<void> {
    const host = this.o.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      const onClose = () => {
        this.authWaiter?.reject(new Error("connection closed before authentication"));
        this.markClosed();
      };
      if (this.o.transport === "ws") {
        const ws = new WebSocket(this.o.url!, "iotmp");
        this.ws = ws;
        ws.on("open", () => resolve());
        ws.on("error", reject);
        ws.on("message", (d: Buffer) => this.onBytes(d));
        ws.on("close", onClose);
        return;
      }
      const s = this.o.transport === "tls"
        ? tlsConnect({ host, port: this.o.port!, rejectUnauthorized: false }, () => resolve())
        : tcpConnect(this.o.port!, host, () => resolve());
      this.socket = s;
      s.on("error", reject);
      s.on("data", (d) => this.onBytes(d));
      s.on("close", onClose);
    });
    const authed = new Promise<void>((resolve, reject) => (this.authWaiter = { resolve, reject }));
    const creds = [this.o.user, this.o.device, this.o.credentials];
    if (this.o.protocol === "legacy") this.sendLegacy({ flag: LEGACY_FLAG.AUTH, resource: creds });
    else this.sendIotmp({ type: IOTMP_TYPE.CONNECT, streamId: 17767, payload: creds, ...(this.dialect === 1 ? { params: 1 } : {}) });
    await authed;
  }

  /** Writes raw bytes (hostile input tests). */
  raw(bytes: Uint8Array): void {
    this.write(bytes);
  }

  /** Sends a keep-alive and resolves on the server's echo. */
  async keepalive(): Promise<void> {
    const before = this.keepalives;
    const echoed = new Promise<void>((resolve) => this.listeners.push(() => this.keepalives > before && resolve()));
    this.write(this.o.protocol === "legacy" ? LEGACY_KEEPALIVE : IOTMP_KEEPALIVE);
    await echoed;
  }

  /** Pushes a value of a streamed resource (the sketch's `thing.stream(res)`). */
  push(resource: string): void {
    for (const [id, r] of this.streams) if (r === resource) this.sample(id, resource);
  }

  /** A device-initiated request (legacy flag 8-12 / IOTMP RUN from the device); resolves with the answer. */
  async request(id: number): Promise<LegacyMessage | IotmpMessage> {
    const answer = new Promise<LegacyMessage | IotmpMessage>((resolve) => {
      const l = () => {
        const m = this.received.at(-1);
        if (m?.streamId === id) resolve(m);
      };
      this.listeners.push(l);
    });
    if (this.o.protocol === "legacy") this.sendLegacy({ streamId: id, flag: LEGACY_FLAG.GET_PROPERTY, identifier: "prop" });
    else this.sendIotmp({ type: IOTMP_TYPE.RUN, streamId: id, resource: 1, params: "prop" });
    return answer;
  }

  async close(): Promise<void> {
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
    this.socket?.end();
    this.ws?.close();
    await this.closed;
  }

  /** Drops the connection without a word. */
  destroy(): void {
    for (const t of this.timers.values()) clearInterval(t);
    this.socket?.destroy();
    this.ws?.terminate();
  }

  private write(bytes: Uint8Array): void {
    // The IOTMP Linux client sends its binary messages in TEXT frames.
    if (this.ws) this.ws.send(bytes, { binary: false });
    else this.socket!.write(bytes);
  }

  private sendLegacy(m: LegacyMessage): void {
    this.write(encodeLegacyMessage(m));
  }

  private sendIotmp(m: IotmpMessage): void {
    this.write(encodeIotmpMessage(m, this.dialect, { numberMode: "iotmp-linux" }));
  }

  private onBytes(chunk: Uint8Array): void {
    for (const f of this.reader.push(chunk)) this.onFrame(f);
    for (const l of [...this.listeners]) l();
  }

  private onFrame(f: Frame): void {
    if (this.o.protocol === "legacy") {
      const d = decodeLegacyFrame(f);
      if (d.kind === "keepalive") {
        this.keepalives++;
        return;
      }
      const m = d.message;
      this.received.push(m);
      if (this.authWaiter) {
        const w = this.authWaiter;
        this.authWaiter = undefined;
        if (m.flag === LEGACY_FLAG.REQUEST_OK) w.resolve();
        else w.reject(new Error("authentication refused"));
        return;
      }
      this.onLegacy(m);
      return;
    }
    if (f.type === IOTMP_TYPE.KEEP_ALIVE) {
      this.keepalives++;
      return;
    }
    const m = decodeIotmpFrame(f, this.dialect);
    this.received.push(m);
    if (this.authWaiter) {
      const w = this.authWaiter;
      this.authWaiter = undefined;
      if (m.type === IOTMP_TYPE.OK) w.resolve();
      else w.reject(new Error("authentication refused"));
      return;
    }
    this.onIotmp(m);
  }

  private onLegacy(m: LegacyMessage): void {
    const id = m.streamId;
    const path = Array.isArray(m.resource) ? (m.resource as string[]).join("/") : "";
    const reply = (ok: boolean, payload?: PsonValue) => {
      if (id !== undefined) this.sendLegacy({ streamId: id, flag: ok ? LEGACY_FLAG.REQUEST_OK : LEGACY_FLAG.REQUEST_ERROR, ...(payload !== undefined ? { payload } : {}) });
    };
    switch (m.flag ?? 0) {
      case LEGACY_FLAG.RUN: {
        if (path === "api") return reply(true, this.legacyTree());
        if (path.endsWith("/api")) {
          const r = this.o.resources[path.slice(0, -4)];
          return r ? reply(true, this.state(r)) : reply(false);
        }
        const r = this.o.resources[path];
        if (!r) return reply(false);
        if (this.o.silent?.includes(path)) return;
        try {
          const out = this.run(r, m.payload);
          reply(true, out);
        } catch {
          reply(false);
        }
        return;
      }
      case LEGACY_FLAG.START_STREAM:
        reply(true);
        this.startStream(id!, path, typeof m.payload === "number" ? m.payload : 0);
        return;
      case LEGACY_FLAG.STOP_STREAM:
        this.stopStream(id!);
        reply(true);
        return;
      default:
        return;
    }
  }

  private onIotmp(m: IotmpMessage): void {
    const id = m.streamId;
    const path = typeof m.resource === "string" ? m.resource : "";
    const reply = (ok: boolean, payload?: PsonValue, params?: number) => {
      this.sendIotmp({ type: ok ? IOTMP_TYPE.OK : IOTMP_TYPE.ERROR, streamId: id ?? 0, ...(payload !== undefined ? { payload } : {}), ...(params !== undefined ? { params } : {}) });
    };
    switch (m.type) {
      case IOTMP_TYPE.RUN: {
        const r = this.o.resources[path];
        if (!r) return reply(false);
        if (this.o.silent?.includes(path)) return;
        try {
          reply(true, this.run(r, m.payload as PsonValue | undefined));
        } catch (err) {
          const e = err as HandlerError;
          reply(false, { error: e.message }, e.code);
        }
        return;
      }
      case IOTMP_TYPE.DESCRIBE: {
        if (path === "") return reply(true, Object.fromEntries(Object.entries(this.o.resources).map(([n, r]) => [n, { fn: FN[r.kind] }])));
        const r = this.o.resources[path];
        return r ? reply(true, this.state(r)) : reply(false);
      }
      case IOTMP_TYPE.START_STREAM: {
        reply(true);
        const p = m.params;
        const interval = typeof p === "object" && p !== null && typeof (p as Record<string, unknown>).interval === "number" ? (p as { interval: number }).interval : 0;
        this.startStream(id!, path, interval);
        return;
      }
      case IOTMP_TYPE.STOP_STREAM:
        this.stopStream(id!);
        reply(true);
        return;
      default:
        return;
    }
  }

  private run(r: Resource, input: PsonValue | undefined): PsonValue | undefined {
    switch (r.kind) {
      case "output":
        return r.get();
      case "input":
        r.set(input);
        return undefined;
      case "io":
        return r.fn(input);
      case "run":
        r.fn();
        return undefined;
    }
  }

  private state(r: Resource): PsonValue {
    if (r.kind === "input") return { in: r.state() };
    if (r.kind === "output") return { out: r.get() };
    return {};
  }

  /** `{name: {al, fn}, parent: {"/": {child: {...}}}}` as the Arduino library answers `["api"]`. */
  private legacyTree(): PsonValue {
    const tree: Record<string, Record<string, PsonValue>> = {};
    for (const [name, r] of Object.entries(this.o.resources)) {
      const segs = name.split("/");
      let level = tree;
      for (const seg of segs.slice(0, -1)) {
        level[seg] ??= {};
        const node = level[seg]!;
        node["/"] ??= {};
        level = node["/"] as Record<string, Record<string, PsonValue>>;
      }
      level[segs.at(-1)!] = { ...(level[segs.at(-1)!] ?? {}), al: 0, fn: FN[r.kind] };
    }
    return tree;
  }

  private startStream(id: number, resource: string, interval: number): void {
    this.stopStream(id);
    this.streams.set(id, resource);
    this.sample(id, resource);
    if (interval > 0) this.timers.set(id, setInterval(() => this.sample(id, resource), interval));
  }

  private stopStream(id: number): void {
    clearInterval(this.timers.get(id));
    this.timers.delete(id);
    this.streams.delete(id);
  }

  private sample(id: number, resource: string): void {
    const r = this.o.resources[resource];
    if (!r || r.kind !== "output" && r.kind !== "io") return;
    const v = r.kind === "output" ? r.get() : r.fn(undefined);
    if (this.o.protocol === "legacy") this.sendLegacy({ streamId: id, flag: LEGACY_FLAG.STREAM_SAMPLE, payload: { out: v } });
    else this.sendIotmp({ type: IOTMP_TYPE.STREAM_DATA, streamId: id, payload: v });
  }
}
