import { expect } from "chai";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, DEFAULT_LIMITS, loadConfig } from "../server/config.js";
import { ADMIN_PASSWORD_FILE, SECRET_FILE, loadOrCreateSecret, writeAdminPassword } from "../server/secrets.js";
import { runMain, startMain, stopAllMains } from "./helpers/process.js";
import { api, login } from "./helpers/api.js";

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("loadConfig accepted the configuration");
}

const GOOD_SECRET = "x".repeat(32);

describe("config: loadConfig", () => {
  it("defaults: port 8080, host 0.0.0.0, ./data, embedded store, OWASP scrypt cost 17, frozen", () => {
    const c = loadConfig({});
    expect(c).to.deep.include({
      port: 8080, host: "0.0.0.0", dataDir: "./data", mongodbUrl: undefined, natsUrl: undefined, secret: undefined,
      adminUser: undefined, adminPassword: undefined, logLevel: "info", passwordCost: 17, trustProxy: false,
    });
    expect(c.limits).to.deep.equal(DEFAULT_LIMITS);
    expect(Object.isFrozen(c)).to.equal(true);
    expect(Object.isFrozen(c.limits)).to.equal(true);
  });

  it("reads the DESIGN §3 variables", () => {
    const c = loadConfig({
      PORT: "0", HOST: "127.0.0.1", DATA_DIR: "/tmp/x", MONGODB_URL: "mongodb://127.0.0.1:27017/db", NATS_URL: "nats://127.0.0.1:4222",
      THINGRELAY_SECRET: GOOD_SECRET, THINGRELAY_ADMIN_USER: "root_1", THINGRELAY_ADMIN_PASSWORD: "long enough",
    });
    expect(c).to.deep.include({
      port: 0, host: "127.0.0.1", dataDir: "/tmp/x", mongodbUrl: "mongodb://127.0.0.1:27017/db", natsUrl: "nats://127.0.0.1:4222",
      secret: GOOD_SECRET, adminUser: "root_1", adminPassword: "long enough",
    });
  });

  it("reports every bad variable in one ConfigError", () => {
    const err = configError({
      PORT: "http", THINGRELAY_SECRET: "too-short", LOG_LEVEL: "loud", MONGODB_URL: "postgres://x",
      THINGRELAY_ADMIN_USER: "bad name!", THINGRELAY_ADMIN_PASSWORD: "short", THINGRELAY_TRUST_PROXY: "yes",
      THINGRELAY_CALL_TIMEOUT_MS: "-5",
    });
    const expected = [/^PORT /, /^THINGRELAY_SECRET /, /^LOG_LEVEL /, /^MONGODB_URL /, /^THINGRELAY_ADMIN_USER /, /^THINGRELAY_ADMIN_PASSWORD /, /^THINGRELAY_TRUST_PROXY /, /^THINGRELAY_CALL_TIMEOUT_MS /];
    for (const re of expected) expect(err.problems.some((p) => re.test(p)), `${re} in ${JSON.stringify(err.problems)}`).to.equal(true);
    expect(err.problems).to.have.length(expected.length);
    for (const p of err.problems) expect(err.message).to.include(p);
  });

  it("Thinger listeners: default ports, `off` closes one, `0` picks a free port, TLS files both or neither, bad values reported together", () => {
    const d = loadConfig({}).thinger;
    expect(d).to.deep.equal({ legacyPort: 25200, legacyTlsPort: 25202, iotmpPort: 25204, iotmpTlsPort: 25206, tlsCert: undefined, tlsKey: undefined });
    expect(Object.isFrozen(d)).to.equal(true);
    const c = loadConfig({
      THINGRELAY_THINGER_PORT: "off", THINGRELAY_THINGER_TLS_PORT: "0", THINGRELAY_IOTMP_PORT: "1234", THINGRELAY_IOTMP_TLS_PORT: "off",
      THINGRELAY_TLS_CERT: "/etc/cert.pem", THINGRELAY_TLS_KEY: "/etc/key.pem",
    }).thinger;
    expect(c).to.deep.equal({ legacyPort: null, legacyTlsPort: 0, iotmpPort: 1234, iotmpTlsPort: null, tlsCert: "/etc/cert.pem", tlsKey: "/etc/key.pem" });
    const err = configError({ THINGRELAY_THINGER_PORT: "on", THINGRELAY_IOTMP_PORT: "70000", THINGRELAY_IOTMP_TLS_PORT: "-1", THINGRELAY_TLS_CERT: "/etc/cert.pem" });
    expect(err.problems).to.deep.equal([
      'THINGRELAY_THINGER_PORT must be "off" or a port from 0 to 65535 (got "on")',
      'THINGRELAY_IOTMP_PORT must be "off" or a port from 0 to 65535 (got "70000")',
      'THINGRELAY_IOTMP_TLS_PORT must be "off" or a port from 0 to 65535 (got "-1")',
      "THINGRELAY_TLS_CERT and THINGRELAY_TLS_KEY must be set together",
    ]);
  });

  it("THINGRELAY_TRUST_PROXY: false/0, true (one hop), a hop count, or proxy addresses/CIDRs; anything else refused", () => {
    expect(loadConfig({ THINGRELAY_TRUST_PROXY: "false" }).trustProxy).to.equal(false);
    expect(loadConfig({ THINGRELAY_TRUST_PROXY: "0" }).trustProxy).to.equal(false);
    expect(loadConfig({ THINGRELAY_TRUST_PROXY: "true" }).trustProxy).to.deep.equal({ hops: 1 });
    expect(loadConfig({ THINGRELAY_TRUST_PROXY: "3" }).trustProxy).to.deep.equal({ hops: 3 });
    expect(loadConfig({ THINGRELAY_TRUST_PROXY: "10.0.0.1, 192.168.0.0/16,fd00::/8" }).trustProxy).to.deep.equal({ proxies: ["10.0.0.1", "192.168.0.0/16", "fd00::/8"] });
    for (const bad of ["33", "10.0.0.0/33", "10.0.0.1,banana", "::1/129", "1.2.3.4/8/8"]) {
      expect(configError({ THINGRELAY_TRUST_PROXY: bad }).problems[0], bad).to.match(/^THINGRELAY_TRUST_PROXY /);
    }
  });

  it("quotas, pending sockets per address and the metrics token: defaults, variables, every error at once", () => {
    const d = loadConfig({});
    expect(d.limits).to.deep.include({ maxDevicesPerAccount: 1000, maxTokensPerAccount: 1000, maxSessionsPerUser: 100, maxPendingPerAddress: 10, deviceAuthFailuresPerMinute: 20 });
    expect(d.metricsToken).to.equal(undefined);
    const c = loadConfig({
      THINGRELAY_MAX_DEVICES_PER_ACCOUNT: "5", THINGRELAY_MAX_TOKENS_PER_ACCOUNT: "6", THINGRELAY_MAX_SESSIONS_PER_USER: "7",
      THINGRELAY_MAX_PENDING_PER_ADDRESS: "8", THINGRELAY_DEVICE_AUTH_FAILURES: "9", THINGRELAY_METRICS_TOKEN: "0123456789abcdef",
    });
    expect(c.limits).to.deep.include({ maxDevicesPerAccount: 5, maxTokensPerAccount: 6, maxSessionsPerUser: 7, maxPendingPerAddress: 8, deviceAuthFailuresPerMinute: 9 });
    expect(c.metricsToken).to.equal("0123456789abcdef");
    const err = configError({
      THINGRELAY_MAX_DEVICES_PER_ACCOUNT: "0", THINGRELAY_MAX_TOKENS_PER_ACCOUNT: "x", THINGRELAY_MAX_SESSIONS_PER_USER: "-1",
      THINGRELAY_MAX_PENDING_PER_ADDRESS: "1.5", THINGRELAY_METRICS_TOKEN: "short",
    });
    const expected = [/^THINGRELAY_MAX_DEVICES_PER_ACCOUNT /, /^THINGRELAY_MAX_TOKENS_PER_ACCOUNT /, /^THINGRELAY_MAX_SESSIONS_PER_USER /, /^THINGRELAY_MAX_PENDING_PER_ADDRESS /, /^THINGRELAY_METRICS_TOKEN /];
    for (const re of expected) expect(err.problems.some((p) => re.test(p)), `${re} in ${JSON.stringify(err.problems)}`).to.equal(true);
    expect(err.problems).to.have.length(expected.length);
  });

  it("refuses THINGRELAY_SECRET under 32 bytes and accepts exactly 32", () => {
    expect(configError({ THINGRELAY_SECRET: "x".repeat(31) }).problems).to.deep.equal(["THINGRELAY_SECRET must be at least 32 bytes (256 bits)"]);
    expect(loadConfig({ THINGRELAY_SECRET: "x".repeat(32) }).secret).to.equal("x".repeat(32));
  });

  it("refuses NATS_URL without MONGODB_URL (the embedded store cannot be shared)", () => {
    const err = configError({ NATS_URL: "nats://127.0.0.1:4222" });
    expect(err.problems).to.have.length(1);
    expect(err.problems[0]).to.match(/^NATS_URL .*requires MONGODB_URL/);
  });

  it("requires THINGRELAY_ADMIN_USER and THINGRELAY_ADMIN_PASSWORD together", () => {
    expect(configError({ THINGRELAY_ADMIN_USER: "root" }).problems[0]).to.match(/must be set together/);
    expect(configError({ THINGRELAY_ADMIN_PASSWORD: "long enough" }).problems[0]).to.match(/must be set together/);
  });

  it("allows a scrypt cost below the OWASP floor only with NODE_ENV=test", () => {
    expect(configError({ THINGRELAY_PASSWORD_COST: "10" }).problems[0]).to.match(/THINGRELAY_PASSWORD_COST below 17/);
    expect(loadConfig({ THINGRELAY_PASSWORD_COST: "10", NODE_ENV: "test" }).passwordCost).to.equal(10);
    expect(loadConfig({ THINGRELAY_PASSWORD_COST: "18" }).passwordCost).to.equal(18);
    expect(configError({ THINGRELAY_PASSWORD_COST: "9", NODE_ENV: "test" }).problems[0]).to.match(/from 10 to 20/);
  });

  it("rejects ports out of range and non-decimal numbers", () => {
    for (const port of ["65536", "-1", "1e3", "0x50", "80.5"]) {
      expect(configError({ PORT: port }).problems[0], port).to.match(/^PORT must be an integer/);
    }
  });
});

describe("config: secrets in DATA_DIR", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-secret-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("generates a ≥ 256-bit key once, mode 0600, and reuses it", async () => {
    const first = await loadOrCreateSecret(dir, undefined);
    expect(Buffer.from(first, "base64url").length).to.be.at.least(32);
    const st = await stat(join(dir, SECRET_FILE));
    expect(st.mode & 0o777).to.equal(0o600);
    expect((await readFile(join(dir, SECRET_FILE), "utf8")).trim()).to.equal(first);
    expect(await loadOrCreateSecret(dir, undefined)).to.equal(first);
  });

  it("uses THINGRELAY_SECRET when set and writes no key file", async () => {
    expect(await loadOrCreateSecret(dir, GOOD_SECRET)).to.equal(GOOD_SECRET);
    let err: NodeJS.ErrnoException | undefined;
    await stat(join(dir, SECRET_FILE)).catch((e: NodeJS.ErrnoException) => (err = e));
    expect(err?.code).to.equal("ENOENT");
  });

  it("refuses a key file holding fewer than 32 bytes instead of signing with it", async () => {
    await writeFile(join(dir, SECRET_FILE), "short\n", { mode: 0o600 });
    let err: Error | undefined;
    await loadOrCreateSecret(dir, undefined).catch((e: Error) => (err = e));
    expect(err?.message).to.match(/fewer than 32 bytes/);
  });

  it("writes the generated admin password 0600, even over an existing file", async () => {
    await writeFile(join(dir, ADMIN_PASSWORD_FILE), "old", { mode: 0o644 });
    const file = await writeAdminPassword(dir, "admin", "pw-123456");
    expect(file).to.equal(join(dir, ADMIN_PASSWORD_FILE));
    expect(await readFile(file, "utf8")).to.equal("admin:pw-123456\n");
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
  });
});

describe("config: server/main.ts start-up (child process)", function () {
  this.timeout(60_000);
  after(stopAllMains);

  it("bad configuration: exit code 2, every problem on stderr, no stack trace", async () => {
    const r = await runMain({ env: { PORT: "abc", THINGRELAY_SECRET: "short", NATS_URL: "nats://127.0.0.1:4222" } });
    expect(r.code).to.equal(2);
    expect(r.signal).to.equal(null);
    expect(r.stderr).to.match(/^thingrelay: invalid configuration:/);
    expect(r.stderr).to.include('PORT must be an integer from 0 to 65535 (got "abc")');
    expect(r.stderr).to.include("THINGRELAY_SECRET must be at least 32 bytes");
    expect(r.stderr).to.include("NATS_URL (cluster mode) requires MONGODB_URL");
    expect(r.stderr).not.to.match(/\n\s+at /);
    expect(r.stdout).to.equal("");
  });

  it("start-up failure (DATA_DIR is a file): exit ≠ 0, one clear line, no stack trace", async () => {
    const dir = await mkdtemp(join(tmpdir(), "thingrelay-file-"));
    try {
      const file = join(dir, "not-a-dir");
      await writeFile(file, "x");
      const r = await runMain({ dataDir: file });
      expect(r.code).to.not.equal(0);
      expect(r.code).to.not.equal(null);
      expect(r.stderr).to.match(/^thingrelay: failed to start: /);
      expect(r.stderr).not.to.match(/\n\s+at /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("admin from THINGRELAY_ADMIN_USER/PASSWORD exists at start; no password is generated or printed", async () => {
    const p = await startMain({ env: { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" } });
    try {
      const tok = await login(p.url, "root", "root-password-1");
      const me = await api(p.url, "GET", "/v1/me", { token: tok.access_token });
      expect(me.status).to.equal(200);
      expect(me.body).to.deep.include({ user: "root", admin: true, token_kind: "session" });
      expect(p.stdout).not.to.include("created administrator");
      let err: NodeJS.ErrnoException | undefined;
      await stat(join(p.dataDir, ADMIN_PASSWORD_FILE)).catch((e: NodeJS.ErrnoException) => (err = e));
      expect(err?.code).to.equal("ENOENT");
      // SIGINT (Ctrl-C) shuts down as gracefully as SIGTERM.
      expect(await p.kill("SIGINT")).to.deep.equal({ code: 0, signal: null });
      expect(p.logs().map((l) => l.msg).slice(-2)).to.deep.equal(["shutting down", "stopped"]);
    } finally {
      await p.cleanup();
    }
  });

  it("no admin configured and no user: a generated password is printed once, stored 0600, and works; a second start prints nothing", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "thingrelay-boot-"));
    try {
      const first = await startMain({ dataDir });
      let password: string;
      try {
        const m = /created administrator "admin" with password: (\S+)/.exec(first.stdout);
        expect(m, first.stdout).to.not.equal(null);
        password = m![1]!;
        expect(password.length).to.be.at.least(16);
        // Printed exactly once, and never through the logger or on stderr.
        expect(first.stdout.split(password).length - 1).to.equal(1);
        expect(first.stderr).not.to.include(password);
        const file = join(dataDir, ADMIN_PASSWORD_FILE);
        expect(await readFile(file, "utf8")).to.equal(`admin:${password}\n`);
        expect((await stat(file)).mode & 0o777).to.equal(0o600);
        expect((await stat(join(dataDir, SECRET_FILE))).mode & 0o777).to.equal(0o600);
        const tok = await login(first.url, "admin", password);
        const me = await api(first.url, "GET", "/v1/me", { token: tok.access_token });
        expect(me.body).to.deep.include({ user: "admin", admin: true });
        expect(first.stdout).not.to.include(tok.access_token);
      } finally {
        expect(await first.kill("SIGTERM")).to.deep.equal({ code: 0, signal: null });
      }
      const second = await startMain({ dataDir });
      try {
        expect(second.stdout).not.to.include("created administrator");
        expect(second.stdout).not.to.include(password);
        expect((await login(second.url, "admin", password)).access_token).to.be.a("string");
      } finally {
        await second.cleanup();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
