import { PassThrough } from "node:stream";
import type { Context } from "koa";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

export interface SseOptions {
  /** Interval of the `:` heartbeat comment (ms). */
  heartbeatMs: number;
  /** Reconnection delay announced to EventSource clients with `retry:` (ms). */
  retryMs: number;
  /** Bytes queued for a client that does not read before the stream is dropped. */
  maxBufferedBytes: number;
  /** Called after every heartbeat (token re-check). */
  onHeartbeat?: () => void;
  /** The heartbeat's clock (default the system's; tests pass a fake one). */
  timers?: Timers;
}

export interface SseMessage {
  id: string;
  /**
   * Event name, for control events only (`end`). Values go out unnamed (no `event:` line), so that
   * `EventSource.onmessage` — how Thinger's docs and every tutorial read a stream — receives them.
   */
  event?: string;
  data: unknown;
}

/**
 * Formats one event (WHATWG HTML §9.2.6). `data` is JSON on one line: JSON escapes every CR and LF.
 * Throws what `JSON.stringify` throws (a value nested too deep, a BigInt, a cycle): callers serialising
 * device values catch it.
 */
export function formatEvent(m: SseMessage): string {
  const name = m.event === undefined ? "" : `event: ${m.event}\n`;
  return `id: ${m.id}\n${name}data: ${JSON.stringify(m.data)}\n\n`;
}

/**
 * One Server-Sent Events response over Koa: sets the headers, keeps the connection alive with heartbeat
 * comments, drops a client that stops reading, and runs its close listeners exactly once, whoever closes
 * first (client gone, server ending the stream, shutdown).
 */
export class SseConnection {
  private readonly body = new PassThrough();
  private readonly heartbeat: TimerHandle;
  private readonly timers: Timers;
  private readonly closeListeners: Array<(reason: string) => void> = [];
  private closed = false;
  /** Id of the last event written, repeated on the final `end` event. */
  lastId = "";

  constructor(private readonly ctx: Context, private readonly options: SseOptions) {
    const socket = ctx.req.socket;
    // A stream is idle for long stretches: no socket timeout, no Nagle delay on small events.
    socket.setTimeout(0);
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    ctx.status = 200;
    ctx.set("Content-Type", "text/event-stream");
    // no-transform keeps proxies from compressing (and so buffering) the stream; no-store as for every API answer.
    ctx.set("Cache-Control", "no-cache, no-store, no-transform");
    ctx.set("X-Accel-Buffering", "no");
    ctx.remove("Pragma");
    (ctx as { compress?: boolean }).compress = false;
    this.body.on("error", () => this.dispose("error"));
    this.body.once("close", () => this.dispose("client_closed"));
    ctx.res.once("close", () => this.dispose("client_closed"));
    ctx.body = this.body;
    this.write(`: thingrelay\nretry: ${options.retryMs}\n\n`);
    this.timers = options.timers ?? systemTimers;
    this.heartbeat = this.timers.setInterval(() => {
      this.write(": heartbeat\n\n");
      this.options.onHeartbeat?.();
    }, options.heartbeatMs);
    this.heartbeat.unref?.();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Runs once when the stream ends, with the reason. */
  onClose(listener: (reason: string) => void): void {
    if (this.closed) listener("closed");
    else this.closeListeners.push(listener);
  }

  send(m: SseMessage): void {
    this.sendText(m.id, formatEvent(m));
  }

  /** Writes an event already formatted by {@link formatEvent} (serialised once for all subscribers). */
  sendText(id: string, text: string): void {
    if (this.write(text)) this.lastId = id;
  }

  /**
   * Drops the connection without a final event, as for a client that stops reading: `EventSource`
   * reconnects and resumes from its last id where possible.
   */
  abort(reason: string): void {
    if (this.closed) return;
    this.body.destroy();
    this.dispose(reason);
  }

  /** Ends the stream from the server side with a final `end` event carrying the reason. */
  end(reason: string): void {
    if (this.closed) return;
    if (this.lastId !== "") this.write(formatEvent({ id: this.lastId, event: "end", data: { reason } }));
    else this.write(`event: end\ndata: ${JSON.stringify({ reason })}\n\n`);
    this.body.end();
    this.dispose(reason);
  }

  private write(chunk: string): boolean {
    if (this.closed || this.body.destroyed) return false;
    const queued = this.body.writableLength + this.body.readableLength + this.ctx.res.writableLength;
    if (queued > this.options.maxBufferedBytes) {
      // The client stopped reading: drop it rather than buffer without bound. EventSource reconnects and resumes.
      this.body.destroy();
      this.dispose("slow_consumer");
      return false;
    }
    this.body.write(chunk);
    return true;
  }

  private dispose(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.timers.clearInterval(this.heartbeat);
    const listeners = this.closeListeners.splice(0);
    for (const l of listeners) l(reason);
  }
}
