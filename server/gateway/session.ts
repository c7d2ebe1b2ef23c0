import { randomInt } from "node:crypto";
import type { Duplex } from "node:stream";
import type { WebSocket } from "ws";
import { AppError } from "../errors.js";
import { CLOSE, isResourceName, MAX_FRAME_DEPTH, RESOURCE_KINDS, type ResourceKind } from "./protocol.js";
import { parsedJsonDepth } from "../json.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";
import { CallDeadlines, type DeadlineCall } from "./call-deadlines.js";
import { IdTable } from "./id-table.js";
import type { CallCancel } from "./call-cancel.js";
import { CALL_TIMEOUT_SLACK_MS, type CallResult, type DeviceSession, type SessionEvents, type SessionLimits, type SessionStats } from "./device-session.js";

/** Time a closing device gets to answer the closing handshake before its socket is dropped. */
export const CLOSE_GRACE_MS = 2_000;
/** How long `GET …/api` waits for a device that has not described its resources yet (as for Thinger devices). */
export const FIRST_DESCRIBE_WAIT_MS = 2_000;

export type { CallResult, SessionEvents, SessionLimits, SessionStats } from "./device-session.js";

interface Pending extends DeadlineCall {
  resolve(r: CallResult): void;
}

export { CALL_TIMEOUT_SLACK_MS };

/** Device requests outside calls and streams (issue 18: `property_get`, `property_set`). */
export interface DeviceRequestHandler {
  onDeviceRequest(session: JsonSession, frame: Record<string, unknown>): void;
}

/**
 * One authenticated JSON-protocol device socket (the {@link DeviceSession} of SDK devices): the pending-call map (id + timer + cancel, as nats.js `request.ts`),
 * byte counters, the resources the device announced. A reply for an unknown id (stray, duplicate or late)
 * is dropped: it can never resolve another caller's call.
 */
export class JsonSession implements DeviceSession {
  readonly key: string;
  readonly connectedAt = Date.now();
  rxBytes = 0;
  txBytes = 0;
  /** Set by the hub's keepalive sweep; any frame or pong from the device sets it back. */
  alive = true;
  /** Resources announced by `describe`; null until the first one. */
  resources: Map<string, ResourceKind> | null = null;
  /** Input and io resources whose current state the device reports (`"state": true` in `describe`). */
  private stateful = new Set<string>();
  private readonly pending = new IdTable<Pending>();
  /**
   * Call ids start at a random point per session: a reply an SDK sends late on a new session of the same
   * device (its handler outlived the old socket) then matches no pending call instead of answering another.
   */
  private nextId = randomInt(0, 2 ** 47);
  private closed = false;
  /** The calls' timeouts: one timer per session (issue 15: no timer per call). */
  private readonly deadlines: CallDeadlines<Pending>;
  /** Frames of this turn are held in the corked socket until setImmediate (see {@link cork}). */
  private corked = false;
  /** Settles at the first describe or at close, once a resource list waits for it ({@link resourceList}). */
  private described: Promise<void> | undefined = undefined;
  private describedNow: (() => void) | undefined = undefined;

  constructor(
    readonly user: string,
    readonly device: string,
    readonly ws: WebSocket,
    readonly ip: string,
    private readonly limits: SessionLimits,
    private readonly events: SessionEvents,
    private readonly requests?: DeviceRequestHandler,
    /** Clock and timers of the call timeouts (tests inject a fake clock). */
    private readonly timers: Timers = systemTimers,
  ) {
    this.key = `${user}/${device}`;
    this.deadlines = new CallDeadlines(timers, this.pending);
  }

  /** The announced resources as the `/api` route answers them: `{name: {kind}}`. */
  /**
   * Right after connecting the SDK describes its resources: a list asked for before that waits for the describe
   * (or the session's end) up to {@link FIRST_DESCRIBE_WAIT_MS}, instead of answering an empty list for a device
   * that has resources. A device that never describes lists none once the wait is over.
   */
  async resourceList(): Promise<Record<string, { kind: ResourceKind }>> {
    if (this.resources === null && !this.closed) {
      this.described ??= new Promise<void>((resolve) => (this.describedNow = resolve));
      let timer: TimerHandle | undefined;
      const waited = new Promise<void>((resolve) => (timer = this.timers.setTimeout(resolve, FIRST_DESCRIBE_WAIT_MS)));
      await Promise.race([this.described, waited]);
      this.timers.clearTimeout(timer);
    }
    return this.listResources();
  }

  private listResources(): Record<string, { kind: ResourceKind }> {
    return Object.fromEntries([...(this.resources ?? new Map<string, ResourceKind>())].map(([name, kind]) => [name, { kind }]));
  }

  resourceKind(name: string): ResourceKind | null | undefined {
    return this.resources === null ? null : this.resources.get(name);
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  stream(resource: string, intervalMs: number): void {
    this.send(JSON.stringify({ type: "stream", resource, interval: intervalMs }));
  }

  unstream(resource: string): void {
    this.send(JSON.stringify({ type: "unstream", resource }));
  }

  sweep(): boolean {
    if (!this.alive) return false;
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      /* socket already closing: its close event unregisters it */
    }
    return true;
  }

  terminate(): void {
    this.ws.terminate();
  }

  get inflight(): number {
    return this.pending.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): SessionStats {
    return { connected: !this.closed, connected_ts: this.connectedAt, ip_address: this.ip, rx_bytes: this.rxBytes, tx_bytes: this.txBytes };
  }

  /** True when the device said (in `describe`) that it reports this resource's current input state. */
  reportsState(resource: string): boolean {
    return this.stateful.has(resource);
  }

  /** Sends one call to the device and waits for its answer, at most `timeoutMs`. */
  call(resource: string, input: unknown, hasInput: boolean, timeoutMs: number, cancel?: CallCancel): Promise<CallResult> {
    return this.request(resource, timeoutMs, (id) => hasInput
      ? `{"type":"call","id":${id},"resource":${JSON.stringify(resource)},"in":${JSON.stringify(input)}}`
      : `{"type":"call","id":${id},"resource":${JSON.stringify(resource)}}`, cancel);
  }

  /** Asks the device for an input's current state (`state` frame; its handler does not run). */
  async state(resource: string, timeoutMs: number): Promise<unknown> {
    const r = await this.request(resource, timeoutMs, (id) => `{"type":"state","id":${id},"resource":${JSON.stringify(resource)}}`);
    return r.in;
  }

  private request(resource: string, timeoutMs: number, frameFor: (id: number) => string, cancel?: CallCancel): Promise<CallResult> {
    if (cancel?.reason) return Promise.reject(cancel.reason);
    if (this.closed) return Promise.reject(new AppError("device_offline"));
    if (this.resources !== null && !this.resources.has(resource)) {
      return Promise.reject(new AppError("resource_not_found", `device has no resource "${resource}"`));
    }
    if (this.pending.size >= this.limits.maxInflight || this.ws.bufferedAmount > this.limits.maxBufferedBytes) {
      return Promise.reject(new AppError("device_busy", undefined, { headers: { "Retry-After": "1" } }));
    }
    const id = (this.nextId = (this.nextId + 1) % Number.MAX_SAFE_INTEGER);
    const frame = frameFor(id);
    const at = this.deadlines.at(timeoutMs);
    return new Promise<CallResult>((resolve, reject) => {
      this.deadlines.add(id, { resolve, reject, at, timeoutMs, cancel });
      this.send(frame);
    });
  }

  send(text: string): void {
    if (this.closed) return;
    this.txBytes += Buffer.byteLength(text);
    if (!this.corked) this.cork();
    this.ws.send(text);
    this.events.onTraffic(this);
  }

  /**
   * Holds this turn's frames to the device in the socket until the event loop's check phase, so calls made
   * in one turn (one per HTTP request read in that turn) leave in one `writev` instead of one each (issue 15:
   * the write and the loopback wake-up it triggers are the largest device-side cost per call). ws has no
   * public cork: its socket is the stream ws itself corks around each frame.
   */
  private cork(): void {
    const socket = (this.ws as unknown as { _socket?: Duplex | null })._socket;
    if (!socket || socket.writableCorked > 0) return;
    socket.cork();
    this.corked = true;
    setImmediate(this.uncork);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    (this.ws as unknown as { _socket?: Duplex | null })._socket?.uncork();
  };

  /** Handles one text frame from the authenticated device. Unknown or malformed frames are ignored. */
  receive(text: string, size: number): void {
    this.alive = true;
    this.rxBytes += size;
    this.events.onTraffic(this);
    let f: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return;
      f = parsed as Record<string, unknown>;
    } catch {
      return;
    }
    // Values nested deeper than callers and stream encoders can handle safely are refused here, once.
    if (!parsedJsonDepth(text, f, MAX_FRAME_DEPTH)) {
      if (f.type === "result" || f.type === "error") {
        this.take(f.id)?.reject(new AppError("device_error", `device reply nested deeper than ${MAX_FRAME_DEPTH} levels`, { status: 502 }));
      }
      return;
    }
    switch (f.type) {
      case "result": {
        const p = this.take(f.id);
        if (!p) return;
        const r: CallResult = "out" in f ? { hasOut: true, out: f.out } : { hasOut: false };
        if ("in" in f) r.in = f.in;
        p.resolve(r);
        return;
      }
      case "error":
        this.take(f.id)?.reject(deviceError(f));
        return;
      case "describe":
        this.describe(f.resources);
        return;
      case "data":
        if (isResourceName(f.resource)) this.events.onData(this, f.resource, f.out);
        return;
      case "property_get":
      case "property_set":
        this.requests?.onDeviceRequest(this, f);
        return;
      case "ping":
        // A device that pings but stops reading must not grow the queue: skip the pong while over the cap.
        if (this.ws.bufferedAmount <= this.limits.maxBufferedBytes) this.send('{"type":"pong"}');
        return;
      default:
        return;
    }
  }

  /** Removes a pending call to settle it; undefined for a stray, duplicate or late id (dropped). */
  private take(id: unknown): Pending | undefined {
    return typeof id === "number" ? this.deadlines.take(id) : undefined;
  }

  private describe(resources: unknown): void {
    if (typeof resources !== "object" || resources === null || Array.isArray(resources)) return;
    const map = new Map<string, ResourceKind>();
    const stateful = new Set<string>();
    for (const [name, desc] of Object.entries(resources)) {
      if (map.size >= 1024) break;
      const kind = typeof desc === "string" ? desc : (desc as { kind?: unknown } | null)?.kind;
      if (isResourceName(name) && RESOURCE_KINDS.includes(kind as ResourceKind)) {
        map.set(name, kind as ResourceKind);
        if ((kind === "input" || kind === "io") && (desc as { state?: unknown }).state === true) stateful.add(name);
      }
    }
    this.resources = map;
    this.stateful = stateful;
    this.describedNow?.();
    this.events.onDescribe(this);
  }

  /** Marks the session closed and fails every pending call with device_disconnected. Idempotent. */
  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.describedNow?.();
    this.deadlines.stop();
    for (const [id] of this.pending.entries()) this.take(id)?.reject(new AppError("device_disconnected"));
  }

  close(code: number = CLOSE.normal, reason = ""): void {
    this.markClosed();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
      return;
    }
    // A peer that stopped reading never answers the closing handshake and ws would hold the socket 30 s.
    const ws = this.ws;
    if (ws.readyState === ws.CLOSED) return;
    const timer = this.timers.setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    timer.unref?.();
    ws.once("close", () => this.timers.clearTimeout(timer));
  }
}

function deviceError(f: Record<string, unknown>): AppError {
  const message = typeof f.message === "string" ? f.message.slice(0, 500) : undefined;
  if (f.code === "resource_not_found") return new AppError("resource_not_found", message);
  const status = typeof f.status === "number" && Number.isInteger(f.status) && f.status >= 400 && f.status <= 599 ? f.status : 500;
  return new AppError("device_error", message, { status });
}
