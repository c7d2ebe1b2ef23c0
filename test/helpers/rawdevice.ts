import { WebSocket, type ClientOptions, type RawData } from "ws";

/** A `call` frame as the server sends it. */
export interface CallFrame {
  type: "call";
  id: number;
  resource: string;
  in?: unknown;
}

export interface RawDeviceOptions {
  /** ws://host:port of the server (the helper appends /v1/connect). */
  wsUrl: string;
  user: string;
  device: string;
  credentials: string;
  /** Resources announced by `describe` right after `connected`; omit to send no describe. */
  describe?: Record<string, "output" | "input" | "io" | "run">;
  /** Answer WebSocket pings automatically (default true, as every real client does). */
  autoPong?: boolean;
  /** Extra `ws` client options (maxPayload…). */
  ws?: ClientOptions;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * A device speaking the JSON protocol by hand over a raw `ws` socket, for cases the SDK never produces:
 * stray or duplicate reply ids, replies held back, a device that stops reading or stops answering pings.
 * It records every frame it receives and counts the message bytes both ways, as the server should.
 */
export class RawDevice {
  /** Every parsed frame received, in order (including `connected`). */
  readonly frames: Record<string, unknown>[] = [];
  /** Every call received, in order. */
  readonly calls: CallFrame[] = [];
  /** Message payload bytes received from / sent to the server. */
  rxBytes = 0;
  txBytes = 0;
  /** WebSocket pings received. */
  pings = 0;
  /** Resolves with the close code and reason once the socket closed. */
  readonly closed: Promise<CloseInfo>;
  /** When set, every call is answered by it (return value = `out`; throw → error frame). */
  onCall: ((call: CallFrame) => unknown) | undefined;
  private waiters: Array<{ match: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }> = [];
  /** Frames before this index were returned by {@link take} (or are the `connected` answer). */
  private taken = 0;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise<CloseInfo>((resolve) => {
      ws.on("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }));
    });
    ws.on("error", () => {
      /* the close event follows */
    });
    ws.on("ping", () => {
      this.pings++;
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      const text = data.toString();
      this.rxBytes += Buffer.byteLength(text);
      let f: Record<string, unknown>;
      try {
        f = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return;
      }
      this.frames.push(f);
      if (f.type === "call") {
        this.calls.push(f as unknown as CallFrame);
        if (this.onCall) this.answerWith(f as unknown as CallFrame, this.onCall);
      }
      for (const w of [...this.waiters]) {
        if (w.match(f)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
  }

  /** Opens a socket to `/v1/connect` without sending anything. */
  static async open(wsUrl: string, options: ClientOptions = {}): Promise<RawDevice> {
    const ws = new WebSocket(`${wsUrl}/v1/connect`, options);
    const d = new RawDevice(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once("error", reject);
    });
    return d;
  }

  /** Opens a socket, sends `connect` and waits for `connected` (rejects with the close code otherwise). */
  static async connect(o: RawDeviceOptions): Promise<RawDevice> {
    const d = await RawDevice.open(o.wsUrl, { autoPong: o.autoPong ?? true, ...o.ws });
    const first = d.next(() => true);
    d.send({ type: "connect", user: o.user, device: o.device, credentials: o.credentials });
    const reply = await Promise.race([first, d.closed.then((c) => ({ type: "closed", ...c }))]);
    if (reply.type !== "connected") {
      const c = await d.closed;
      throw Object.assign(new Error(`refused: ${JSON.stringify(reply)} close ${c.code}`), { frame: reply, close: c });
    }
    d.taken = d.frames.indexOf(reply) + 1;
    if (o.describe) d.describe(o.describe);
    return d;
  }

  /**
   * Opens a socket, connects and announces `resources` (`{name: kind}`): the positional form the stream and
   * queued-call tests use.
   */
  static described(wsUrl: string, user: string, device: string, credentials: string, resources: Record<string, string>): Promise<RawDevice> {
    return RawDevice.connect({ wsUrl, user, device, credentials, describe: resources as RawDeviceOptions["describe"] });
  }

  /**
   * The first frame matching `pred` after the last one taken, already received or still to come (a cursor over
   * {@link frames}, starting after `connected`). Unlike {@link next}, a frame that arrived before the call counts.
   */
  take(pred: (f: any) => boolean = () => true, timeoutMs = 8_000): Promise<any> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        for (let i = this.taken; i < this.frames.length; i++) {
          if (pred(this.frames[i])) {
            this.taken = i + 1;
            resolve(this.frames[i]);
            return true;
          }
        }
        return false;
      };
      if (check()) return;
      const waiter = {
        match: () => check(),
        resolve: () => clearTimeout(timer),
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no matching frame; got ${JSON.stringify(this.frames.slice(this.taken))}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** The next `stream` or `unstream` frame ({@link take}). */
  nextStreamFrame(): Promise<any> {
    return this.take((f) => f.type === "stream" || f.type === "unstream");
  }

  /** Pushes a value of `resource` (a `data` frame). */
  data(resource: string, out: unknown): void {
    this.send({ type: "data", resource, out });
  }

  /** Waits for the next received frame matching `match` (only frames received after this call). */
  next(match: (f: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("timed out waiting for a frame")), timeoutMs);
      this.waiters.push({ match, resolve: (f) => { clearTimeout(t); resolve(f); } });
    });
  }

  /** The call number `n` (0-based) once it has arrived. */
  async call(n: number, timeoutMs = 10_000): Promise<CallFrame> {
    if (this.calls.length > n) return this.calls[n]!;
    const deadline = Date.now() + timeoutMs;
    while (this.calls.length <= n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for call #${n}`);
      await this.next((f) => f.type === "call", Math.max(1, deadline - Date.now())).catch(() => undefined);
    }
    return this.calls[n]!;
  }

  send(frame: object | string): void {
    const text = typeof frame === "string" ? frame : JSON.stringify(frame);
    this.txBytes += Buffer.byteLength(text);
    this.ws.send(text);
  }

  describe(resources: Record<string, string>): void {
    this.send({ type: "describe", resources: Object.fromEntries(Object.entries(resources).map(([k, kind]) => [k, { kind }])) });
  }

  reply(id: number, out?: unknown): void {
    this.send(out === undefined ? { type: "result", id } : { type: "result", id, out });
  }

  fail(id: number, status: number, message: string): void {
    this.send({ type: "error", id, status, message });
  }

  private answerWith(call: CallFrame, fn: (c: CallFrame) => unknown): void {
    try {
      const out = fn(call);
      this.reply(call.id, out);
    } catch (err) {
      this.fail(call.id, (err as { status?: number }).status ?? 500, (err as Error).message);
    }
  }

  /** Drops the TCP connection without a closing handshake (a device killed or unplugged). */
  kill(): void {
    this.ws.terminate();
  }

  async close(): Promise<CloseInfo> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    return this.closed;
  }
}
