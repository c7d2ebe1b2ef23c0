import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { EventSourceMessage } from "eventsource-parser";
import { Device } from "../device-sdk/index.js";
import { cacheKey } from "../server/auth/authenticator.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { once } from "./helpers/wait.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { faultyStore, type StoreMode } from "./hardening/harness.js";

const json = (e: EventSourceMessage) => JSON.parse(e.data);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Runs `thingrelay` from source as its own process; resolves with its exit code and output. */
function runCli(args: string[], env: Record<string, string>, input = ""): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import=tsx", "cli/bin.ts", ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin.end(input);
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/**
 * Issue 13.3: a token re-check that cannot reach the store is not a revocation. Before, every open stream
 * whose re-check hit the store while it was down ended with `token_revoked`, and clients (the CLI, EventSource
 * after its reconnect got 401 … or not) gave up for good.
 */
describe("streams: a store outage during a token re-check", function () {
  this.timeout(30_000);
  let srv: TestServer;
  let ctl: { set(mode: StoreMode): void };
  let token: string;
  let device: Device | undefined;
  /** The heartbeats run on it: the test lets each one pass by advancing it. */
  const clock = new FakeClock();
  const HEARTBEAT_MS = 15_000;
  const RECHECK_FAILED = "stream token re-check failed; the stream stays open";

  before(async () => {
    srv = await startServer({ timers: clock, wrapStore: (st) => (ctl = faultyStore(st)).store });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "olga");
    await newDevice(srv.url, token, "olga", "meter", "meter-secret");
  });
  afterEach(async () => {
    ctl.set("ok");
    closeAllSse();
    await device?.close();
    device = undefined;
  });
  after(async () => {
    await srv?.close();
  });

  for (const mode of ["unavailable", "broken"] as const) {
    it(`keeps the stream open when the store is ${mode}, and it carries events again once the store is back`, async () => {
      const c = await sse(`${srv.url}/v1/users/olga/events?authorization=${token}`);
      expect(c.status).to.equal(200);
      const failed = srv.logged(RECHECK_FAILED);
      ctl.set(mode);
      // What a revocation elsewhere in the cluster does (the cache entry goes): the stream re-checks through the store.
      srv.relay.services.authenticator.cache.invalidateLocal(cacheKey.user("olga"));
      await failed;
      // The heartbeat re-checks too: let two pass while the store is still down (each re-check fails again).
      for (let i = 0; i < 2; i++) {
        // advance(0) first lets the failed check settle (promise callbacks only): a heartbeat during a check in
        // flight joins that check instead of starting its own.
        await clock.advance(0);
        const again = srv.logged(RECHECK_FAILED);
        await clock.advance(HEARTBEAT_MS);
        expect((await c.comment((x) => x.trim() === "heartbeat")).trim()).to.equal("heartbeat");
        await again;
      }
      ctl.set("ok");
      device = new Device({ server: srv.wsUrl, user: "olga", device: "meter", credentials: "meter-secret", reconnectInitialMs: 50 });
      await device.connect();
      const online = await c.next();
      expect(json(online)).to.include({ type: "online", device: "meter" });
      expect(c.events.filter((e) => e.event === "end"), "no end event").to.deep.equal([]);
      expect(srv.relay.services.streams.openCount).to.equal(1);
    });
  }

  it("thingrelay watch keeps watching through the outage and never reports the session revoked", async () => {
    const home = await mkdtemp(join(tmpdir(), "thingrelay-cli-"));
    try {
      const env = { HOME: home, XDG_CONFIG_HOME: join(home, "config"), THINGRELAY_URL: srv.url };
      const signedIn = await runCli(["login", "-u", "olga"], env, "olga-password\n");
      expect(signedIn.code, signedIn.stderr).to.equal(0);
      const opened = once(srv.relay.services.streams, "opened", 10_000);
      const watching = runCli(["watch", "--count", "1", "--json"], env);
      await opened;
      const failed = srv.logged(RECHECK_FAILED);
      ctl.set("unavailable");
      srv.relay.services.authenticator.cache.invalidateLocal(cacheKey.user("olga"));
      await failed;
      ctl.set("ok");
      device = new Device({ server: srv.wsUrl, user: "olga", device: "meter", credentials: "meter-secret", reconnectInitialMs: 50 });
      await device.connect();
      const w = await watching;
      expect(w.code, w.stderr).to.equal(0);
      expect(JSON.parse(w.stdout.trim()).data).to.include({ type: "online", device: "meter" });
      expect(w.stderr).to.not.match(/revoked/);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it("still ends the stream as token_revoked when the store answers that the token is gone", async () => {
    const session = await login(srv.url, "olga", "olga-password");
    const c = await sse(`${srv.url}/v1/users/olga/events?authorization=${session.access_token}`);
    expect(c.status).to.equal(200);
    const del = await fetch(`${srv.url}/oauth/revoke`, { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body: `token=${session.refresh_token}` });
    expect(del.status).to.equal(200);
    expect(json(await c.next((e) => e.event === "end"))).to.deep.equal({ reason: "token_revoked" });
  });
});
