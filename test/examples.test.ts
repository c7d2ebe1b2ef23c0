import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

describe("examples/device.ts (Thinger's documented resources) run as its own process", () => {
  let srv: TestServer;
  let token: string;
  let child: ChildProcess;

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "nodemcu", "s3cret");
    child = spawn(process.execPath, ["--import=tsx", "examples/device.ts"], {
      cwd: ROOT,
      env: { ...process.env, THINGRELAY_SERVER: srv.wsUrl, THINGRELAY_USER: "alice", THINGRELAY_DEVICE: "nodemcu", THINGRELAY_CREDENTIALS: "s3cret" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        if (out.includes("example device connected")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`example exited early with ${code}`)));
    });
  });
  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    await srv?.close();
  });

  const v2 = (r: string) => `/v2/users/alice/devices/nodemcu/${r}`;

  it("temperature and location are outputs", async () => {
    const t = await api(srv.url, "GET", v2("temperature"), { token });
    expect(t.status).to.equal(200);
    expect(t.body.out).to.be.a("number");
    const l = await api(srv.url, "GET", v2("location"), { token });
    expect(l.body).to.deep.equal({ out: { lat: 41.6488, lon: -0.8891 } });
  });

  it("relay, rgb and command are inputs that validate their input", async () => {
    expect((await api(srv.url, "POST", v2("relay"), { token, json: { in: true } })).status).to.equal(200);
    expect((await api(srv.url, "POST", v2("rgb"), { token, json: { in: { r: 255, g: 128, b: 0 } } })).status).to.equal(200);
    expect((await api(srv.url, "POST", v2("command"), { token, json: { in: "blink" } })).status).to.equal(200);
    const bad = await api(srv.url, "POST", v2("relay"), { token, json: { in: "yes" } });
    expect(bad.status).to.equal(400);
    expect(bad.body.error).to.deep.equal({ code: "device_error", message: "relay expects true or false" });
  });

  it("io answers sum and mult, reset runs", async () => {
    const io = await api(srv.url, "POST", v2("io"), { token, json: { value1: 20, value2: 10 } });
    expect(io.body).to.deep.equal({ out: { sum: 30, mult: 200 } });
    expect((await api(srv.url, "GET", v2("reset"), { token })).status).to.equal(200);
  });

  it("exits 0 on SIGTERM after closing its session", async () => {
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).to.equal(0);
  });
});
