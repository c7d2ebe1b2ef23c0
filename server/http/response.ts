import { type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders, ServerResponse } from "node:http";

/**
 * A response whose fixed headers (the security headers, `Cache-Control`, `X-Request-Id`: the same on every
 * answer but the id) are sent as one block with the head instead of set one by one as each request starts
 * (issue 15: `setHeader` validates, lower-cases and stores each; eleven of them were the largest JavaScript
 * item of a relay call's profile). The server is created with it (server.ts, `ServerResponse` option).
 *
 * The result is exactly what setting them first would give: at `writeHead` each fixed header the app has not
 * set itself is added; anything that reads, appends to or removes headers before the head is written first
 * applies the block as `setHeader` calls (the old state), then does what it does. When nothing was set with
 * `setHeader` and `writeHead` gets its headers as one flat list (the relay's fast path), the whole head goes
 * to Node as one list, without a single `setHeader`.
 */
export class HeaderBlockResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  /** Flat `[name, value, …]` still to apply; undefined when none is pending. */
  private pending: readonly string[] | undefined = undefined;
  private requestId: string | undefined = undefined;
  /** True once anything was set with `setHeader` (then the head cannot be one list). */
  private touched = false;

  /**
   * Headers to send with the head unless the app sets them itself (a shared, frozen flat list), and the request
   * id (`X-Request-Id`). Each call replaces the block of the one before; either may be given alone.
   */
  defer(block: readonly string[] | undefined, requestId?: string): void {
    if (this.headersSent) return;
    if (block !== undefined) this.pending = block;
    if (requestId !== undefined) this.requestId = requestId;
  }

  /** The deferred headers as `setHeader` calls, where the app did not set them (the state before deferral). */
  private materialize(): void {
    const block = this.pending;
    const id = this.requestId;
    this.pending = undefined;
    this.requestId = undefined;
    if (id !== undefined && !super.hasHeader("X-Request-Id")) super.setHeader("X-Request-Id", id);
    if (block === undefined) return;
    for (let i = 0; i < block.length; i += 2) {
      if (!super.hasHeader(block[i]!)) super.setHeader(block[i]!, block[i + 1]!);
    }
  }

  private get deferred(): boolean {
    return this.pending !== undefined || this.requestId !== undefined;
  }

  override setHeader(name: string, value: number | string | readonly string[]): this {
    this.touched = true;
    return super.setHeader(name, value);
  }

  override appendHeader(name: string, value: string | readonly string[]): this {
    if (this.deferred) this.materialize();
    this.touched = true;
    return super.appendHeader(name, value);
  }

  override getHeader(name: string): number | string | string[] | undefined {
    if (this.deferred) this.materialize();
    return super.getHeader(name);
  }

  override getHeaders(): OutgoingHttpHeaders {
    if (this.deferred) this.materialize();
    return super.getHeaders();
  }

  override getHeaderNames(): string[] {
    if (this.deferred) this.materialize();
    return super.getHeaderNames();
  }

  /** Node has it (not in its typings). */
  getRawHeaderNames(): string[] {
    if (this.deferred) this.materialize();
    return (ServerResponse.prototype as unknown as { getRawHeaderNames(this: ServerResponse): string[] }).getRawHeaderNames.call(this);
  }

  override hasHeader(name: string): boolean {
    if (this.deferred) this.materialize();
    return super.hasHeader(name);
  }

  override removeHeader(name: string): void {
    if (this.deferred) this.materialize();
    super.removeHeader(name);
  }

  override writeHead(statusCode: number, reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[], headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]): this {
    if (this.deferred && !this.headersSent) {
      const list = typeof reason === "string" ? headers : reason;
      if (!this.touched && (list === undefined || isFlatList(list))) {
        // One list for the whole head: the block, the id, then the caller's (which the caller keeps distinct).
        const block = this.pending ?? [];
        const all: OutgoingHttpHeader[] = this.requestId === undefined ? [...block] : [...block, "X-Request-Id", this.requestId];
        if (list !== undefined) for (const h of list) all.push(h);
        this.pending = undefined;
        this.requestId = undefined;
        return typeof reason === "string" ? super.writeHead(statusCode, reason, all) : super.writeHead(statusCode, all);
      }
      this.materialize();
    }
    return typeof reason === "string" ? super.writeHead(statusCode, reason, headers) : super.writeHead(statusCode, reason);
  }
}

function isFlatList(list: OutgoingHttpHeaders | OutgoingHttpHeader[]): list is string[] {
  return Array.isArray(list) && (list.length === 0 || !Array.isArray(list[0]));
}

/** Fixed headers sent with the head: deferred on a {@link HeaderBlockResponse}, else set now (another server). */
export function deferHeaders(res: ServerResponse, block: readonly string[] | undefined, requestId?: string): void {
  if (res instanceof HeaderBlockResponse) {
    res.defer(block, requestId);
    return;
  }
  if (requestId !== undefined) res.setHeader("X-Request-Id", requestId);
  if (block !== undefined) for (let i = 0; i < block.length; i += 2) res.setHeader(block[i]!, block[i + 1]!);
}
