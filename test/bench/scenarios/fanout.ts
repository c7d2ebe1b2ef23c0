/**
 * Scenario 5 — SSE fan-out: S subscribers on one resource stream
 * (`GET /v2/users/{u}/devices/{d}/{resource}` with `Accept: text/event-stream`, `?authorization=`); the
 * device pushes stamped values and every subscriber records the delay from the device's send to arrival.
 */
import { mkdirSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { type BenchOptions, type Row, fmt, log, verdict } from "../lib/context.js";
import { startFleet, type Fleet } from "../lib/fleet.js";
import { spawnTs, sleep, type Child } from "../lib/proc.js";
import { percentileSorted, round } from "../lib/stats.js";
import { benchAccount, BENCH_USER, registerDevices, removeDir, startThingrelay } from "../lib/targets.js";
import type { SseEvent, SubscribeCommand } from "../sse-clients.js";

export interface FanoutResults {
  available: boolean;
  reason?: string;
  subscribers?: number;
  subscribeS?: number;
  events?: number;
  expectedDeliveries?: number;
  deliveries?: number;
  p50?: number;
  p99?: number;
  max?: number;
  /** Worst event-loop delay in the subscriber processes while values fanned out. */
  clientLagMaxMs?: number;
}

/** One SSE request: is the stream there? (status, first bytes) */
function probe(url: string): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { Accept: "text/event-stream" } }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      const done = () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body: body.slice(0, 300), type: String(res.headers["content-type"] ?? "") });
      };
      if (res.statusCode === 200) return done();
      res.on("data", (s: string) => (body += s));
      res.on("end", done);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("probe timed out")));
    req.end();
  });
}

export async function fanoutScenario(o: BenchOptions, rows: Row[]): Promise<FanoutResults> {
  const s5 = "5 SSE fan-out";
  const profileDir = join(o.outDir, "profiles");
  if (o.profile) mkdirSync(profileDir, { recursive: true });
  const srv = await startThingrelay(o.profile ? { nodeArgs: ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] } : {});
  let fleet: Fleet | undefined;
  const clients: Child[] = [];
  try {
    const token = await benchAccount(srv.base);
    await registerDevices(srv.base, token, "d", 0, 1);
    fleet = startFleet({ url: srv.wsUrl, count: 1, noSourceAddresses: true });
    await fleet.ready;
    const url = `${srv.base}/v2/users/${BENCH_USER.user}/devices/d0/temperature?authorization=${encodeURIComponent(token)}`;
    const p = await probe(url);
    if (p.status !== 200 || !p.type.includes("text/event-stream")) {
      const reason = `resource streams not available in this build: GET with Accept: text/event-stream answered ${p.status} ${p.body.replace(/\s+/g, " ")}`;
      log(`scenario 5: ${reason}`);
      rows.push({ scenario: s5, metric: "delay device → subscribers", value: "not available (resource streams not implemented yet)", target: "p99 ≤ 500 ms", verdict: "n/a" });
      return { available: false, reason };
    }

    const s = o.subscribers;
    const perChild = 2500;
    const nChildren = Math.ceil(s / perChild);
    log(`scenario 5: opening ${s} SSE subscribers in ${nChildren} processes`);
    const t0 = performance.now();
    const readies: Array<Promise<SseEvent>> = [];
    const refusals: string[] = [];
    for (let i = 0; i < nChildren; i++) {
      const c = spawnTs(`sse-${i}`, "sse-clients.ts");
      clients.push(c);
      c.proc.on("message", (m: SseEvent) => {
        if (m.ev === "refused" && refusals.length < 3) refusals.push(`${m.status} ${m.body}`);
      });
      const cmd: SubscribeCommand = { cmd: "subscribe", url, count: Math.min(perChild, s - i * perChild), localAddress: `127.0.0.${2 + i}`, concurrency: 50 };
      readies.push(c.message<SseEvent>((m) => m.ev === "ready", 10 * 60_000));
      c.send(cmd);
    }
    const ready = await Promise.all(readies);
    const open = ready.reduce((a, m) => a + (m.ev === "ready" ? m.open : 0), 0);
    const subscribeS = (performance.now() - t0) / 1000;
    if (open < s) {
      const reason = `only ${open} of ${s} subscriptions opened${refusals.length ? `: ${refusals.join(" | ")}` : ""}`;
      rows.push({ scenario: s5, metric: "subscribers", value: reason, verdict: "missed" });
      if (open === 0) return { available: false, reason };
    }
    await sleep(1000);

    const count = o.quick ? 5 : 20;
    const intervalMs = o.quick ? 200 : 500;
    log(`scenario 5: device pushes ${count} values, ${intervalMs} ms apart`);
    const times = await fleet.push(0, "temperature", count, intervalMs);
    await sleep(o.quick ? 1500 : 3000);
    const reports = await Promise.all(clients.map((c) => {
      const r = c.message<SseEvent>((m) => m.ev === "report", 60_000);
      c.send({ cmd: "report" });
      return r;
    }));
    const all: number[] = [];
    let lagMs = 0;
    for (const r of reports) {
      if (r.ev !== "report") continue;
      for (const d of r.delays) all.push(d);
      lagMs = Math.max(lagMs, r.lagMs);
    }
    const sorted = Float64Array.from(all).sort();
    const res: FanoutResults = {
      available: true, subscribers: open, subscribeS: round(subscribeS, 2), events: times.length,
      expectedDeliveries: open * times.length, deliveries: sorted.length,
      p50: round(percentileSorted(sorted, 50), 2), p99: round(percentileSorted(sorted, 99), 2), max: round(sorted[sorted.length - 1] ?? NaN, 2),
      clientLagMaxMs: round(lagMs, 0),
    };
    rows.push({ scenario: s5, metric: `subscribe ${fmt.int(open)} streams`, value: `${res.subscribeS} s`, verdict: "info" });
    rows.push({ scenario: s5, metric: "deliveries", value: `${fmt.int(res.deliveries!)} of ${fmt.int(res.expectedDeliveries!)} (${times.length} values)`, verdict: res.deliveries! >= res.expectedDeliveries! ? "info" : "missed" });
    rows.push({ scenario: s5, metric: "delay device → subscriber", value: `p50 ${fmt.ms(res.p50!, 1)}, p99 ${fmt.ms(res.p99!, 1)}, max ${fmt.ms(res.max!, 1)}`, target: "p99 ≤ 500 ms", verdict: verdict(res.p99! <= 500 && res.deliveries! >= res.expectedDeliveries!) });
    rows.push({ scenario: s5, metric: "subscriber processes: worst event-loop lag", value: fmt.ms(lagMs, 0), verdict: "info" });
    return res;
  } finally {
    for (const c of clients) c.send({ cmd: "close" });
    await Promise.all(clients.map((c) => c.stop(3000)));
    await fleet?.close();
    await srv.stop();
    removeDir(srv.dataDir);
  }
}
