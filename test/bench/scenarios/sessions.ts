/**
 * Scenario 3 — idle sessions: connect N authenticated SDK devices, report the connect rate and the server's
 * RSS (from /proc/<pid>/status) and V8 heap (from GET /metrics) per device.
 * Scenario 4 — reconnect storm: restart the server under those N devices and time until all are back.
 */
import { type BenchOptions, type Row, fmt, log, verdict } from "../lib/context.js";
import { startFleet, now, type Fleet } from "../lib/fleet.js";
import { fdLimitOf, rssOf, sleep } from "../lib/proc.js";
import { median, round } from "../lib/stats.js";
import { benchAccount, registerDevices, removeDir, startThingrelay, type ThingrelayProc } from "../lib/targets.js";

/** Reads one sample of a metric from the Prometheus text exposition. */
export async function scrape(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

async function memory(srv: ThingrelayProc, samples = 3): Promise<{ rss: number; heap: number }> {
  const rss: number[] = [];
  const heap: number[] = [];
  for (let i = 0; i < samples; i++) {
    if (i > 0) await sleep(500);
    rss.push(rssOf(srv.pid));
    heap.push(await scrape(srv.base, "thingrelay_nodejs_heap_size_used_bytes"));
  }
  return { rss: median(rss), heap: median(heap) };
}

export interface SessionResults {
  requested: number;
  devices: number;
  cappedBy?: string;
  registerS: number;
  scenario3?: {
    connectS: number;
    connectRate: number;
    baseline: { rss: number; heap: number };
    loaded: { rss: number; heap: number };
    rssPerDevice: number;
    heapPerDevice: number;
    projectedRss100k: number;
  };
  scenario4?: {
    backS: number;
    fromListenS: number;
    shutdownS: number;
    startS: number;
    reconnect: { initialMs: number; maxMs: number };
    allBack: boolean;
    back: number;
    down: number;
    /** Connection attempts the devices made from the SIGTERM until all were back. */
    attempts: number;
    /** Worst event-loop delay of the device processes during the storm (client-side bottleneck check). */
    clientLagMaxMs: number;
  };
}

const RECONNECT = { initialMs: 100, maxMs: 1000 };
const GB = 1024 ** 3;

export async function sessionScenarios(o: BenchOptions, rows: Row[]): Promise<SessionResults> {
  let srv = await startThingrelay();
  const dataDir = srv.dataDir;
  let fleet: Fleet | undefined;
  try {
    // The server needs one descriptor per session plus a few for itself: respect its hard limit.
    const fdLimit = fdLimitOf(srv.pid);
    const requested = o.devices;
    const n = Math.min(requested, fdLimit - 512);
    const result: SessionResults = { requested, devices: n, registerS: 0 };
    if (n < requested) {
      result.cappedBy = `server RLIMIT_NOFILE hard limit ${fdLimit} on this machine (cannot be raised without CAP_SYS_RESOURCE)`;
      log(`scenario 3: ${requested} devices requested, capped to ${n}: ${result.cappedBy}`);
      rows.push({ scenario: "3 idle sessions", metric: "devices (capped)", value: `${fmt.int(n)} of ${fmt.int(requested)} requested: ${result.cappedBy}`, verdict: "info" });
    }
    const token = await benchAccount(srv.base);
    log(`scenario 3: registering ${n} devices through the REST API`);
    const t0 = performance.now();
    await registerDevices(srv.base, token, "d", 0, n, 16, (k) => {
      if (k % 10_000 === 0) log(`  registered ${k}`);
    });
    result.registerS = round((performance.now() - t0) / 1000, 2);
    // Restart so the baseline is a fresh process holding N registered devices and no session.
    await srv.stop();
    srv = await startThingrelay({ dataDir });
    await sleep(o.quick ? 1000 : 3000);
    const baseline = await memory(srv);

    log(`scenario 3: connecting ${n} SDK devices`);
    const tc = now();
    fleet = startFleet({ url: srv.wsUrl, count: n, perChild: 5000, concurrencyPerChild: 100, reconnectInitialMs: RECONNECT.initialMs, reconnectMaxMs: RECONNECT.maxMs });
    const ticker = setInterval(() => log(`  connected ${fleet!.connected()} / ${n}`), 2000);
    const ready = await fleet.ready.finally(() => clearInterval(ticker));
    const connectS = (ready.t - tc) / 1000;
    await sleep(o.quick ? 1000 : 5000);
    const loaded = await memory(srv);
    const rssPerDevice = (loaded.rss - baseline.rss) / n;
    const heapPerDevice = (loaded.heap - baseline.heap) / n;
    const projectedRss100k = baseline.rss + rssPerDevice * 100_000;
    if (o.only.has(3)) {
      result.scenario3 = { connectS: round(connectS, 2), connectRate: round(n / connectS, 0), baseline, loaded, rssPerDevice: round(rssPerDevice, 0), heapPerDevice: round(heapPerDevice, 0), projectedRss100k: round(projectedRss100k, 0) };
      const s3 = "3 idle sessions";
      rows.push({ scenario: s3, metric: `connect ${fmt.int(n)} devices`, value: `${connectS.toFixed(2)} s (${fmt.int(n / connectS)} devices/s)`, verdict: "info" });
      rows.push({ scenario: s3, metric: "server RSS / heap used", value: `${fmt.mb(loaded.rss)} / ${fmt.mb(loaded.heap)} (idle baseline ${fmt.mb(baseline.rss)} / ${fmt.mb(baseline.heap)})`, verdict: "info" });
      rows.push({ scenario: s3, metric: "per device: RSS / heap", value: `${fmt.kb(rssPerDevice)} / ${fmt.kb(heapPerDevice)}`, verdict: "info" });
      const measured100k = n >= 100_000;
      rows.push({
        scenario: s3, metric: measured100k ? "RSS at 100,000 sessions" : "RSS at 100,000 sessions (projected)",
        value: measured100k ? fmt.mb(loaded.rss) : `${fmt.mb(projectedRss100k)} (baseline + 100,000 × per-device)`,
        target: "≤ 2.5 GB", verdict: verdict((measured100k ? loaded.rss : projectedRss100k) <= 2.5 * GB),
      });
    }

    if (o.only.has(4)) {
      log(`scenario 4: restarting the server under ${n} devices`);
      await fleet.mark();
      const ts = now();
      const port = srv.port;
      await srv.stop();
      const tDown = now();
      srv = await startThingrelay({ dataDir, port });
      const tListen = now();
      const ticker2 = setInterval(() => {
        const p = fleet!.stormProgress();
        log(`  storm: ${p.down} dropped, ${p.back} back / ${n} (${p.attempts} attempts, device event-loop lag ≤ ${Math.round(p.lagMs)} ms)`);
      }, 1000);
      let tBack = NaN;
      let allBack = true;
      try {
        tBack = await fleet.allBack(o.quick ? 60_000 : 180_000);
      } catch {
        allBack = false;
      } finally {
        clearInterval(ticker2);
      }
      await sleep(300); // let the last progress messages arrive
      const p = fleet.stormProgress();
      const backS = (tBack - ts) / 1000;
      result.scenario4 = {
        backS: round(backS, 2), fromListenS: round((tBack - tListen) / 1000, 2), shutdownS: round((tDown - ts) / 1000, 2),
        startS: round((tListen - tDown) / 1000, 2), reconnect: RECONNECT, allBack, back: p.back, down: p.down,
        attempts: p.attempts, clientLagMaxMs: round(p.lagMs, 0),
      };
      const s4 = "4 reconnect storm";
      if (allBack) {
        rows.push({ scenario: s4, metric: `${fmt.int(n)} devices back after restart`, value: `${backS.toFixed(2)} s (shutdown ${result.scenario4.shutdownS} s, start ${result.scenario4.startS} s, reconnect ${result.scenario4.fromListenS} s)`, target: "≤ 10 s", verdict: verdict(backS <= 10) });
      } else {
        rows.push({ scenario: s4, metric: `${fmt.int(n)} devices back after restart`, value: `only ${p.back} back before the time limit`, target: "≤ 10 s", verdict: "missed" });
      }
      rows.push({ scenario: s4, metric: "devices: backoff, attempts, worst event-loop lag", value: `${RECONNECT.initialMs} ms doubling to ${RECONNECT.maxMs} ms with jitter; ${fmt.int(p.attempts)} attempts; ${fmt.int(p.lagMs)} ms`, verdict: "info" });
    }
    return result;
  } finally {
    await fleet?.close();
    await srv.stop();
    removeDir(dataDir);
  }
}
