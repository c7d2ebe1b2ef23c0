/**
 * SSE subscribers in one child process, driven over IPC by run.ts. Each subscriber is a plain
 * `node:http` GET with `Accept: text/event-stream` parsed by eventsource-parser; for every event whose
 * JSON data carries a `sent_at` stamp (set by the bench device right before it sends the value) it
 * records the delay from the device's send to the arrival here.
 */
import { request, type IncomingMessage } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createParser } from "eventsource-parser";

export interface SubscribeCommand {
  cmd: "subscribe";
  /** Full URL with `?authorization=`. */
  url: string;
  count: number;
  localAddress?: string;
  concurrency: number;
}

export type SseCommand = SubscribeCommand | { cmd: "report" } | { cmd: "close" };

export type SseEvent =
  | { ev: "progress"; open: number; total: number }
  | { ev: "ready"; open: number; ms: number }
  | { ev: "refused"; status: number; body: string }
  | { ev: "report"; delays: number[]; events: number; open: number; closed: number; lagMs: number };

const now = (): number => performance.timeOrigin + performance.now();
const send = (e: SseEvent) => process.send?.(e);

const delays: number[] = [];
let events = 0;
let open = 0;
let closed = 0;
/** Event-loop delay of this load generator while values fan out (client-side bottleneck check). */
const lag = monitorEventLoopDelay({ resolution: 10 });

/** Finds a numeric `sent_at` anywhere in the event's JSON (the stream's envelope is not ours to assume). */
function findStamp(v: unknown, depth = 0): number | undefined {
  if (depth > 4 || v === null || typeof v !== "object") return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.sent_at === "number") return o.sent_at;
  for (const child of Object.values(o)) {
    const s = findStamp(child, depth + 1);
    if (s !== undefined) return s;
  }
  return undefined;
}

function subscribe(c: SubscribeCommand): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(c.url, {
      agent: false,
      headers: { Accept: "text/event-stream" },
      ...(c.localAddress ? { localAddress: c.localAddress } : {}),
    }, (res: IncomingMessage) => {
      res.setEncoding("utf8");
      if (res.statusCode !== 200) {
        let body = "";
        res.on("data", (s: string) => (body += s));
        res.on("end", () => {
          send({ ev: "refused", status: res.statusCode ?? 0, body: body.slice(0, 300) });
          resolve(false);
        });
        return;
      }
      open++;
      // Arrival is when the bytes reach this process, before parsing: parsing cost is ours, not the server's.
      let arrival = 0;
      const parser = createParser({
        onEvent(e) {
          let data: unknown;
          try {
            data = JSON.parse(e.data);
          } catch {
            return;
          }
          const sent = findStamp(data);
          if (sent === undefined) return;
          events++;
          delays.push(arrival - sent);
        },
      });
      res.on("data", (s: string) => {
        arrival = now();
        parser.feed(s);
      });
      res.on("close", () => {
        open--;
        closed++;
      });
      resolve(true);
    });
    req.on("error", () => resolve(false));
    req.end();
  });
}

async function start(c: SubscribeCommand): Promise<void> {
  const t0 = now();
  let next = 0;
  let refused = false;
  const progress = setInterval(() => send({ ev: "progress", open, total: c.count }), 250);
  const worker = async () => {
    while (next < c.count && !refused) {
      next++;
      if (!(await subscribe(c))) refused = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.count) }, worker));
  clearInterval(progress);
  lag.enable();
  send({ ev: "ready", open, ms: now() - t0 });
}

process.on("message", (m: SseCommand) => {
  switch (m.cmd) {
    case "subscribe":
      void start(m);
      return;
    case "report":
      send({ ev: "report", delays, events, open, closed, lagMs: lag.max / 1e6 });
      return;
    case "close":
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
