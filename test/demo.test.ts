import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CURL = "/usr/bin/curl";

interface CurlRun {
  status: number;
  body: string;
}

/** Runs one printed command in a shell with the printed exports; returns the HTTP status and body. */
const ran = new Set<string>();

function runCurl(command: string, env: Record<string, string>): Promise<CurlRun> {
  ran.add(command);
  return new Promise((resolve, reject) => {
    // --write-out is appended, not edited in: the command itself runs exactly as printed.
    const child = spawn("/bin/sh", ["-c", `${command} --write-out '\\n%{http_code}'`], { env: { PATH: process.env.PATH ?? "", ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) return reject(new Error(`"${command}" exited ${code}: ${err}`));
      const nl = out.lastIndexOf("\n");
      resolve({ status: Number(out.slice(nl + 1)), body: out.slice(0, nl) });
    });
  });
}

/** Runs a streaming command until its first SSE event of type `event`, then stops it. */
function runStream(command: string, env: Record<string, string>, event: string): Promise<string> {
  ran.add(command);
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", `exec ${command}`], { env: { PATH: process.env.PATH ?? "", ...env } });
    let out = "";
    const timer = setTimeout(() => {
      child.kill("SIGTERM");
      reject(new Error(`no ${event} value from "${command}"; got: ${out}`));
    }, 15_000);
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      // Values are unnamed events (docs/streams.md): an id line, then the data line, no event line.
      const m = /^id: \S+\ndata: (.*)\n/m.exec(out);
      if (m) {
        clearTimeout(timer);
        child.kill("SIGTERM");
        resolve(m[1]!);
      }
    });
    child.once("error", reject);
  });
}

describe("npm run demo (examples/demo.ts): every printed curl command works", function () {
  this.timeout(60_000);
  let demo: ChildProcess;
  let output = "";
  const env: Record<string, string> = {};
  let commands: string[] = [];

  before(async function () {
    if (!existsSync(CURL)) this.skip();
    demo = spawn(process.execPath, ["--import=tsx", "examples/demo.ts"], {
      cwd: ROOT,
      // PORT=0: a free port; the demo prints the one it got.
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    await new Promise<void>((resolve, reject) => {
      demo.stdout!.on("data", (d: Buffer) => {
        output += d.toString();
        if (output.includes("Press Ctrl-C to stop.")) resolve();
      });
      demo.once("exit", (code) => reject(new Error(`demo exited early with ${code}`)));
    });
    for (const line of output.split("\n")) {
      const exp = /^export (\w+)='?([^']*)'?$/.exec(line);
      if (exp) env[exp[1]!] = exp[2]!;
    }
    commands = output.split("\n").filter((l) => l.startsWith("curl "));
  });
  after(async () => {
    if (demo && demo.exitCode === null) {
      const exited = new Promise((r) => demo.once("exit", r));
      demo.kill("SIGTERM");
      await exited;
    }
  });

  it("prints the dashboard and docs URLs, exports with a fresh token, and one command per call kind", async () => {
    expect(env.SERVER).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(output).to.include(`${env.SERVER}/dashboard`).and.include(`${env.SERVER}/docs`);
    const me = await fetch(`${env.SERVER}/v1/me`, { headers: { Authorization: `Bearer ${env.TOKEN}` } });
    expect(me.status).to.equal(200);
    expect(await me.json()).to.include({ user: "demo", token_kind: "session" });
    expect(commands).to.have.length(10);
  });

  it("the output, input, io and run calls answer as the example device does", async () => {
    const find = (re: RegExp) => commands.find((c) => re.test(c) && c.includes("Bearer"))!;
    const temperature = await runCurl(find(/\/temperature$/), env);
    expect(temperature.status).to.equal(200);
    expect(JSON.parse(temperature.body).out).to.be.a("number");
    const relay = await runCurl(find(/\/relay$/), env);
    expect(relay).to.deep.equal({ status: 200, body: "" });
    const io = await runCurl(find(/\/io$/), env);
    expect(io.status).to.equal(200);
    expect(JSON.parse(io.body)).to.deep.equal({ out: { sum: 30, mult: 200 } });
    const reset = await runCurl(find(/\/reset$/), env);
    expect(reset).to.deep.equal({ status: 200, body: "" });
    const api = await runCurl(find(/\/api$/), env);
    expect(api.status).to.equal(200);
    expect(JSON.parse(api.body)).to.deep.include({ temperature: { kind: "output" }, relay: { kind: "input" }, io: { kind: "io" }, reset: { kind: "run" } });
    const devices = await runCurl(find(/\/devices$/), env);
    expect(devices.status).to.equal(200);
    expect(JSON.parse(devices.body)[0]).to.deep.include({ device: "nodemcu", connection: { active: true, ts: JSON.parse(devices.body)[0].connection.ts } });
  });

  it("the device token works in the query string, and a new device token can be created", async () => {
    const query = commands.find((c) => c.includes("temperature?authorization=$DEVICE_TOKEN") && !c.includes("event-stream"))!;
    const r = await runCurl(query, env);
    expect(r.status).to.equal(200);
    expect(JSON.parse(r.body).out).to.be.a("number");
    const created = await runCurl(commands.find((c) => c.endsWith("/tokens"))!, env);
    expect(created.status).to.equal(200);
    expect(JSON.parse(created.body)).to.include({ name: "my screen" }).and.have.keys("id", "name", "token");
  });

  it("the stats and temperature SSE commands stream events", async () => {
    const stats = JSON.parse(await runStream(commands.find((c) => c.includes("/stats?authorization="))!, env, "stats"));
    expect(stats).to.include({ connected: true });
    const data = JSON.parse(await runStream(commands.find((c) => c.includes("interval=1&authorization="))!, env, "data"));
    expect(data.out).to.be.a("number");
  });

  it("ran every printed curl command", () => {
    expect(commands.filter((c) => !ran.has(c))).to.deep.equal([]);
  });

  it("stops on SIGTERM with exit 0 and removes its data directory", async () => {
    const dataDir = /^ {2}data {7}(\S+)/m.exec(output)![1]!;
    expect(existsSync(dataDir)).to.equal(true);
    const exited = new Promise<number | null>((r) => demo.once("exit", (code) => r(code)));
    demo.kill("SIGTERM");
    expect(await exited).to.equal(0);
    expect(existsSync(dataDir)).to.equal(false);
  });
});
