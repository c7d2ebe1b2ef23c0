import type { WebSocketLike } from "../../device-sdk/index.js";

export interface FakeSocketOptions {
  /** Open each socket on the next microtask, as a reachable server does (default false: the test calls `accept`). */
  autoOpen?: boolean;
}

/** A scripted in-memory WebSocket for the SDK's state-machine tests: frames in with `receive`, frames out in `sent`. */
export interface FakeSocket extends WebSocketLike {
  readonly url: string;
  readyState: number;
  readonly sent: Record<string, unknown>[];
  /** When false, close() never completes (a dead peer never answers the closing handshake). */
  closeCompletes: boolean;
  /** Codes of every close() call. */
  readonly closeCalls: number[];
  /** Opens the socket and answers `connected`. */
  accept(keepalive?: number): void;
  /** Delivers one frame from the "server". */
  receive(frame: object): void;
  /** The connection drops (no closing handshake). */
  drop(code?: number): void;
}

/**
 * A WebSocket class to pass as the SDK's `WebSocket` option, the sockets it made (in order) and `opened(n)`,
 * which resolves once socket number `n` (1-based) is open: an awaited event, not a polling loop.
 */
export function fakeSocketClass(options: FakeSocketOptions = {}): {
  FakeWS: new (url: string) => FakeSocket;
  instances: FakeSocket[];
  opened(n: number): Promise<FakeSocket>;
  created(n: number): Promise<FakeSocket>;
  sentFrame(socket: FakeSocket, match: (f: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
} {
  const instances: FakeSocket[] = [];
  const waiters: Array<() => boolean> = [];
  /** Runs every waiter; those that are satisfied are dropped. */
  const notify = () => {
    for (const w of [...waiters]) if (w()) waiters.splice(waiters.indexOf(w), 1);
  };
  const when = <T>(value: () => T | undefined) => new Promise<T>((resolve) => {
    waiters.push(() => {
      const v = value();
      if (v === undefined) return false;
      resolve(v);
      return true;
    });
    notify();
  });
  class FakeWS implements FakeSocket {
    readyState = 0;
    readonly sent: Record<string, unknown>[] = [];
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: { code: number; reason: string }) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    closeCompletes = true;
    readonly closeCalls: number[] = [];
    constructor(readonly url: string) {
      instances.push(this);
      queueMicrotask(notify);
      if (options.autoOpen) queueMicrotask(() => this.open());
    }
    private open(): void {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
      notify();
    }
    send(data: string): void {
      this.sent.push(JSON.parse(data) as Record<string, unknown>);
      notify();
    }
    close(code = 1000, reason = ""): void {
      this.closeCalls.push(code);
      if (this.readyState === 3 || !this.closeCompletes) return;
      this.readyState = 3;
      queueMicrotask(() => this.onclose?.({ code, reason }));
    }
    accept(keepalive = 60): void {
      this.open();
      this.receive({ type: "connected", user: "u", device: "d", keepalive, server_time: Date.now() });
    }
    receive(frame: object): void {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    drop(code = 1006): void {
      this.readyState = 3;
      this.onclose?.({ code, reason: "" });
    }
  }
  const opened = (n: number) => when(() => (instances[n - 1]?.readyState === 1 ? instances[n - 1] : undefined));
  /** Socket number `n` (1-based) once the SDK has created it. */
  const created = (n: number) => when(() => instances[n - 1]);
  /** The first frame `socket` sent that matches, once it is sent. */
  const sentFrame = (socket: FakeSocket, match: (f: Record<string, unknown>) => boolean) => when(() => socket.sent.find(match));
  return { FakeWS, instances, opened, created, sentFrame };
}
