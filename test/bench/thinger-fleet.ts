/**
 * Legacy-protocol Thinger devices for the benchmarks, in one child process driven over IPC: each one is the test
 * emulator (test/helpers/thinger-device.ts, through test/thinger/device.ts) speaking the "thinger.io" Arduino library's protocol, with a
 * `temperature` output answering 21.5, keep-alives every 60 s, and reconnecting (capped backoff) when dropped.
 *
 *   node --import=tsx test/bench/thinger-fleet.ts   (then IPC: {cmd:"start", port, user, prefix, from, count, credPrefix})
 */
import { TestDevice } from "../thinger/device.js";

export interface ThingerFleetStart {
  cmd: "start";
  port: number;
  user: string;
  prefix: string;
  from: number;
  count: number;
  credPrefix: string;
  /** Connections opening at once. */
  concurrency: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
}

export type ThingerFleetEvent =
  | { ev: "ready"; connected: number }
  | { ev: "progress"; connected: number }
  | { ev: "marked" }
  | { ev: "storm"; down: number; back: number };

const send = (e: ThingerFleetEvent) => process.send?.(e);
let connected = 0;
let marked = false;
let down = 0;
let back = 0;
let closing = false;

async function run(c: ThingerFleetStart, k: number, slot: () => Promise<() => void>): Promise<void> {
  const id = `${c.prefix}${c.from + k}`;
  let delay = c.reconnectInitialMs;
  let wasDown = false;
  let first = true;
  while (!closing) {
    const release = await slot();
    const d = new TestDevice({
      protocol: "legacy", transport: "tcp", port: c.port, user: c.user, device: id, credentials: `${c.credPrefix}${id}`,
      resources: { temperature: { kind: "output", out: () => 21.5 } }, keepAliveMs: 60_000, authTimeoutMs: 30_000,
    });
    let ok = false;
    try {
      await d.connect();
      ok = true;
    } catch {
      ok = false;
    } finally {
      release();
    }
    if (ok) {
      delay = c.reconnectInitialMs;
      connected++;
      if (first) {
        first = false;
        if (connected === c.count) send({ ev: "ready", connected });
      }
      if (wasDown && marked) {
        back++;
        send({ ev: "storm", down, back });
      }
      await d.closed;
      connected--;
      if (closing) return;
      if (marked && !wasDown) {
        wasDown = true;
        down++;
      }
    }
    await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
    delay = Math.min(delay * 2, c.reconnectMaxMs);
  }
}

process.on("message", (m: ThingerFleetStart | { cmd: "mark" } | { cmd: "close" }) => {
  if (m.cmd === "mark") {
    marked = true;
    send({ ev: "marked" });
    return;
  }
  if (m.cmd === "close") {
    closing = true;
    process.exit(0);
  }
  if (m.cmd !== "start") return;
  let inFlight = 0;
  const waiting: Array<() => void> = [];
  const slot = async (): Promise<() => void> => {
    if (inFlight >= m.concurrency) await new Promise<void>((r) => waiting.push(r));
    inFlight++;
    return () => {
      inFlight--;
      waiting.shift()?.();
    };
  };
  for (let k = 0; k < m.count; k++) void run(m, k, slot);
  const ticker = setInterval(() => send({ ev: "progress", connected }), 2000);
  ticker.unref();
});
