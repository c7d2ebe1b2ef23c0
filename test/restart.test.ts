/**
 * Persistence across a crash: a real server process (server/main.ts) is SIGKILLed after writing users,
 * devices, device and user tokens, refresh families and a revocation, then restarted on the same DATA_DIR with
 * no THINGRELAY_SECRET. Everything must be there, and tokens issued before the crash must still verify because
 * the generated key persists in DATA_DIR/secret.key (0600). Ends with a graceful SIGTERM.
 */
import { expect } from "chai";
import { cp, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { startMain, stopAllMains, type MainProcess } from "./helpers/process.js";
import { api, login } from "./helpers/api.js";
import { openNedbStore } from "../server/store/nedb.js";
import { Repositories } from "../server/store/repos.js";
import { SECRET_FILE } from "../server/secrets.js";

const ADMIN_ENV = { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" };

/** A bare device session over `ws`: resolves once the server accepted it. */
function connectDevice(wsUrl: string, user: string, device: string, credentials: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}/v1/connect`);
    const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
    ws.once("error", reject);
    ws.once("open", () => ws.send(JSON.stringify({ type: "connect", user, device, credentials })));
    ws.once("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string };
      if (frame.type === "connected") resolve({ ws, closed });
      else reject(new Error(`device refused: ${String(data)}`));
    });
    void closed.then((code) => reject(new Error(`device socket closed with ${code} before connecting`)));
  });
}

describe("restart: data survives SIGKILL (child process)", function () {
  this.timeout(60_000);

  let dataDir: string;
  let first: MainProcess | undefined;
  let second: MainProcess | undefined;

  // Issued before the crash, checked after it.
  let rootAccess: string;
  let sessionA: { access_token: string; refresh_token: string };
  let rotatedOutA: string;
  let sessionB: { access_token: string; refresh_token: string };
  let deviceToken: { id: string; token: string };
  let userToken: { id: string; token: string };
  let secretBefore: string;
  let devicesBefore: unknown;
  let deviceTokensBefore: unknown;
  let userTokensBefore: unknown;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "thingrelay-restart-"));
    first = await startMain({ dataDir, env: ADMIN_ENV });
    const url = first.url;
    rootAccess = (await login(url, "root", "root-password-1")).access_token;
    expect((await api(url, "POST", "/v1/users", { token: rootAccess, json: { username: "alice", password: "alice-password" } })).status).to.equal(201);
    const a0 = await login(url, "alice", "alice-password");
    rotatedOutA = a0.refresh_token;
    const rotated = await api(url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: a0.refresh_token } });
    expect(rotated.status).to.equal(200);
    sessionA = rotated.body;
    sessionB = await login(url, "alice", "alice-password");
    expect((await api(url, "POST", "/oauth/revoke", { form: { token: sessionB.refresh_token } })).status).to.equal(200);

    const t = sessionA.access_token;
    expect((await api(url, "POST", "/v1/users/alice/devices", { token: t, json: { device_id: "d1", device_description: "kitchen", device_credentials: "d1-secret" } })).status).to.equal(201);
    const dt = await api(url, "POST", "/v1/users/alice/devices/d1/tokens", { token: t, json: { token_name: "dash", token_resources: ["temperature"] } });
    expect(dt.status, dt.text).to.be.oneOf([200, 201]);
    deviceToken = dt.body;
    const ut = await api(url, "POST", "/v1/users/alice/tokens", { token: t, json: { name: "lister", allow: [{ action: "ListDevices", target: "*" }] } });
    expect(ut.status, ut.text).to.be.oneOf([200, 201]);
    userToken = ut.body;

    devicesBefore = (await api(url, "GET", "/v1/users/alice/devices", { token: t })).body;
    deviceTokensBefore = (await api(url, "GET", "/v1/users/alice/devices/d1/tokens", { token: t })).body;
    userTokensBefore = (await api(url, "GET", "/v1/users/alice/tokens", { token: t })).body;
    secretBefore = await readFile(join(dataDir, SECRET_FILE), "utf8");

    // No graceful anything: the process dies between two instructions.
    expect(await first.kill("SIGKILL")).to.deep.equal({ code: null, signal: "SIGKILL" });
  });

  after(async () => {
    await first?.cleanup();
    await second?.cleanup();
    await stopAllMains();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("the store files hold every document written before the SIGKILL", async () => {
    // Read a copy: opening nedb compacts its files, and the restart below must see the crash state as it is.
    const copy = await mkdtemp(join(tmpdir(), "thingrelay-crashcopy-"));
    try {
      await cp(join(dataDir, "db"), copy, { recursive: true });
      const store = await openNedbStore(copy);
      try {
        const repos = new Repositories(store);
        expect((await repos.users.find({}, { sort: { _id: 1 } })).map((u) => [u._id, u.admin])).to.deep.equal([["alice", false], ["root", true]]);
        expect(await repos.devices.findOne({ _id: "alice/d1" })).to.deep.include({ user: "alice", device: "d1", description: "kitchen" });
        expect((await repos.deviceTokens.find({})).map((d) => [d._id, d.device, d.resources])).to.deep.equal([[deviceToken.id, "d1", ["temperature"]]]);
        expect((await repos.userTokens.find({})).map((d) => [d._id, d.name])).to.deep.equal([[userToken.id, "lister"]]);
        const fams = await repos.families.find({ user: "alice" });
        expect(fams.map((f) => f.revoked).sort()).to.deep.equal([false, true]);
        // Session A's rotated-out and live tokens; session B's were deleted with its revocation (issue 20).
        expect(await repos.refreshTokens.count({ user: "alice" })).to.equal(2);
        expect(await repos.refreshTokens.count({ user: "alice", used: true })).to.equal(1);
      } finally {
        await store.close();
      }
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  describe("after restarting on the same DATA_DIR", () => {
    before(async () => {
      second = await startMain({ dataDir, env: ADMIN_ENV });
    });

    it("the generated key is the same file, mode 0600", async () => {
      expect(await readFile(join(dataDir, SECRET_FILE), "utf8")).to.equal(secretBefore);
      expect((await stat(join(dataDir, SECRET_FILE))).mode & 0o777).to.equal(0o600);
      expect(Buffer.from(secretBefore.trim(), "base64url").length).to.be.at.least(32);
    });

    it("access tokens issued before the crash still verify", async () => {
      const a = await api(second!.url, "GET", "/v1/me", { token: sessionA.access_token });
      expect(a.status).to.equal(200);
      expect(a.body).to.deep.include({ user: "alice", token_kind: "session" });
      const r = await api(second!.url, "GET", "/v1/me", { token: rootAccess });
      expect(r.body).to.deep.include({ user: "root", admin: true });
    });

    it("devices, device tokens and user tokens are listed exactly as before", async () => {
      const t = sessionA.access_token;
      expect((await api(second!.url, "GET", "/v1/users/alice/devices", { token: t })).body).to.deep.equal(devicesBefore);
      expect((await api(second!.url, "GET", "/v1/users/alice/devices/d1/tokens", { token: t })).body).to.deep.equal(deviceTokensBefore);
      expect((await api(second!.url, "GET", "/v1/users/alice/tokens", { token: t })).body).to.deep.equal(userTokensBefore);
    });

    it("the device token and the user token still work", async () => {
      const stats = await api(second!.url, "GET", "/v1/users/alice/devices/d1/stats", { token: deviceToken.token });
      expect(stats.status, stats.text).to.equal(200);
      expect(stats.body.connected).to.equal(false);
      const list = await api(second!.url, "GET", "/v1/users/alice/devices", { token: userToken.token });
      expect(list.status, list.text).to.equal(200);
      expect(list.body.map((d: { device: string }) => d.device)).to.deep.equal(["d1"]);
    });

    it("the revocation made before the crash holds: session B's tokens answer 401", async () => {
      const me = await api(second!.url, "GET", "/v1/me", { token: sessionB.access_token });
      expect(me.status).to.equal(401);
      expect(me.body.error.code).to.equal("unauthorized");
      const r = await api(second!.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: sessionB.refresh_token } });
      expect(r.status).to.equal(401);
      expect(r.body.error).to.deep.equal({ code: "invalid_grant", message: "invalid refresh token" });
    });

    it("passwords and device credentials still check (the credential pepper comes from the persisted key)", async () => {
      expect((await login(second!.url, "alice", "alice-password")).access_token).to.be.a("string");
      const { ws } = await connectDevice(second!.wsUrl, "alice", "d1", "d1-secret");
      ws.terminate();
      await expectRefused(second!.wsUrl, "alice", "d1", "wrong-secret");
    });

    it("the latest refresh token of a live family rotates; the one rotated out before the crash counts as reuse", async () => {
      const ok = await api(second!.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: sessionA.refresh_token } });
      expect(ok.status).to.equal(200);
      const reuse = await api(second!.url, "POST", "/oauth/token", { form: { grant_type: "refresh_token", refresh_token: rotatedOutA } });
      expect(reuse.status).to.equal(401);
      expect(reuse.body.error).to.deep.equal({ code: "invalid_grant", message: "invalid refresh token" });
      expect((await api(second!.url, "GET", "/v1/me", { token: ok.body.access_token })).status).to.equal(401);
    });

    it("SIGSTOP then SIGCONT: a request sent while the process is frozen is answered once it resumes", async () => {
      second!.signal("SIGSTOP");
      const pending = api(second!.url, "GET", "/v1/me", { token: rootAccess });
      second!.signal("SIGCONT");
      const r = await pending;
      expect(r.status).to.equal(200);
      expect(r.body.user).to.equal("root");
    });

    it("SIGTERM shuts down gracefully: device sessions closed with 1001, exit code 0", async () => {
      const { closed } = await connectDevice(second!.wsUrl, "alice", "d1", "d1-secret");
      const stopping = second!.waitForOutput(/"msg":"shutting down"/);
      const exit = await second!.kill("SIGTERM");
      expect(exit).to.deep.equal({ code: 0, signal: null });
      expect((await stopping)[0]).to.equal('"msg":"shutting down"');
      expect(await closed).to.equal(1001);
      const msgs = second!.logs().map((l) => l.msg);
      expect(msgs).to.include("shutting down");
      expect(msgs[msgs.length - 1]).to.equal("stopped");
      expect(second!.stderr).to.equal("");
    });
  });
});

async function expectRefused(wsUrl: string, user: string, device: string, credentials: string): Promise<void> {
  let err: Error | undefined;
  try {
    const { ws } = await connectDevice(wsUrl, user, device, credentials);
    ws.terminate();
  } catch (e) {
    err = e as Error;
  }
  expect(err, "a wrong secret must not connect").to.be.instanceOf(Error);
}
