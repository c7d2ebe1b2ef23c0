import { expect } from "chai";
import { createServer, type Server } from "node:http";
import { getEventListeners } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import type { AddressInfo } from "node:net";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { run } from "../cli/main.js";
import { CredentialStore, configDir } from "../cli/credentials.js";
import type { CliIo } from "../cli/io.js";

/** The CLI run in this process, with its own config directory and captured output. */
async function cli(args: string[], env: Record<string, string>, o: { input?: string; signal?: AbortSignal } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => (out += d.toString()));
  stderr.on("data", (d: Buffer) => (err += d.toString()));
  const io: CliIo = { stdout, stderr, stdin: Readable.from([o.input ?? ""]), env, ...(o.signal ? { signal: o.signal } : {}) };
  const code = await run(args, io);
  return { code, stdout: out, stderr: err };
}

describe("CLI: retries and reconnects", function () {
  this.timeout(30_000);
  let home: string;
  let env: Record<string, string>;

  before(async () => {
    home = await mkdtemp(join(tmpdir(), "thingrelay-cli-retry-"));
    env = { HOME: home, XDG_CONFIG_HOME: join(home, "config") };
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  describe("a device's own 401", () => {
    let srv: TestServer;
    let device: Device;
    let runs = 0;

    before(async () => {
      srv = await startServer();
      const admin = await login(srv.url, ADMIN.user, ADMIN.password);
      const token = await newAccount(srv.url, admin.access_token, "alice", "alice-password");
      await newDevice(srv.url, token, "alice", "door", "door-secret");
      device = new Device({ server: srv.wsUrl, user: "alice", device: "door", credentials: "door-secret" });
      device.input("unlock", () => {
        runs++;
        throw new DeviceError(401, "wrong PIN");
      });
      await device.connect();
    });
    after(async () => {
      await device?.close();
      await srv?.close();
    });

    it("is not retried: the handler runs once, the refresh token is not rotated, exit 1 (not 4) with device_error", async () => {
      const signIn = await cli(["login", "-u", "alice", "--server", srv.url], env, { input: "alice-password\n" });
      expect(signIn.code, signIn.stderr).to.equal(0);
      const store = new CredentialStore(configDir(env));
      const before = (await store.get(srv.url))!;
      const r = await cli(["call", "door/unlock", "1234", "--server", srv.url, "--json"], env);
      expect(runs).to.equal(1);
      expect(r.code).to.equal(1);
      expect(JSON.parse(r.stderr)).to.deep.equal({ error: { code: "device_error", message: "wrong PIN", status: 401 } });
      expect((await store.get(srv.url))!.refresh_token).to.equal(before.refresh_token);
    });

    it("the server's own 401 (unauthorized) still refreshes and retries once", async () => {
      const store = new CredentialStore(configDir(env));
      const entry = (await store.get(srv.url))!;
      await store.set(srv.url, { ...entry, access_token: "not.a.token" });
      const r = await cli(["whoami", "--server", srv.url, "--json"], env);
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout).user).to.equal("alice");
      expect((await store.get(srv.url))!.refresh_token).to.not.equal(entry.refresh_token);
    });
  });

  describe("watch", () => {
    let fake: Server;
    let url: string;
    let onRequest: (n: number) => void = () => undefined;
    let requests = 0;

    before(async () => {
      // A server whose event stream ends at once every time, asking for a 1 ms reconnection delay.
      fake = createServer((req, res) => {
        requests++;
        res.writeHead(200, { "Content-Type": "text/event-stream" });
        res.end("retry: 1\n\n");
        onRequest(requests);
      });
      await new Promise<void>((resolve) => fake.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
      await new CredentialStore(configDir(env)).set(url, { user: "alice", refresh_token: "r", access_token: "a", expires_at: Date.now() + 3_600_000 });
    });
    after(async () => {
      fake.closeAllConnections();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    });

    it("keeps at most one abort listener on the outer signal across reconnects (no MaxListeners warning)", async () => {
      const ac = new AbortController();
      const counts: number[] = [];
      const warnings: string[] = [];
      const onWarning = (w: Error) => warnings.push(w.name);
      process.on("warning", onWarning);
      onRequest = (n) => {
        counts.push(getEventListeners(ac.signal, "abort").length);
        if (n >= 15) ac.abort();
      };
      try {
        const r = await cli(["watch", "--server", url], env, { signal: ac.signal });
        expect(r.code, r.stderr).to.equal(0);
        expect(r.stderr.match(/reconnecting/g)?.length).to.be.at.least(14);
      } finally {
        process.off("warning", onWarning);
      }
      expect(counts).to.have.length(15);
      // Each request is made with exactly the listener of the attempt in flight.
      expect(counts.every((c) => c === 1), JSON.stringify(counts)).to.equal(true);
      expect(getEventListeners(ac.signal, "abort")).to.have.length(0);
      expect(warnings).to.not.include("MaxListenersExceededWarning");
    });
  });
});
