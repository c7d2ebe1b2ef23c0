/**
 * Many SDK devices spread over several child processes (test/bench/devices.ts), each child on its own
 * loopback source address (127.0.0.2, 127.0.0.3, …): one address pair offers only ~28k ephemeral ports
 * and one process only as many sockets as its fd limit.
 */
import { spawnTs, type Child } from "./proc.js";
import type { Event, StartCommand } from "../devices.js";
import { BENCH_USER, CRED_PREFIX } from "./targets.js";

export interface FleetOptions {
  url: string;
  prefix?: string;
  from?: number;
  count: number;
  /** Devices per child process (default 5000). */
  perChild?: number;
  /** First source address index: 127.0.0.{firstAddress + child}. Default 2. */
  firstAddress?: number;
  /** Use 127.0.0.1 only (for a handful of devices). */
  noSourceAddresses?: boolean;
  concurrencyPerChild?: number;
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

export interface Fleet {
  children: Child[];
  pids: number[];
  count: number;
  /** Resolves when every device is connected: duration from the start command to the last `ready`. */
  ready: Promise<{ ms: number; t: number }>;
  /** Sum of the latest progress counts. */
  connected(): number;
  /** Starts counting disconnections and reconnections (reconnect storm). */
  mark(): Promise<void>;
  /** Resolves with the time (performance.timeOrigin-based ms) the last device got back. */
  allBack(timeoutMs: number): Promise<number>;
  /** Totals since mark(); lagMs is the worst event-loop delay seen in any fleet process. */
  stormProgress(): { down: number; back: number; lagMs: number; attempts: number };
  push(index: number, resource: string, count: number, intervalMs: number): Promise<number[]>;
  close(): Promise<void>;
}

export const now = (): number => performance.timeOrigin + performance.now();

export function startFleet(o: FleetOptions): Fleet {
  const perChild = o.perChild ?? 5000;
  const n = Math.max(1, Math.ceil(o.count / perChild));
  const children: Child[] = [];
  const progress: number[] = [];
  const storm: Array<{ down: number; back: number; lagMs: number; attempts: number }> = [];
  const t0 = now();
  const readies: Array<Promise<{ ms: number; t: number }>> = [];
  const from = o.from ?? 0;
  for (let i = 0; i < n; i++) {
    const count = Math.min(perChild, o.count - i * perChild);
    const child = spawnTs(`devices-${i}`, "devices.ts");
    children.push(child);
    progress.push(0);
    storm.push({ down: 0, back: 0, lagMs: 0, attempts: 0 });
    child.proc.on("message", (m: Event) => {
      if (m.ev === "progress") progress[i] = m.connected;
      else if (m.ev === "ready") progress[i] = m.connected;
      else if (m.ev === "storm") storm[i] = { down: m.down, back: m.back, lagMs: Math.max(m.lagMs, storm[i]!.lagMs), attempts: m.attempts };
      else if (m.ev === "error") process.stderr.write(`[devices-${i}] ${m.message}\n`);
    });
    const cmd: StartCommand = {
      cmd: "start", url: o.url, user: BENCH_USER.user, prefix: o.prefix ?? "d", from: from + i * perChild, count,
      credPrefix: CRED_PREFIX, concurrency: o.concurrencyPerChild ?? 100,
      reconnectInitialMs: o.reconnectInitialMs ?? 100, reconnectMaxMs: o.reconnectMaxMs ?? 1000,
      ...(o.noSourceAddresses ? {} : { localAddress: `127.0.0.${(o.firstAddress ?? 2) + i}` }),
    };
    child.send(cmd);
    readies.push(child.message<Event>((m) => m.ev === "ready", 30 * 60_000) as Promise<{ ms: number; t: number }>);
  }
  const ready = Promise.all(readies).then((rs) => {
    const t = Math.max(...rs.map((r) => r.t));
    return { ms: t - t0, t };
  });
  return {
    children, count: o.count, ready, pids: children.map((c) => c.proc.pid!),
    connected: () => progress.reduce((a, b) => a + b, 0),
    async mark() {
      await Promise.all(children.map((c) => {
        const p = c.message<Event>((m) => m.ev === "marked", 10_000);
        c.send({ cmd: "mark" });
        return p;
      }));
    },
    async allBack(timeoutMs) {
      const ts = await Promise.all(children.map((c) => c.message<Event & { t: number }>((m) => m.ev === "all-back", timeoutMs)));
      return Math.max(...ts.map((m) => m.t));
    },
    stormProgress: () => storm.reduce((a, s) => ({ down: a.down + s.down, back: a.back + s.back, lagMs: Math.max(a.lagMs, s.lagMs), attempts: a.attempts + s.attempts }), { down: 0, back: 0, lagMs: 0, attempts: 0 }),
    async push(index, resource, count, intervalMs) {
      const c = children[0]!;
      const p = c.message<Event & { times: number[] }>((m) => m.ev === "pushed", count * intervalMs + 30_000);
      c.send({ cmd: "push", index, resource, count, intervalMs });
      return (await p).times;
    },
    async close() {
      for (const c of children) c.send({ cmd: "close" });
      await Promise.all(children.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 5000))]).then(() => c.stop(2000))));
    },
  };
}
