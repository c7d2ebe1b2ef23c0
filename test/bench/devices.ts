/**
 * A fleet of SDK devices in one child process, driven over IPC by run.ts. Each device is a real
 * `Device` from device-sdk/ (connect frame, describe, answers calls, app-level pings, reconnect with
 * backoff + jitter), bound to one loopback source address so many fleets together are not limited by
 * the ephemeral port range of a single address pair.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { WebSocket } from "ws";
import { Device, type WebSocketFactory } from "../../device-sdk/index.js";

export interface StartCommand {
  cmd: "start";
  url: string;
  user: string;
  /** Device names are `${prefix}${i}` for i in [from, from + count). */
  prefix: string;
  from: number;
  count: number;
  /** Credentials of device `id` are `${credPrefix}${id}`. */
  credPrefix: string;
  localAddress?: string;
  /** Connection attempts in flight at once (the rest wait their turn). */
  concurrency: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  keepalive?: number;
}

export type Command =
  | StartCommand
  | { cmd: "mark" }
  | { cmd: "push"; index: number; resource: string; count: number; intervalMs: number }
  | { cmd: "close" };

export type Event =
  | { ev: "progress"; connected: number; total: number }
  | { ev: "ready"; connected: number; ms: number; t: number }
  | { ev: "marked" }
  | { ev: "storm"; down: number; back: number; total: number; lagMs: number; attempts: number }
  | { ev: "all-back"; t: number; back: number }
  | { ev: "pushed"; times: number[] }
  | { ev: "error"; message: string };

/** Wall-clock time in ms with sub-ms resolution, comparable between processes on one machine. */
export const now = (): number => performance.timeOrigin + performance.now();

const send = (e: Event) => process.send?.(e);

const devices: Device[] = [];
/** When set, "temperature" answers `{value, sent_at}` (for the SSE fan-out delay). */
let stamp = false;
let seq = 0;

let marked = false;
let down = 0;
let back = 0;
let backFlags: Uint8Array = new Uint8Array(0);
let downFlags: Uint8Array = new Uint8Array(0);
let stormTimer: NodeJS.Timeout | undefined;
/** Event-loop delay of this load generator: if it grows, the client side is the bottleneck. */
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();
/** WebSocket objects created (connection attempts) since the mark. */
let attempts = 0;
const stormEvent = (): Event => {
  const e: Event = { ev: "storm", down, back, total: devices.length, lagMs: lag.max / 1e6, attempts };
  lag.reset();
  return e;
};

/**
 * WebSocket class for the SDK, bound to `localAddress` when given. The local port is chosen here, from a
 * rotating counter: with port 0, Linux searches the whole range for a port free on that address at every
 * bind (bind-before-connect cannot use the 4-tuple), which under a reconnect storm of thousands of sockets
 * cost 80 % of this process's CPU (measured with --cpu-prof). A port still in use fails with EADDRINUSE and
 * the SDK simply retries with the next one.
 */
function boundWebSocket(localAddress: string | undefined, avoidPort: number): WebSocketFactory {
  let port = 1024 + Math.floor(Math.random() * 60_000);
  const nextPort = () => {
    do port = port >= 65_535 ? 1024 : port + 1;
    while (port === avoidPort);
    return port;
  };
  class BoundWebSocket extends WebSocket {
    constructor(url: string) {
      super(url, {
        perMessageDeflate: false, handshakeTimeout: 30_000,
        ...(localAddress ? { localAddress, localPort: nextPort() } : {}),
      });
      attempts++;
    }
  }
  return BoundWebSocket as unknown as WebSocketFactory;
}

async function start(c: StartCommand): Promise<void> {
  const started = now();
  const WS = boundWebSocket(c.localAddress, Number(new URL(c.url).port));
  backFlags = new Uint8Array(c.count);
  downFlags = new Uint8Array(c.count);
  for (let k = 0; k < c.count; k++) {
    const id = `${c.prefix}${c.from + k}`;
    const d = new Device({
      server: c.url, user: c.user, device: id, credentials: `${c.credPrefix}${id}`, WebSocket: WS,
      reconnectInitialMs: c.reconnectInitialMs, reconnectMaxMs: c.reconnectMaxMs, connectTimeoutMs: 30_000,
      ...(c.keepalive ? { keepalive: c.keepalive } : {}),
    });
    d.output("temperature", () => (stamp ? { value: 21.5, seq: ++seq, sent_at: now() } : 21.5));
    d.on("error", () => {
      /* refused attempts are retried by the SDK; the totals below tell whether everyone got in */
    });
    d.on("disconnected", () => {
      if (marked && !downFlags[k]) {
        downFlags[k] = 1;
        down++;
      }
    });
    d.on("connected", () => {
      if (!marked || backFlags[k]) return;
      backFlags[k] = 1;
      back++;
      if (back === c.count) {
        clearInterval(stormTimer);
        send(stormEvent());
        send({ ev: "all-back", t: now(), back });
      }
    });
    devices.push(d);
  }
  let connected = 0;
  const progress = setInterval(() => send({ ev: "progress", connected, total: c.count }), 250);
  let next = 0;
  const worker = async () => {
    while (next < devices.length) {
      const d = devices[next++]!;
      await d.connect();
      connected++;
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(c.concurrency, devices.length) }, worker));
  } finally {
    clearInterval(progress);
  }
  send({ ev: "ready", connected, ms: now() - started, t: now() });
}

process.on("message", (m: Command) => {
  switch (m.cmd) {
    case "start":
      start(m).catch((err: unknown) => send({ ev: "error", message: String(err) }));
      return;
    case "mark":
      marked = true;
      down = 0;
      back = 0;
      attempts = 0;
      backFlags.fill(0);
      downFlags.fill(0);
      lag.reset();
      stormTimer = setInterval(() => send(stormEvent()), 250);
      send({ ev: "marked" });
      return;
    case "push": {
      const d = devices[m.index];
      if (!d) return send({ ev: "error", message: `no device #${m.index}` });
      stamp = true;
      const times: number[] = [];
      let n = 0;
      const tick = () => {
        times.push(now());
        void d.stream(m.resource);
        if (++n < m.count) setTimeout(tick, m.intervalMs);
        else setTimeout(() => send({ ev: "pushed", times }), 50);
      };
      tick();
      return;
    }
    case "close":
      // Sockets close with the process; the server sees every session end at once.
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
