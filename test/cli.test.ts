import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Device, DeviceError } from "../device-sdk/index.js";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount } from "./helpers/api.js";
import { onceWhere, streamsOpen } from "./helpers/wait.js";
import type { CallView } from "../server/calls/queue.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `thingrelay` from source as its own process, with its own HOME / XDG_CONFIG_HOME. */
function spawnCli(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ["--import=tsx", "cli/bin.ts", ...args], {
    cwd: ROOT,
    // Only what the CLI needs: no inherited THINGRELAY_URL or config from the developer's machine.
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

function collect(child: ChildProcess, input?: string): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(input ?? "");
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

describe("thingrelay CLI (a client of the REST API, run as a process)", function () {
  this.timeout(30_000);
  let srv: TestServer;
  let home: string;
  let env: Record<string, string>;
  let device: Device;
  let relay: unknown = null;

  const cli = (args: string[], o: { input?: string; env?: Record<string, string> } = {}) => collect(spawnCli(args, { ...env, ...o.env }), o.input);
  const credentialsFile = () => join(home, "config", "thingrelay", "credentials.json");
  const stored = async () => JSON.parse(await readFile(credentialsFile(), "utf8")) as { default: string; servers: Record<string, { user: string; refresh_token: string; access_token: string; expires_at: number }> };

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    await newAccount(srv.url, admin.access_token, "alice", "alice-password");
    home = await mkdtemp(join(tmpdir(), "thingrelay-cli-"));
    env = { HOME: home, XDG_CONFIG_HOME: join(home, "config"), THINGRELAY_URL: srv.url };
  });
  after(async () => {
    await device?.close();
    await srv?.close();
    await rm(home, { recursive: true, force: true });
  });

  describe("help and usage errors", () => {
    it("--help lists every command and exits 0", async () => {
      const r = await cli(["--help"]);
      expect(r.code).to.equal(0);
      for (const c of ["login", "users add", "devices list", "devices add", "devices rm", "tokens create", "tokens list", "tokens rm", "call", "watch", "serve"]) {
        expect(r.stdout).to.include(`  ${c}`);
      }
    });

    it("each command has --help (devices rm, tokens create, help watch)", async () => {
      const [rmHelp, create, watchHelp] = await Promise.all([
        cli(["devices", "rm", "--help"]), cli(["tokens", "create", "-h"]), cli(["help", "watch"]),
      ]);
      expect(rmHelp.code).to.equal(0);
      expect(rmHelp.stdout).to.include("Usage: thingrelay devices rm <id>").and.include("--force");
      expect(create.code).to.equal(0);
      expect(create.stdout).to.include("--allow PERMISSION").and.include("--server URL");
      expect(watchHelp.code).to.equal(0);
      expect(watchHelp.stdout).to.include("Usage: thingrelay watch");
    });

    it("docs/cli.md documents every command", async () => {
      const doc = await readFile(join(ROOT, "docs", "cli.md"), "utf8");
      const { COMMANDS } = await import("../cli/main.js");
      for (const c of COMMANDS) expect(doc, c.path.join(" ")).to.include(`| \`${c.path.join(" ")}`);
    });

    it("docs/cli.md names the codes of the CLI's own --json errors, and they are what it prints", async () => {
      const doc = await readFile(join(ROOT, "docs", "cli.md"), "utf8");
      for (const code of ["usage", "not_signed_in", "unreachable", "error"]) expect(doc, code).to.include(`\`${code}\``);
      const [usage, signedOut, unreachable] = await Promise.all([
        cli(["devices", "add", "--json"]), cli(["devices", "list", "--json"]), cli(["login", "-u", "alice", "--json", "--server", "http://127.0.0.1:9"], { input: "x\n" }),
      ]);
      expect(JSON.parse(usage.stderr).error.code).to.equal("usage");
      expect(JSON.parse(signedOut.stderr).error.code).to.equal("not_signed_in");
      expect(JSON.parse(unreachable.stderr).error.code).to.equal("unreachable");
    });

    it("an unknown command, an unknown option or a missing argument exits 2 with a clear message", async () => {
      const [unknown, option, missing] = await Promise.all([cli(["fly"]), cli(["devices", "list", "--colour"]), cli(["devices", "add"])]);
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.include('unknown command "fly"');
      expect(option.code).to.equal(2);
      expect(option.stderr).to.include("Unknown option '--colour'");
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.include("usage: thingrelay devices add <id>");
    });

    it("a command that needs a session exits 4 before signing in", async () => {
      const r = await cli(["devices", "list"]);
      expect(r.code).to.equal(4);
      expect(r.stderr).to.include('not signed in to').and.include('run "thingrelay login"');
    });
  });

  describe("login", () => {
    it("a wrong password exits 4 and stores nothing", async () => {
      const r = await cli(["login", "-u", "alice"], { input: "wrong-password\n" });
      expect(r.code).to.equal(4);
      expect(r.stderr).to.include("invalid username or password");
      const err = await stat(credentialsFile()).catch((e: NodeJS.ErrnoException) => e.code);
      expect(err).to.equal("ENOENT");
    });

    it("an unreachable server exits 1 and says so", async () => {
      const r = await cli(["login", "-u", "alice", "--server", "http://127.0.0.1:9"], { input: "alice-password\n" });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include("cannot reach http://127.0.0.1:9");
    });

    it("keeps the refresh token in $XDG_CONFIG_HOME/thingrelay, file 0600 in a 0700 directory", async () => {
      const r = await cli(["login", "--user", "alice", "--json"], { input: "alice-password\n" });
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.deep.include({ server: srv.url, user: "alice" });
      expect((await stat(credentialsFile())).mode & 0o777).to.equal(0o600);
      expect((await stat(join(home, "config", "thingrelay"))).mode & 0o777).to.equal(0o700);
      const s = await stored();
      expect(s.default).to.equal(srv.url);
      expect(s.servers[srv.url]!.user).to.equal("alice");
      expect(s.servers[srv.url]!.refresh_token).to.be.a("string").with.length.greaterThan(20);
      // The password itself is never stored.
      expect(JSON.stringify(s)).to.not.include("alice-password");
    });

    it("whoami uses the stored session; --server overrides THINGRELAY_URL", async () => {
      const r = await cli(["whoami", "--json", "--server", srv.url], { env: { THINGRELAY_URL: "http://127.0.0.1:9" } });
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.deep.include({ user: "alice", token_kind: "session", admin: false });
    });

    it("without --server or THINGRELAY_URL, uses the server signed in to last", async () => {
      const r = await collect(spawnCli(["whoami"], { HOME: home, XDG_CONFIG_HOME: join(home, "config") }));
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal(`alice on ${srv.url}\n`);
    });

    it("refreshes an expired access token by itself and rotates the stored refresh token", async () => {
      const before = await stored();
      const entry = before.servers[srv.url]!;
      await writeFile(credentialsFile(), JSON.stringify({ ...before, servers: { [srv.url]: { ...entry, expires_at: 0 } } }));
      const r = await cli(["whoami"]);
      expect(r.code, r.stderr).to.equal(0);
      const after = (await stored()).servers[srv.url]!;
      expect(after.refresh_token).to.not.equal(entry.refresh_token);
      // (The access token itself may be byte-identical: same family, same iat second.)
      expect(after.expires_at).to.be.greaterThan(Date.now() + 3_600_000);
      expect((await stat(credentialsFile())).mode & 0o777).to.equal(0o600);
    });

    it("refreshes and retries once when the server refuses the stored access token (401)", async () => {
      const before = await stored();
      const entry = before.servers[srv.url]!;
      await writeFile(credentialsFile(), JSON.stringify({ ...before, servers: { [srv.url]: { ...entry, access_token: "not.a.token" } } }), { mode: 0o600 });
      const r = await cli(["whoami", "--json"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout).user).to.equal("alice");
      expect((await stored()).servers[srv.url]!.refresh_token).to.not.equal(entry.refresh_token);
    });
  });

  describe("users add", () => {
    it("is refused (exit 1, forbidden) for a non-administrator", async () => {
      const r = await cli(["users", "add", "bob"], { input: "bob-password\n" });
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include("forbidden").and.include("HTTP 403");
    });

    it("creates an account as an administrator; a duplicate exits 1 (conflict)", async () => {
      const adminEnv = { XDG_CONFIG_HOME: join(home, "admin-config") };
      expect((await cli(["login", "-u", ADMIN.user], { input: `${ADMIN.password}\n`, env: adminEnv })).code).to.equal(0);
      const r = await cli(["users", "add", "bob", "--json"], { input: "bob-password\n", env: adminEnv });
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout)).to.deep.equal({ username: "bob" });
      expect((await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "password", username: "bob", password: "bob-password" } })).status).to.equal(200);
      const again = await cli(["users", "add", "bob"], { input: "bob-password\n", env: adminEnv });
      expect(again.code).to.equal(1);
      expect(again.stderr).to.include("conflict");
    });
  });

  describe("devices", () => {
    it("devices add registers a device with given or generated credentials", async () => {
      const r = await cli(["devices", "add", "nodemcu", "--credentials", "s3cret", "-d", "living room"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal("Registered device nodemcu.\n");
      const gen = await cli(["devices", "add", "spare", "--json"]);
      expect(gen.code, gen.stderr).to.equal(0);
      const body = JSON.parse(gen.stdout);
      expect(body).to.deep.include({ device: "spare", type: "Generic" });
      expect(body.credentials).to.be.a("string").with.length.greaterThan(20);
      // The generated credentials really are the device's.
      const d = new Device({ server: srv.wsUrl, user: "alice", device: "spare", credentials: body.credentials });
      await d.connect();
      await d.close();
      const bad = await cli(["devices", "add", "bad id"]);
      expect(bad.code).to.equal(1);
      expect(bad.stderr).to.include("invalid_request");
    });

    it("devices list shows state as a table, or the API's JSON", async () => {
      device = new Device({ server: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "s3cret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
      device.output("temperature", () => 21.5);
      device.input("relay", (on: unknown) => {
        relay = on;
      });
      device.io("io", ({ value1, value2 }: { value1: number; value2: number }) => ({ sum: value1 + value2, mult: value1 * value2 }));
      await device.connect();
      const r = await cli(["devices", "list"]);
      expect(r.code, r.stderr).to.equal(0);
      const lines = r.stdout.trim().split("\n");
      expect(lines[0]).to.match(/^DEVICE\s+STATE\s+SINCE\s+DESCRIPTION$/);
      expect(lines.find((l) => l.startsWith("nodemcu"))).to.match(/^nodemcu\s+online\s+\S+\s+living room$/);
      const json = await cli(["devices", "list", "--json"]);
      expect(JSON.parse(json.stdout).map((d: { device: string }) => d.device)).to.deep.equal(["nodemcu", "spare"]);
    });
  });

  describe("call", () => {
    it("GETs an output resource and prints its value", async () => {
      const r = await cli(["call", "nodemcu/temperature"]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.equal("21.5\n");
    });

    it("POSTs JSON input (argument or stdin) to input and io resources", async () => {
      const input = await cli(["call", "nodemcu/relay", "true"]);
      expect(input.code, input.stderr).to.equal(0);
      expect(input.stdout).to.equal("");
      expect(relay).to.equal(true);
      const io = await cli(["call", "nodemcu/io", '{"value1":20,"value2":10}', "--json"]);
      expect(JSON.parse(io.stdout)).to.deep.equal({ out: { sum: 30, mult: 200 } });
      const piped = await cli(["call", "nodemcu/io", "-"], { input: '{"value1":2,"value2":3}' });
      expect(JSON.parse(piped.stdout)).to.deep.equal({ sum: 5, mult: 6 });
    });

    it("call <device>/api prints the resource list as a table (the server's object with --json)", async () => {
      const r = await cli(["call", "nodemcu/api"]);
      expect(r.code, r.stderr).to.equal(0);
      const lines = r.stdout.trimEnd().split("\n");
      expect(lines[0]).to.match(/^RESOURCE\s+KIND$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/))).to.deep.include.members([["temperature", "output"], ["relay", "input"], ["io", "io"]]);
      const json = await cli(["call", "nodemcu/api", "--json"]);
      expect(JSON.parse(json.stdout)).to.deep.include({ temperature: { kind: "output" }, relay: { kind: "input" } });
    });

    it("prints no terminal control sequence a device or a stored field holds: escapes show as \\u001b, newlines and tabs stay", async () => {
      const alice = (await login(srv.url, "alice", "alice-password")).access_token;
      const esc = "\u001b]0;pwned\u0007\u001b[2J\u009b31m\r";
      expect((await api(srv.url, "POST", "/v1/users/alice/devices", { token: alice, json: { device_id: "evil", device_credentials: "evil-secret", device_description: `desc ${esc}` } })).status).to.equal(201);
      const evil = new Device({ server: srv.wsUrl, user: "alice", device: "evil", credentials: "evil-secret", reconnectInitialMs: 60_000, reconnectMaxMs: 60_000 });
      evil.output("banner", () => `line1\n\tline2 ${esc}`);
      evil.run("fail", () => {
        throw new DeviceError(409, `door ${esc}`);
      });
      await evil.connect();
      try {
        const [list, out, fail] = await Promise.all([cli(["devices", "list"]), cli(["call", "evil/banner"]), cli(["call", "evil/fail"])]);
        expect(list.code, list.stderr).to.equal(0);
        expect(out.code, out.stderr).to.equal(0);
        expect(fail.code).to.equal(1);
        for (const text of [list.stdout, out.stdout, fail.stderr]) {
          expect(text, JSON.stringify(text)).to.not.match(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
          expect(text).to.include("\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u000d");
        }
        expect(out.stdout).to.include("line1\n\tline2");
        // --json stays the server's JSON, byte for byte what it answered.
        const json = await cli(["call", "evil/banner", "--json"]);
        expect(JSON.parse(json.stdout).out).to.equal(`line1\n\tline2 ${esc}`);
      } finally {
        await evil.close();
        await api(srv.url, "DELETE", "/v1/users/alice/devices/evil?force=true", { token: alice });
      }
    });

    it("reports relay errors (exit 1 with the code) and bad input (exit 2)", async () => {
      const [missing, offline, notJson, noResource] = await Promise.all([
        cli(["call", "nodemcu/nothing", "--json"]), cli(["call", "spare/temperature"]), cli(["call", "nodemcu/relay", "on"]), cli(["call", "nodemcu"]),
      ]);
      expect(missing.code).to.equal(1);
      expect(JSON.parse(missing.stderr)).to.deep.equal({ error: { code: "resource_not_found", message: 'device has no resource "nothing"', status: 404 } });
      expect(offline.code).to.equal(1);
      expect(offline.stderr).to.include("device_offline");
      expect(notJson.code).to.equal(2);
      expect(notJson.stderr).to.include("input must be JSON");
      expect(noResource.code).to.equal(2);
      expect(noResource.stderr).to.include("expected <device>/<resource>");
    });
  });

  describe("props and queued calls (issue 18)", () => {
    it("props set stores a JSON value; props get lists them or prints one value; bad JSON exits 2", async () => {
      const set = await cli(["props", "set", "spare", "setpoint", '{"target":21.5}']);
      expect(set.code, set.stderr).to.equal(0);
      expect((await api(srv.url, "GET", "/v3/users/alice/devices/spare/properties/setpoint", { token: (await login(srv.url, "alice", "alice-password")).access_token })).body.value).to.deep.equal({ target: 21.5 });
      const [one, all, bad, missing] = await Promise.all([
        cli(["props", "get", "spare", "setpoint"]), cli(["props", "get", "spare", "--json"]), cli(["props", "set", "spare", "x", "on"]), cli(["props", "get", "spare", "nope"]),
      ]);
      expect(JSON.parse(one.stdout)).to.deep.equal({ target: 21.5 });
      expect(JSON.parse(all.stdout).map((p: { property: string }) => p.property)).to.deep.equal(["setpoint"]);
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.include("value must be JSON");
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.include("property_not_found");
    });

    it("call --async queues a call for an offline device; calls lists it, shows it and --cancel cancels it", async () => {
      const queued = await cli(["call", "--async", "--ttl", "600", "spare/relay", "true", "--json"]);
      expect(queued.code, queued.stderr).to.equal(0);
      const call = JSON.parse(queued.stdout) as { id: string; status: string };
      expect(call.status).to.equal("queued");
      const [list, one] = await Promise.all([cli(["calls", "spare"]), cli(["calls", "spare", call.id])]);
      expect(list.code, list.stderr).to.equal(0);
      expect(list.stdout).to.match(/^ID\s+STATUS\s+RESOURCE\s+CREATED\s+DONE/);
      expect(list.stdout).to.include(call.id);
      expect(one.code, one.stderr).to.equal(0);
      expect(one.stdout).to.match(new RegExp(`^${call.id}\\s+queued\\s+relay`));
      const cancel = await cli(["calls", "spare", call.id, "--cancel"]);
      expect(cancel.code, cancel.stderr).to.equal(0);
      expect(cancel.stdout).to.include("cancelled");
      const again = await cli(["calls", "spare", call.id, "--cancel"]);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.include("call_not_queued");
      const ttlWithoutAsync = await cli(["call", "--ttl", "5", "spare/relay", "true"]);
      expect(ttlWithoutAsync.code).to.equal(2);
    });

    it("call --async to an online device runs it; --key replays the first outcome", async function () {
      this.timeout(60_000); // seven CLI processes, one by one: slow on a busy machine
      // The queue's `done` (emitted once the final state is stored) for the first call of io on nodemcu from here on.
      const done = onceWhere<[{ device: string; call: CallView }]>(srv.relay.services.calls, "done", (e) => e.device === "nodemcu" && e.call.resource === "io", 15_000, "queued call done");
      const r = await cli(["call", "--async", "nodemcu/io", '{"value1":1,"value2":2}', "--json"]);
      expect(r.code, r.stderr).to.equal(0);
      const { id } = JSON.parse(r.stdout) as { id: string };
      expect((await done)[0].call.id).to.equal(id);
      const shown = (await cli(["calls", "nodemcu", id, "--json"])).stdout;
      expect(JSON.parse(shown).status).to.equal("succeeded");
      expect(JSON.parse(shown).out).to.deep.equal({ sum: 3, mult: 2 });
      const first = await cli(["call", "--key", "cli-key-1", "nodemcu/io", '{"value1":2,"value2":2}']);
      const again = await cli(["call", "--key", "cli-key-1", "nodemcu/io", '{"value1":2,"value2":2}']);
      expect(again.stdout).to.equal(first.stdout);
      const reused = await cli(["call", "--key", "cli-key-1", "nodemcu/io", '{"value1":9,"value2":2}']);
      expect(reused.code).to.equal(1);
      expect(reused.stderr).to.include("idempotency_key_reused");
    });
  });

  describe("tokens", () => {
    it("device tokens: create prints a working token; list shows it; rm revokes it", async () => {
      const c = await cli(["tokens", "create", "--device", "nodemcu", "--name", "screen", "--resource", "temperature"]);
      expect(c.code, c.stderr).to.equal(0);
      const token = c.stdout.trim();
      expect(c.stderr).to.match(/Created device token for nodemcu "screen" \(id [a-f0-9]{32}\)/);
      const id = /id ([a-f0-9]{32})/.exec(c.stderr)![1]!;
      const call = await api(srv.url, "GET", `/v2/users/alice/devices/nodemcu/temperature?authorization=${token}`);
      expect(call.status).to.equal(200);
      expect(call.body).to.deep.equal({ out: 21.5 });
      const l = await cli(["tokens", "list", "--device", "nodemcu", "--json"]);
      expect(JSON.parse(l.stdout)).to.deep.equal([{ id, name: "screen", token }]);
      const human = await cli(["tokens", "list", "-d", "nodemcu"]);
      expect(human.stdout).to.match(new RegExp(`^ID\\s+NAME\\n${id}\\s+screen\\n$`));
      const r = await cli(["tokens", "rm", id, "--device", "nodemcu"]);
      expect(r.code, r.stderr).to.equal(0);
      expect((await api(srv.url, "GET", `/v2/users/alice/devices/nodemcu/temperature?authorization=${token}`)).status).to.equal(401);
      const again = await cli(["tokens", "rm", id, "--device", "nodemcu"]);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.include("token_not_found");
    });

    it("--allow takes back what tokens list prints: TYPE/ACTION:NAME, and a dashboard action goes under Dashboard", async () => {
      const c = await cli(["tokens", "create", "--name", "dash", "--allow", "ReadDashboards:home", "--allow", "Dashboard/WriteDashboards:home", "--allow", "*/ReadEvents", "--json"]);
      expect(c.code, c.stderr).to.equal(0);
      const t = JSON.parse(c.stdout);
      expect(t.allow).to.deep.equal({ Dashboard: { home: ["ReadDashboards", "WriteDashboards"] }, "*": { "*": ["ReadEvents"] } });
      const l = await cli(["tokens", "list"]);
      const line = l.stdout.split("\n").find((x) => x.startsWith(t.id))!;
      const printed = line.split(/\s{2,}/)[4]!.split(" ");
      expect(printed).to.deep.equal(["Dashboard/ReadDashboards:home", "Dashboard/WriteDashboards:home", "*/ReadEvents:*"]);
      const again = await cli(["tokens", "create", "--name", "dash2", ...printed.flatMap((p) => ["--allow", p]), "--json"]);
      expect(again.code, again.stderr).to.equal(0);
      expect(JSON.parse(again.stdout).allow).to.deep.equal(t.allow);
      const unknownType = await cli(["tokens", "create", "--name", "x", "--allow", "Bucket/ReadBucket:b"]);
      expect(unknownType.code).to.equal(1);
      expect(unknownType.stderr).to.include('"Bucket" is not a resource type');
    });

    it("user access tokens: create with --allow and --expires, list, rm", async () => {
      const c = await cli(["tokens", "create", "--name", "reader", "--allow", "ListDevices", "--allow", "AccessDeviceResources:nodemcu:temperature", "--expires", "30d", "--json"]);
      expect(c.code, c.stderr).to.equal(0);
      const t = JSON.parse(c.stdout);
      // Sent and answered in Thinger's shape (issue 12).
      expect(t.allow).to.deep.equal({ Device: { "*": ["ListDevices"], nodemcu: [{ AccessDeviceResources: ["temperature"] }] } });
      expect(t.deny).to.deep.equal({});
      expect(t.expiration).to.be.closeTo(Date.now() + 30 * 86_400_000, 120_000);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices", { token: t.token })).status).to.equal(200);
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/nodemcu/tokens", { token: t.token })).status).to.equal(403);
      const l = await cli(["tokens", "list"]);
      expect(l.stdout).to.match(new RegExp(`${t.id}\\s+reader\\s+yes\\s+\\S+\\s+ListDevices:\\* AccessDeviceResources:nodemcu:temperature`));
      const thinger = await cli(["tokens", "create", "--name", "door", "--allow", '{"Device":{"nodemcu":["ReadDevice"]}}', "--allow", "ListDevices", "--deny", "*:nodemcu", "--json"]);
      expect(thinger.code, thinger.stderr).to.equal(0);
      expect(JSON.parse(thinger.stdout)).to.deep.include({ allow: { Device: { nodemcu: ["ReadDevice"], "*": ["ListDevices"] } }, deny: { Device: { nodemcu: "*" } } });
      const wrong = await cli(["tokens", "create", "--name", "x", "--allow", '{"Device":{"nodemcu":["ReadDevice","Fly"]}}']);
      expect(wrong.code).to.equal(1);
      expect(wrong.stderr).to.include("allow.Device.nodemcu[1]");
      const bad = await cli(["tokens", "create", "--name", "x", "--expires", "yesterday"]);
      expect(bad.code).to.equal(2);
      const r = await cli(["tokens", "rm", t.id, "--json"]);
      expect(JSON.parse(r.stdout)).to.deep.equal({ id: t.id, deleted: true });
      expect((await api(srv.url, "GET", "/v1/users/alice/devices", { token: t.token })).status).to.equal(401);
    });
  });

  describe("watch (SSE parsed with eventsource-parser)", () => {
    it("watch <device> prints the device's stats events", async () => {
      const r = await cli(["watch", "nodemcu", "--count", "1", "--json"]);
      expect(r.code, r.stderr).to.equal(0);
      const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines).to.have.length(1);
      expect(lines[0].event).to.equal("stats");
      expect(lines[0].data).to.include({ connected: true });
    });

    it("watch <device>/<resource> without --interval says it waits for values the device pushes", async () => {
      const opened = streamsOpen(srv.relay.services.streams, (n) => n > 0, 10_000, "the watch stream to open");
      const watching = collect(spawnCli(["watch", "nodemcu/temperature", "--count", "1"], env));
      await opened;
      void device.stream("temperature");
      const w = await watching;
      expect(w.code, w.stderr).to.equal(0);
      expect(w.stderr).to.include("no --interval: waiting for values the device pushes");
      expect(w.stdout).to.match(/^\d{4}-\d\d-\d\dT\S+Z {2}21\.5\n$/);
    });

    it("watch <device>/<resource> --interval prints sampled values", async () => {
      const r = await cli(["watch", "nodemcu/temperature", "--interval", "0.1", "--count", "2"]);
      expect(r.code, r.stderr).to.equal(0);
      const lines = r.stdout.trim().split("\n");
      expect(lines).to.have.length(2);
      for (const l of lines) expect(l).to.match(/^\d{4}-\d\d-\d\dT\S+Z {2}21\.5$/);
    });

    it("watch (no device) prints account events; devices rm --force closes the session and deletes", async () => {
      const blocked = await cli(["devices", "rm", "nodemcu"]);
      expect(blocked.code).to.equal(1);
      expect(blocked.stderr).to.include("device_connected");
      const open = srv.relay.services.streams.openCount;
      const opened = streamsOpen(srv.relay.services.streams, (n) => n > open, 10_000, "the watch stream to open");
      const watching = collect(spawnCli(["watch", "--count", "1", "--json"], env));
      await opened;
      const removed = await cli(["devices", "rm", "nodemcu", "--force"]);
      expect(removed.code, removed.stderr).to.equal(0);
      expect(removed.stdout).to.equal("Deleted device nodemcu.\n");
      const w = await watching;
      expect(w.code, w.stderr).to.equal(0);
      const ev = JSON.parse(w.stdout.trim());
      expect(ev.event).to.equal("offline");
      expect(ev.data).to.include({ type: "offline", device: "nodemcu" });
      expect((await api(srv.url, "GET", "/v1/users/alice/devices/nodemcu", { token: (await login(srv.url, "alice", "alice-password")).access_token })).status).to.equal(404);
    });

    it("a refused stream exits 1 with the server's error", async () => {
      const r = await cli(["watch", "ghost"]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.include("device_not_found");
    });
  });

  describe("logout", () => {
    it("revokes the refresh token on the server and forgets it", async () => {
      const rt = (await stored()).servers[srv.url]!.refresh_token;
      const r = await cli(["logout"]);
      expect(r.code, r.stderr).to.equal(0);
      expect((await stored()).servers[srv.url]).to.equal(undefined);
      const reuse = await api(srv.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: rt } });
      expect(reuse.status).to.equal(401);
      expect((await cli(["whoami"])).code).to.equal(4);
    });

    it("a session the server revoked, or a logout, leaves the server last signed in to the default: `login` goes back to it", async () => {
      const noUrl = { THINGRELAY_URL: "" };
      expect((await cli(["login", "-u", "alice", "--server", srv.url], { input: "alice-password\n", env: noUrl })).code).to.equal(0);
      // The server revokes the session (every sign-in of alice, as a password change does); the stored access token is spent.
      const s = await stored();
      const family = (JSON.parse(Buffer.from(s.servers[srv.url]!.access_token.split(".")[1]!, "base64url").toString()) as { fam: string }).fam;
      await srv.relay.services.oauth.revokeFamily(family, "test");
      s.servers[srv.url]!.expires_at = 0;
      await writeFile(credentialsFile(), JSON.stringify(s));
      const revoked = await cli(["devices", "list"], { env: noUrl });
      expect(revoked.code).to.equal(4);
      expect(revoked.stderr).to.include(srv.url).and.include('run "thingrelay login"');
      // As the message says: sign in again, with no --server, and it is the same server.
      const whoami = await cli(["whoami"], { env: noUrl });
      expect(whoami.stderr).to.include(`not signed in to ${srv.url}`);
      const again = await cli(["login", "-u", "alice", "--json"], { input: "alice-password\n", env: noUrl });
      expect(again.code, again.stderr).to.equal(0);
      expect(JSON.parse(again.stdout)).to.deep.include({ server: srv.url, user: "alice" });
      expect((await cli(["logout"], { env: noUrl })).code).to.equal(0);
      expect((await cli(["whoami"], { env: noUrl })).stderr).to.include(`not signed in to ${srv.url}`);
    });
  });

  describe("serve", () => {
    it("starts the server in the foreground and stops with exit 0 on SIGTERM", async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-serve-"));
      try {
        const child = spawnCli(["serve", "--port", "0", "--host", "127.0.0.1", "--data-dir", dataDir], {
          ...env, THINGRELAY_PRINT_PORT: "1", THINGRELAY_THINGER_PORT: "0", THINGRELAY_IOTMP_PORT: "0", NODE_ENV: "test", THINGRELAY_PASSWORD_COST: "10", LOG_LEVEL: "warn",
          THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password",
        });
        const done = collect(child);
        const port = await new Promise<number>((resolve, reject) => {
          let out = "";
          child.stdout!.on("data", (d: Buffer) => {
            out += d.toString();
            const m = /THINGRELAY_PORT=(\d+)/.exec(out);
            if (m) resolve(Number(m[1]));
          });
          child.once("close", (code) => reject(new Error(`serve exited with ${code}`)));
        });
        const health = await api(`http://127.0.0.1:${port}`, "GET", "/health");
        expect(health.status).to.equal(200);
        expect(health.body).to.deep.equal({ status: "ok" });
        expect((await stat(join(dataDir, "secret.key"))).isFile()).to.equal(true);
        child.kill("SIGTERM");
        const r = await done;
        expect(r.code, r.stderr).to.equal(0);
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });
});
