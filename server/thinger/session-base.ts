import { AppError } from "../errors.js";
import { CallDeadlines, type DeadlineCall } from "../gateway/call-deadlines.js";
import { IdTable } from "../gateway/id-table.js";
import type { CallResult, DeviceSession, SessionEvents, SessionLimits, SessionStats } from "../gateway/device-session.js";
import { isResourceName, type ResourceKind } from "../gateway/protocol.js";
import type { DeviceLink } from "./link.js";
import type { Frame } from "./frame-reader.js";
import { ThingerCodecError } from "./limits.js";
import type { PsonValue } from "./pson-value.js";
import type { DeviceAnswer, DeviceRequest, DeviceRequestHandler } from "./requests.js";
import type { CallCancel } from "../gateway/call-cancel.js";
import { isObject, matches, tidyNumbers, toPson } from "./values.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

/** Resources kept from one describe answer. */
const MAX_RESOURCES = 1024;
/** Longest wait for a describe answer made on behalf of `/api` before the cached list is served. */
const DESCRIBE_ON_DEMAND_MS = 2_000;
/** Background describe retries after a failed one: first delay, doubling up to the cap, until one succeeds. */
export const DESCRIBE_RETRY_MS = { first: 2_000, max: 60_000 } as const;
/** Largest u16 id. */
const MAX_ID = 0xffff;

export interface ThingerSessionOptions {
  limits: SessionLimits;
  /** A device silent this long (no byte at all) is dropped; the clients send a keep-alive every 60 s. */
  keepaliveTimeoutMs: number;
  events: SessionEvents;
  /** Serves device-initiated requests (properties); without it every one is answered with an error. */
  requests?: DeviceRequestHandler | undefined;
  /** The clock of the silence timer, the describe retries and the request timeouts (default the system's; tests pass a fake one, issue 13.6). */
  timers?: Timers | undefined;
}

/** An OK or ERROR answer to one of our requests, protocol-neutral. */
export interface Reply {
  ok: boolean;
  payload?: PsonValue | undefined;
  /** IOTMP: the error code a handler gave (`PARAMETERS`). */
  code?: number | undefined;
}

interface Pending extends DeadlineCall {
  resolve(r: Reply): void;
}

/**
 * A Thinger device (legacy protocol or IOTMP) as a {@link DeviceSession}. Holds what both protocols share:
 * the u16 id pool (never reusing an id that is pending or streaming), replies matched by id, the describe
 * cache (with path templates such as `gpio/:pin`), streams per resource, byte counters, the silence timer.
 * Subclasses encode and decode their protocol's messages.
 */
export abstract class ThingerSession implements DeviceSession {
  readonly key: string;
  readonly connectedAt = Date.now();
  rxBytes = 0;
  txBytes = 0;
  private exact: Map<string, ResourceKind> | null = null;
  private templates: Array<{ segments: string[]; kind: ResourceKind }> = [];
  private readonly pending = new IdTable<Pending>();
  /** resource → its stream id and interval; ids → resource. */
  protected readonly streams = new Map<string, { id: number; interval: number }>();
  protected readonly streamIds = new Map<number, string>();
  private nextId = 0;
  private closed = false;
  /** Device requests being served, one at a time in arrival order (a set then a get reads the value set). */
  private deviceRequests = 0;
  private requestChain: Promise<void> = Promise.resolve();
  private readonly timers: Timers;
  /** When the last byte arrived (on `timers`); the silence timer compares against it when it fires. */
  private lastByteAt: number;
  private silence: TimerHandle | undefined;
  /** The describe request in flight on behalf of callers (shared: one at a time). */
  private describing: Promise<void> | null = null;
  private retryTimer: TimerHandle | undefined;
  /** The requests' timeouts: one timer per session, as the JSON session's (no timer per call). */
  private readonly deadlines: CallDeadlines<Pending>;
  /** Streams asked for while the resource kinds were unknown: started once described (output and io only). */
  private readonly deferredStreams = new Map<string, number>();

  constructor(
    readonly user: string,
    readonly device: string,
    protected readonly link: DeviceLink,
    protected readonly options: ThingerSessionOptions,
  ) {
    this.key = `${user}/${device}`;
    this.timers = options.timers ?? systemTimers;
    this.lastByteAt = this.timers.now();
    this.deadlines = new CallDeadlines(this.timers, this.pending);
    this.armSilence(options.keepaliveTimeoutMs);
  }

  get ip(): string {
    return this.link.ip;
  }

  get resources(): ReadonlyMap<string, ResourceKind> | null {
    return this.exact;
  }

  get inflight(): number {
    return this.pending.size;
  }

  get bufferedBytes(): number {
    return this.link.bufferedBytes;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  stats(): SessionStats {
    return { connected: !this.closed, connected_ts: this.connectedAt, ip_address: this.ip, rx_bytes: this.rxBytes, tx_bytes: this.txBytes };
  }

  /** Keep-alive is the session's own silence timer (the protocols' 60 s ticks do not fit the hub's sweep). */
  sweep(): boolean {
    return !this.closed;
  }

  resourceKind(name: string): ResourceKind | null | undefined {
    if (this.exact === null) return null;
    const kind = this.exact.get(name);
    if (kind !== undefined) return kind;
    const segs = name.split("/");
    for (const t of this.templates) if (matches(t.segments, segs)) return t.kind;
    return undefined;
  }

  /**
   * Describes the device when its resource kinds are still unknown (its first describe failed or was slow),
   * waiting at most `waitMs`; never rejects. Concurrent callers share one request. Kind checks (405, streams
   * of run/input resources, `…/{resource}/api`) run after this so they are never skipped for lack of a list.
   */
  async describeIfUnknown(waitMs: number = DESCRIBE_ON_DEMAND_MS): Promise<void> {
    if (this.exact !== null || this.closed) return;
    this.describing ??= this.describe(Math.min(waitMs, DESCRIBE_ON_DEMAND_MS)).catch(() => {}).finally(() => {
      this.describing = null;
    });
    await this.describing;
  }

  /** After a failed first describe: asks again in the background with a doubling delay (bounded) until known. */
  retryDescribe(delayMs: number = DESCRIBE_RETRY_MS.first): void {
    if (this.closed || this.exact !== null) return;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = this.timers.setTimeout(() => {
      void this.describeIfUnknown().then(() => this.retryDescribe(Math.min(delayMs * 2, DESCRIBE_RETRY_MS.max)));
    }, delayMs);
    this.retryTimer.unref?.();
  }

  async resourceList(): Promise<Record<string, { kind: ResourceKind }>> {
    // Neither protocol pushes changes: ask again, and fall back to what is known.
    await this.describe(DESCRIBE_ON_DEMAND_MS).catch(() => {});
    return Object.fromEntries([...(this.exact ?? new Map<string, ResourceKind>())].map(([name, kind]) => [name, { kind }]));
  }

  /** Fetches the resource tree; resolves once the cache holds the answer. Rejects on error or timeout. */
  async describe(timeoutMs: number): Promise<void> {
    const reply = await this.request((id) => this.sendDescribe(id, undefined), timeoutMs);
    if (!reply.ok) throw new AppError("device_error", "device refused to describe its resources");
    const list = this.parseDescribe(reply.payload);
    if (!list) throw new AppError("device_error", "unreadable describe answer");
    const exact = new Map<string, ResourceKind>();
    const templates: Array<{ segments: string[]; kind: ResourceKind }> = [];
    for (const [name, kind] of list) {
      if (exact.size >= MAX_RESOURCES) break;
      if (!isResourceName(name)) continue;
      exact.set(name, kind);
      const segments = name.split("/");
      if (segments.some((s) => s.startsWith(":") || s.startsWith("*"))) templates.push({ segments, kind });
    }
    this.exact = exact;
    this.templates = templates;
    this.timers.clearTimeout(this.retryTimer);
    this.options.events.onDescribe(this);
    // Streams asked for before the kinds were known start now, if their kind can be streamed.
    const deferred = [...this.deferredStreams];
    this.deferredStreams.clear();
    for (const [resource, interval] of deferred) this.stream(resource, interval);
  }

  call(resource: string, input: unknown, hasInput: boolean, timeoutMs: number, cancel?: CallCancel): Promise<CallResult> {
    if (cancel?.reason) return Promise.reject(cancel.reason);
    if (this.closed) return Promise.reject(new AppError("device_offline"));
    // `…/{resource}/api`: that resource's state (`{"in","out"}`), unless the device has a resource of that name.
    let target = resource;
    let mode: "run" | "state" | "describe" = "run";
    if (resource.endsWith("/api") && this.resourceKind(resource) === undefined) {
      target = resource.slice(0, -"/api".length);
      mode = "describe";
    }
    const kind = this.resourceKind(target);
    if (kind === undefined) return Promise.reject(new AppError("resource_not_found", `device has no resource "${target}"`));
    // Reading an input: a plain run answers nothing, its state comes from the describe path.
    if (mode === "run" && kind === "input" && !hasInput) mode = "state";
    if (this.pending.size >= this.options.limits.maxInflight || this.link.bufferedBytes > this.options.limits.maxBufferedBytes) {
      return Promise.reject(new AppError("device_busy", undefined, { headers: { "Retry-After": "1" } }));
    }
    const send = mode === "run"
      ? (id: number) => this.sendRun(id, target, hasInput ? { value: toPson(input) } : undefined)
      : (id: number) => this.sendDescribe(id, target);
    return this.request(send, timeoutMs, cancel).then((reply) => {
      if (!reply.ok) throw this.replyError(reply);
      if (mode === "describe") return { hasOut: true, out: reply.payload ?? {} };
      if (mode === "state") {
        const p = reply.payload;
        return isObject(p) && "in" in p ? { hasOut: true, out: p.in } : { hasOut: false };
      }
      return reply.payload === undefined ? { hasOut: false } : { hasOut: true, out: reply.payload };
    });
  }

  /** Both Thinger protocols read any input's state through their describe request (THINGER-PROTOCOL §2.6, §3.6). */
  reportsState(resource: string): boolean {
    const kind = this.resourceKind(resource);
    return kind === "input" || kind === "io";
  }

  async state(resource: string, timeoutMs: number): Promise<unknown> {
    const r = await this.call(`${resource}/api`, undefined, false, timeoutMs);
    const p = r.out;
    return isObject(p) && "in" in p ? p.in : undefined;
  }

  stream(resource: string, intervalMs: number): void {
    if (this.closed) return;
    // A stream runs the resource every interval: never before its kind is known, and never a run or input
    // resource (a reset would run every second, an input with no input).
    if (this.exact === null) {
      this.deferredStreams.set(resource, intervalMs);
      void this.describeIfUnknown();
      return;
    }
    const kind = this.resourceKind(resource);
    if (kind !== "output" && kind !== "io") {
      this.unstream(resource);
      return;
    }
    const current = this.streams.get(resource);
    const id = this.restartStream(current?.id);
    if (current && current.id !== id) this.streamIds.delete(current.id);
    if (id === undefined) {
      this.streams.delete(resource);
      return;
    }
    this.streams.set(resource, { id, interval: intervalMs });
    this.streamIds.set(id, resource);
    this.sendStartStream(id, resource, intervalMs);
  }

  unstream(resource: string): void {
    this.deferredStreams.delete(resource);
    const current = this.streams.get(resource);
    if (!current) return;
    this.streams.delete(resource);
    this.streamIds.delete(current.id);
    if (!this.closed) this.sendStopStream(current.id, resource);
  }

  markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.clearTimeout(this.silence);
    this.timers.clearTimeout(this.retryTimer);
    this.deadlines.stop();
    this.deferredStreams.clear();
    this.streams.clear();
    this.streamIds.clear();
    for (const [id] of this.pending.entries()) this.deadlines.take(id)?.reject(new AppError("device_disconnected"));
  }

  close(code?: number, reason?: string): void {
    this.markClosed();
    this.link.end(code, reason);
  }

  terminate(): void {
    this.markClosed();
    this.link.destroy();
  }

  /** Bytes received on the link (framing included). Any byte proves the device alive. */
  received(bytes: number): void {
    this.rxBytes += bytes;
    // Only a timestamp per chunk: the silence timer is not re-armed here, it re-arms itself when it fires.
    this.lastByteAt = this.timers.now();
    this.options.events.onTraffic(this);
  }

  /**
   * The silence timer fires `keepaliveTimeoutMs` after the last byte it knows of: when it fires, a device that
   * sent something since gets a timer for the rest of its window, one silent for the whole window is dropped.
   * So a device keeping alive costs one timer per window, not one re-arm per chunk.
   */
  private armSilence(ms: number): void {
    this.silence = this.timers.setTimeout(() => {
      if (this.closed) return;
      const left = this.lastByteAt + this.options.keepaliveTimeoutMs - this.timers.now();
      if (left > 0) this.armSilence(left);
      else this.terminate();
    }, ms);
    this.silence.unref?.();
  }

  /** Handles one complete frame from the device. Throws ThingerCodecError on a malformed one. */
  abstract handleFrame(frame: Frame): void;

  protected abstract sendRun(id: number, resource: string, input: { value: PsonValue } | undefined): void;
  protected abstract sendDescribe(id: number, resource: string | undefined): void;
  protected abstract sendStartStream(id: number, resource: string, intervalMs: number): void;
  protected abstract sendStopStream(id: number, resource: string): void;
  /** The resource list of a describe answer, flattened to `a/b` names; null if unreadable. */
  protected abstract parseDescribe(payload: PsonValue | undefined): Array<[string, ResourceKind]> | null;
  /** The error of an ERROR reply (the describe cache was checked before sending, so: device_error). */
  protected abstract replyError(reply: Reply): AppError;
  /** Id of a (re)started stream; `current` is the resource's running stream id, if any. */
  protected abstract restartStream(current: number | undefined): number | undefined;

  protected write(bytes: Uint8Array): void {
    if (this.closed) return;
    // A device that keeps sending (keep-alives, requests) but stopped reading would grow our queue without end.
    if (this.link.bufferedBytes > this.options.limits.maxBufferedBytes) {
      this.terminate();
      return;
    }
    this.txBytes += bytes.length;
    this.link.write(bytes);
    this.options.events.onTraffic(this);
  }

  /** An OK/ERROR reply for `id`: settles the request waiting on it; stray, late and id-0 replies are dropped. */
  protected settle(id: number | undefined, reply: Reply): void {
    if (id === undefined || id === 0) return;
    this.deadlines.take(id)?.resolve({ ...reply, payload: tidyNumbers(reply.payload) });
  }

  /** A value the device pushed on stream `id`. */
  protected sample(id: number | undefined, value: unknown): void {
    const resource = id === undefined ? undefined : this.streamIds.get(id);
    if (resource !== undefined) this.options.events.onData(this, resource, tidyNumbers(value as PsonValue));
  }

  /**
   * The single place device-initiated requests are answered. `reply` is absent when the device expects no answer
   * (a legacy request without a stream id); the request is still served (a SET_PROPERTY is stored). Requests
   * are served one at a time in arrival order; more than `maxInflight` waiting are answered with an error at
   * once (or dropped, without `reply`), so a device cannot queue unbounded work. Nothing is sent after close.
   */
  protected answerDeviceRequest(request: DeviceRequest, reply: ((answer: DeviceAnswer) => void) | undefined): void {
    const handler = this.options.requests;
    if (!handler || request.op === "unsupported" || this.deviceRequests >= this.options.limits.maxInflight) {
      reply?.({ ok: false });
      return;
    }
    this.deviceRequests++;
    this.requestChain = this.requestChain
      .then(() => handler.answer(this.user, this.device, request))
      .catch((): DeviceAnswer => ({ ok: false }))
      .then((answer) => {
        this.deviceRequests--;
        if (!this.closed) reply?.(answer);
      })
      // The chain must never hold a rejection (it would end the process): a link that cannot take the answer ends.
      .catch(() => this.terminate());
  }

  /** A fresh u16 id (1-65535) that is neither pending nor streaming; undefined when all are taken. */
  protected allocateId(): number | undefined {
    for (let i = 0; i < MAX_ID; i++) {
      this.nextId = (this.nextId % MAX_ID) + 1;
      if (!this.pending.has(this.nextId) && !this.streamIds.has(this.nextId)) return this.nextId;
    }
    return undefined;
  }

  private request(send: (id: number) => void, timeoutMs: number, cancel?: CallCancel): Promise<Reply> {
    if (this.closed) return Promise.reject(new AppError("device_offline"));
    const id = this.allocateId();
    if (id === undefined) return Promise.reject(new AppError("device_busy", undefined, { headers: { "Retry-After": "1" } }));
    const at = this.deadlines.at(timeoutMs);
    return new Promise<Reply>((resolve, reject) => {
      this.deadlines.add(id, { resolve, reject, at, timeoutMs, cancel });
      try {
        send(id);
      } catch (err) {
        this.deadlines.take(id);
        // Only a caller's input can fail to encode (too deep, too large for a frame): the caller's fault.
        if (err instanceof ThingerCodecError) reject(new AppError("invalid_request", `input cannot be sent to this device: ${err.message}`));
        else reject(err as AppError);
      }
    });
  }
}
