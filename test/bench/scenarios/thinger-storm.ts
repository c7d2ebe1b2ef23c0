/**
 * Scenario 4, legacy Thinger devices: the reconnect storm with N legacy-protocol devices (the emulated "thinger.io"
 * Arduino library, test/bench/thinger-fleet.ts): restart the server under them and time until all are back.
 */
import { type BenchOptions, type Row, fmt, log, verdict } from "../lib/context.js";
import { round } from "../lib/stats.js";
import { benchAccount, registerDevices, removeDir, startThingrelay } from "../lib/targets.js";
import { freePort, startThingerFleet } from "./relay.js";
import type { ThingerFleetEvent } from "../thinger-fleet.js";

const RECONNECT = { initialMs: 100, maxMs: 1000 };

export interface ThingerStormResult {
  devices: number;
  connectS: number;
  backS: number;
  shutdownS: number;
  startS: number;
  allBack: boolean;
  back: number;
}

export async function thingerStorm(o: BenchOptions, rows: Row[], n = 1_000): Promise<ThingerStormResult> {
  const thingerPort = await freePort();
  const env = { THINGRELAY_THINGER_PORT: String(thingerPort) };
  let srv = await startThingrelay({ env });
  const dataDir = srv.dataDir;
  let fleet: Awaited<ReturnType<typeof startThingerFleet>> | undefined;
  try {
    const token = await benchAccount(srv.base);
    log(`scenario 4 (legacy): registering ${n} devices`);
    await registerDevices(srv.base, token, "t", 0, n);
    log(`scenario 4 (legacy): connecting ${n} legacy Thinger devices`);
    const t0 = performance.now();
    fleet = await startThingerFleet(thingerPort, "t", n, RECONNECT);
    const connectS = (performance.now() - t0) / 1000;
    const marked = fleet.child.message<ThingerFleetEvent>((m) => m.ev === "marked", 10_000);
    fleet.child.send({ cmd: "mark" });
    await marked;
    let back = 0;
    const allBack = fleet.child.message<ThingerFleetEvent>((m) => {
      if (m.ev === "storm") back = m.back;
      return m.ev === "storm" && m.back >= n;
    }, o.quick ? 60_000 : 180_000);
    log(`scenario 4 (legacy): restarting the server under ${n} devices`);
    const ts = performance.now();
    const port = srv.port;
    await srv.stop();
    const tDown = performance.now();
    srv = await startThingrelay({ dataDir, port, env });
    const tListen = performance.now();
    let ok = true;
    await allBack.catch(() => {
      ok = false;
    });
    const tBack = performance.now();
    const result: ThingerStormResult = {
      devices: n, connectS: round(connectS, 2), backS: round((tBack - ts) / 1000, 2), shutdownS: round((tDown - ts) / 1000, 2),
      startS: round((tListen - tDown) / 1000, 2), allBack: ok, back,
    };
    const s4 = "4 reconnect storm";
    rows.push({ scenario: s4, metric: `${fmt.int(n)} legacy Thinger devices: connect`, value: `${result.connectS} s`, verdict: "info" });
    rows.push(ok
      ? { scenario: s4, metric: `${fmt.int(n)} legacy Thinger devices back after restart`, value: `${result.backS.toFixed(2)} s (shutdown ${result.shutdownS} s, start ${result.startS} s)`, target: "≤ 10 s", verdict: verdict(result.backS <= 10) }
      : { scenario: s4, metric: `${fmt.int(n)} legacy Thinger devices back after restart`, value: `only ${back} back before the time limit`, target: "≤ 10 s", verdict: "missed" });
    return result;
  } finally {
    await fleet?.close();
    await srv.stop();
    removeDir(dataDir);
  }
}
