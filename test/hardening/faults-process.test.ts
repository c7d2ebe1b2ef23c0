/**
 * Process faults on a real server child (server/main.ts): SIGKILL under load then restart on the same DATA_DIR
 * (every acknowledged document back, byte for byte), SIGTERM (devices 1001, streams ended, in-flight calls
 * answered, exit 0), and 500 devices reconnecting at once after a forced restart. Each test prints its figures.
 */
import { expect } from "chai";
import { Agent } from "node:http";
import { watch } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Device } from "../../device-sdk/index.js";
import { startMain, stopAllMains, type MainProcess } from "../helpers/process.js";
import { sse } from "../helpers/sse.js";
import { startTcpProxy, type TcpProxy } from "../helpers/tcpproxy.js";
import { faults, tried } from "./figures.js";
import { account, loginAs, postJson, raw } from "./harness.js";
import { hashToken } from "../../server/oauth/service.js";

const ADMIN_ENV = { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1", THINGRELAY_RATE_LIMIT: "1000000" };
type Snapshot = Record<string, Map<string, string>>;

/** Reads the embedded store's files as nedb would: one JSON document per line, later lines win, `$$deleted` removes. */
async function snapshot(dataDir: string): Promise<{ docs: Snapshot; torn: number }> {
  const dir = join(dataDir, "db");
  const docs: Snapshot = {};
  let torn = 0;
  for (const f of (await readdir(dir)).filter((n) => n.endsWith(".db"))) {
    const m = new Map<string, string>();
    for (const line of (await readFile(join(dir, f), "utf8")).split("\n")) {
      if (line.trim() === "") continue;
      let d: Record<string, unknown>;
      try {
        d = JSON.parse(line) as Record<string, unknown>;
      } catch {
        torn++;
        continue;
      }
      if ("$$indexCreated" in d || "$$indexRemoved" in d) continue;
      if (d.$$deleted === true) m.delete(String(d._id));
      else m.set(String(d._id), JSON.stringify(d, Object.keys(d).sort()));
    }
    docs[f.replace(/\.db$/, "")] = m;
  }
  return { docs, torn };
}

/** The first snapshot for which `ready` holds, taken again on every change in the store's directory. */
function snapshotWhen(dataDir: string, ready: (s: { docs: Snapshot; torn: number }) => boolean, timeoutMs = 10_000): Promise<{ docs: Snapshot; torn: number }> {
  return new Promise((resolve, reject) => {
    // Watching starts before the first look, so a write between the two is not missed.
    const watcher = watch(join(dataDir, "db"));
    let done = false;
    let looking = false;
    let again = false;
    const finish = (err: Error | undefined, s?: { docs: Snapshot; torn: number }) => {
      done = true;
      clearTimeout(timer);
      watcher.close();
      if (err) reject(err);
      else resolve(s!);
    };
    const look = async (): Promise<void> => {
      if (looking) {
        again = true;
        return;
      }
      looking = true;
      do {
        again = false;
        const s = await snapshot(dataDir);
        if (done) return;
        if (ready(s)) return finish(undefined, s);
      } while (again);
      looking = false;
    };
    const timer = setTimeout(() => finish(new Error("timed out waiting for the store's files")), timeoutMs);
    watcher.on("change", () => void look().catch((err: Error) => finish(err)));
    watcher.on("error", (err) => finish(err));
    void look().catch((err: Error) => finish(err));
  });
}

function counts(s: Snapshot): Record<string, number> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.size]));
}

function jwtClaims(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
}

describe("hardening: process faults (server child process)", function () {
  this.timeout(120_000);
  after(stopAllMains);

  it("SIGKILL under load, then restart: every acknowledged document identical, issued tokens still valid", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-kill-"));
    let a: MainProcess | undefined;
    let b: MainProcess | undefined;
    const dev = { d: undefined as Device | undefined };
    try {
      a = await startMain({ dataDir, env: ADMIN_ENV });
      const root = (await loginAs(a.port, "root", "root-password-1")).access_token;
      // ---- seed: users, devices, device and user tokens, refresh families, revocations
      const u1 = await account(a.port, root, "u1", ["d1", "d2"]);
      const u2 = await account(a.port, root, "u2", ["d3"]);
      const u1b = await loginAs(a.port, "u1", "u1-password");
      const rot = await raw(a.port, { method: "POST", path: "/oauth/token", body: `grant_type=refresh_token&refresh_token=${u1b.refresh_token}`, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      expect(rot.status).to.equal(200);
      const u1live = rot.body as { access_token: string; refresh_token: string };
      const u2gone = await loginAs(a.port, "u2", "u2-password");
      expect((await raw(a.port, { method: "POST", path: "/oauth/revoke", body: `token=${u2gone.refresh_token}`, headers: { "Content-Type": "application/x-www-form-urlencoded" } })).status).to.equal(200);
      const dt = await postJson(a.port, "/v1/users/u1/devices/d1/tokens", { token_name: "keep", token_resources: ["temp"] }, u1);
      const dtGone = await postJson(a.port, "/v1/users/u1/devices/d1/tokens", { token_name: "gone" }, u1);
      expect((await raw(a.port, { method: "DELETE", path: `/v1/users/u1/devices/d1/tokens/${dtGone.body.id}`, headers: { Authorization: `Bearer ${u1}` } })).status).to.equal(200);
      const ut = await postJson(a.port, "/v1/users/u1/tokens", { name: "lister", allow: [{ action: "ListDevices", target: "*" }] }, u1);
      expect(ut.status).to.be.oneOf([200, 201]);
      dev.d = new Device({ server: a.wsUrl, user: "u1", device: "d1", credentials: "d1-secret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
      dev.d.on("error", () => {});
      dev.d.output("temp", () => 21.5);
      await dev.d.connect();
      // Wait until the connection timestamp is on disk, so the snapshot is the state the crash must preserve:
      // looked for again on every change the store makes to its files.
      const before = await snapshotWhen(dataDir, (s) => /"lastConnectionTs":\d/.test(s.docs.devices?.get("u1/d1") ?? ""));

      // ---- load: 8 workers creating devices, logging in and relaying, until the kill
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      const ackedDevices: string[] = [];
      const sentDevices: string[] = [];
      const ackedLogins: Array<{ access_token: string; refresh_token: string }> = [];
      let relayed = 0;
      let stop = false;
      let n = 0;
      // The kill comes once 60 writes were acknowledged (a worker says so with its 60th).
      let reached!: () => void;
      const enough = new Promise<void>((r) => (reached = r));
      const acknowledged = () => {
        if (ackedDevices.length + ackedLogins.length >= 60) reached();
      };
      const worker = async (w: number) => {
        while (!stop) {
          const k = n++;
          try {
            if (k % 3 === 0) {
              const id = `L${w}_${k}`;
              sentDevices.push(id);
              const body = JSON.stringify({ device_id: id, device_description: "load", device_credentials: "c" });
              const r = await raw(a!.port, { agent, method: "POST", path: "/v1/users/u2/devices", body, headers: { Authorization: `Bearer ${u2}`, "Content-Type": "application/json", "Content-Length": String(body.length) } });
              if (r.status === 201) ackedDevices.push(id);
              acknowledged();
            } else if (k % 3 === 1) {
              const body = "grant_type=password&username=u2&password=u2-password";
              const r = await raw(a!.port, { agent, method: "POST", path: "/oauth/token", body, headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": String(body.length) } });
              if (r.status === 200) ackedLogins.push(r.body);
              acknowledged();
            } else {
              const r = await raw(a!.port, { agent, path: "/v2/users/u1/devices/d1/temp", headers: { Authorization: `Bearer ${u1}` } });
              if (r.status === 200) relayed++;
            }
          } catch {
            return; // the server died under this request: it was in flight, not acknowledged
          }
        }
      };
      const workers = Array.from({ length: 8 }, (_, w) => worker(w));
      await enough;
      const killed = await a.kill("SIGKILL");
      stop = true;
      await Promise.all(workers);
      agent.destroy();
      await dev.d.close();
      expect(killed.signal).to.equal("SIGKILL");
      tried("faults_load", n);

      // ---- restart on the same DATA_DIR
      b = await startMain({ dataDir, env: ADMIN_ENV });
      const after = await snapshot(dataDir);
      let lost = 0;
      const problems: string[] = [];
      for (const [coll, docs] of Object.entries(before.docs)) {
        for (const [id, doc] of docs) {
          if (after.docs[coll]?.get(id) !== doc) {
            lost++;
            problems.push(`${coll}/${id}`);
          }
        }
      }
      for (const id of ackedDevices) if (!after.docs.devices?.has(`u2/${id}`)) (lost++, problems.push(`devices/u2/${id}`));
      for (const l of ackedLogins) {
        if (!after.docs.refresh_families?.has(String(jwtClaims(l.access_token).fam))) (lost++, problems.push("family of an acknowledged login"));
        if (!after.docs.refresh_tokens?.has(hashToken(l.refresh_token))) (lost++, problems.push("refresh token of an acknowledged login"));
      }
      // Documents that appeared: only acknowledged writes or writes in flight at the kill.
      const appeared = [...(after.docs.devices?.keys() ?? [])].filter((k) => !before.docs.devices?.has(k));
      for (const k of appeared) expect(sentDevices.map((id) => `u2/${id}`)).to.include(k);
      expect(problems, problems.join(", ")).to.deep.equal([]);

      // ---- tokens issued before the crash
      const me = async (t: string) => (await raw(b!.port, { path: "/v1/me", headers: { Authorization: `Bearer ${t}` } })).status;
      expect(await me(u1)).to.equal(200);
      expect(await me(u1live.access_token)).to.equal(200);
      expect(await me(u2gone.access_token)).to.equal(401); // revoked family stays revoked
      expect(await me(dt.body.token)).to.equal(200);
      expect(await me(dtGone.body.token)).to.equal(401); // deleted device token stays revoked
      expect(await me(ut.body.token)).to.equal(200);
      let validLoad = 0;
      for (const l of ackedLogins) if ((await me(l.access_token)) === 200) validLoad++;
      expect(validLoad).to.equal(ackedLogins.length);
      const refreshed = await raw(b.port, { method: "POST", path: "/oauth/token", body: `grant_type=refresh_token&refresh_token=${u1live.refresh_token}`, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      expect(refreshed.status).to.equal(200);
      const reused = await raw(b.port, { method: "POST", path: "/oauth/token", body: `grant_type=refresh_token&refresh_token=${u1b.refresh_token}`, headers: { "Content-Type": "application/x-www-form-urlencoded" } });
      expect(reused.status).to.equal(401);

      // A dump of the store yields no usable secret: no token, refresh token, password or device credential in clear.
      const files = await Promise.all((await readdir(join(dataDir, "db"))).map((f) => readFile(join(dataDir, "db", f), "utf8")));
      const dump = files.join("\n");
      const clear = [u1, u2, u1live.access_token, u1live.refresh_token, u1b.refresh_token, u2gone.refresh_token, dt.body.token, ut.body.token,
        "u1-password", "u2-password", "d1-secret", ...ackedLogins.map((l) => l.refresh_token)].filter((x) => dump.includes(x));
      expect(clear, "secrets in the store files").to.deep.equal([]);
      faults(1, 1, lost);
      process.stdout.write(`      figures: SIGKILL under load: faults injected 1, survived 1, requests sent ${n} (relayed ${relayed}), acknowledged writes ${ackedDevices.length + ackedLogins.length}, ` +
        `in flight at kill ${sentDevices.length - ackedDevices.length} device creations (${appeared.length - ackedDevices.length} of them persisted), ` +
        `documents before ${JSON.stringify(counts(before.docs))} after ${JSON.stringify(counts(after.docs))}, torn lines ${after.torn}, tokens still valid ${validLoad + 4}/${validLoad + 4}, data lost ${lost}\n`);
    } finally {
      await dev.d?.close();
      await a?.cleanup();
      await b?.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("SIGTERM: devices closed 1001, SSE streams ended, in-flight calls answered, a black-holed device cut, exit code 0", async () => {
    const main = await startMain({ env: ADMIN_ENV });
    let proxy: TcpProxy | undefined;
    const devices: Device[] = [];
    try {
      const root = (await loginAs(main.port, "root", "root-password-1")).access_token;
      const t = await account(main.port, root, "alice", ["d1", "d2", "d3"]);
      const closeCodes: number[] = [];
      // Each slow call reaching its device runs its handler, which then never answers.
      const reached: Array<Promise<void>> = [];
      const handlerRan: Array<() => void> = [];
      for (let i = 0; i < 2; i++) reached.push(new Promise<void>((r) => handlerRan.push(r)));
      for (const [i, id] of ["d1", "d2"].entries()) {
        const d = new Device({ server: main.wsUrl, user: "alice", device: id, credentials: `${id}-secret`, reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
        d.on("error", () => {});
        d.on("disconnected", ({ code }) => closeCodes.push(code));
        d.output("temp", () => 21.5);
        d.output("slow", () => {
          handlerRan[i]!();
          return new Promise(() => undefined);
        });
        await d.connect();
        devices.push(d);
      }
      // d3 sits behind a proxy that black-holes it just before the signal: it will never answer the close.
      proxy = await startTcpProxy(main.port);
      const d3 = new Device({ server: `ws://127.0.0.1:${proxy.port}`, user: "alice", device: "d3", credentials: "d3-secret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
      d3.on("error", () => {});
      d3.output("temp", () => 1);
      await d3.connect();
      devices.push(d3);
      const stream = await sse(`${main.url}/v1/users/alice/devices/d1/stats`, { Authorization: `Bearer ${t}` });
      expect(stream.status).to.equal(200);
      const inflight = [
        raw(main.port, { path: "/v2/users/alice/devices/d1/slow?timeout=30", headers: { Authorization: `Bearer ${t}` } }),
        raw(main.port, { path: "/v2/users/alice/devices/d2/slow?timeout=30", headers: { Authorization: `Bearer ${t}` } }),
      ];
      // Both calls have reached their devices before the signal.
      await Promise.all(reached);
      const s = await raw(main.port, { path: "/v1/users/alice/sessions", headers: { Authorization: `Bearer ${t}` } });
      expect((s.body as Array<{ inflight: number }>).reduce((n, x) => n + x.inflight, 0)).to.equal(2);
      proxy.blackhole();
      const started = performance.now();
      const exit = await main.kill("SIGTERM", 20_000);
      const ms = performance.now() - started;
      const answers = await Promise.all(inflight);
      await stream.ended;
      expect(exit).to.deep.equal({ code: 0, signal: null });
      expect(closeCodes.sort()).to.deep.equal([1001, 1001]);
      for (const r of answers) {
        expect(r.status).to.equal(502);
        expect(r.body.error.code).to.equal("device_disconnected");
      }
      expect(stream.events.some((e) => e.event === "end")).to.equal(true);
      expect(main.stdout).to.include('"msg":"stopped"');
      faults(1, 1, 0);
      process.stdout.write(`      figures: SIGTERM: faults injected 1, survived 1, devices closed 1001 ${closeCodes.length}/2 (+1 black-holed, cut), SSE ended 1/1, ` +
        `in-flight answered ${answers.length}/2 (502), exit code ${exit.code}, shutdown ${ms.toFixed(0)} ms, data lost 0\n`);
    } finally {
      await Promise.all(devices.map((d) => d.close()));
      await proxy?.close();
      await main.cleanup();
    }
  });

  it("500 devices reconnect at once after a forced restart (SIGKILL) and all come back", async function () {
    this.timeout(180_000);
    const N = 500;
    const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-storm-"));
    let a: MainProcess | undefined;
    let b: MainProcess | undefined;
    let proxy: TcpProxy | undefined;
    const devices: Device[] = [];
    try {
      a = await startMain({ dataDir, env: ADMIN_ENV });
      const root = (await loginAs(a.port, "root", "root-password-1")).access_token;
      const t = await account(a.port, root, "fleet");
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      const ids = Array.from({ length: N }, (_, i) => `s${i}`);
      for (let i = 0; i < N; i += 25) {
        await Promise.all(ids.slice(i, i + 25).map(async (id) => {
          const body = JSON.stringify({ device_id: id, device_credentials: `${id}-secret` });
          const r = await raw(a!.port, { agent, method: "POST", path: "/v1/users/fleet/devices", body, headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json", "Content-Length": String(body.length) } });
          if (r.status !== 201) throw new Error(`create ${id}: ${r.status} ${r.text}`);
        }));
      }
      agent.destroy();
      proxy = await startTcpProxy(a.port);
      const connects = new Map<string, number>();
      // Resolved by the last device to connect a second time (after the restart).
      let allBack!: () => void;
      const everyoneBack = new Promise<void>((r) => (allBack = r));
      let reconnected = 0;
      for (const id of ids) {
        const d = new Device({ server: `ws://127.0.0.1:${proxy.port}`, user: "fleet", device: id, credentials: `${id}-secret`, reconnectInitialMs: 200, reconnectMaxMs: 2000 });
        d.on("error", () => {});
        d.on("connected", () => {
          const c = (connects.get(id) ?? 0) + 1;
          connects.set(id, c);
          if (c === 2 && ++reconnected === N) allBack();
        });
        d.output("temp", () => 1);
        devices.push(d);
      }
      await Promise.all(devices.map((d) => d.connect()));
      expect(connects.size).to.equal(N);

      const killed = await a.kill("SIGKILL");
      expect(killed.signal).to.equal("SIGKILL");
      const restartAt = performance.now();
      b = await startMain({ dataDir, env: ADMIN_ENV });
      proxy.setTarget(b.port);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([everyoneBack, new Promise<void>((r) => (timer = setTimeout(r, 120_000)))]);
      clearTimeout(timer);
      const back = [...connects.values()].filter((c) => c >= 2).length;
      const ms = performance.now() - restartAt;
      const t2 = (await loginAs(b.port, "root", "root-password-1")).access_token;
      void t2;
      const fleet = (await loginAs(b.port, "fleet", "fleet-password")).access_token;
      const sessions = await raw(b.port, { path: "/v1/users/fleet/sessions", headers: { Authorization: `Bearer ${fleet}` } });
      expect(back).to.equal(N);
      expect((sessions.body as unknown[]).length).to.equal(N);
      const call = await raw(b.port, { path: "/v2/users/fleet/devices/s499/temp", headers: { Authorization: `Bearer ${fleet}` } });
      expect(call.body).to.deep.equal({ out: 1 });
      tried("reconnect_storm", N);
      faults(1, 1, 0);
      process.stdout.write(`      figures: reconnect storm after SIGKILL: devices ${N}, back ${back}/${N} ${ms.toFixed(0)} ms after the restart began (server start included), sessions listed ${(sessions.body as unknown[]).length}\n`);
    } finally {
      await Promise.all(devices.map((d) => d.close()));
      await proxy?.close();
      await a?.cleanup();
      await b?.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
