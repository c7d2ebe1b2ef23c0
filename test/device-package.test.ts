import { expect } from "chai";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { spawnChild } from "./helpers/child.js";
import { packSdk, readJson, run, SDK_DIR, sdkSize } from "./helpers/sdk-package.js";

const DEVICE_SCRIPT = `
import { Device } from "@thingrelay/device";
const [server, user, device, credentials] = process.argv.slice(2);
const d = new Device({ server, user, device, credentials });
d.output("runtime", () => ({ globalWebSocket: typeof WebSocket === "function" }));
d.io("double", (x) => x * 2);
try {
  await d.connect();
} catch (e) {
  process.stderr.write("connect failed: " + e.message + "\\n");
  process.exit(3);
}
process.stdout.write("ready\\n");
// Exits by itself once closed: close() must leave no timer or socket behind.
process.stdin.on("end", () => void d.close());
process.stdin.resume();
`;

/** Issue 17.1, 17.3, 17.4: @thingrelay/device as its own package, installed alone into a fresh project. */
describe("@thingrelay/device package (npm pack → a fresh project)", function () {
  this.timeout(180_000);
  let srv: TestServer;
  let token: string;
  let tarball: string;
  let alone: string; // a project with only the SDK
  let withWs: string; // a project with the SDK and ws
  const temp: string[] = [];

  const project = async (deps: string[]) => {
    const dir = await mkdtemp(join(tmpdir(), "thingrelay-device-project-"));
    temp.push(dir);
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "my-device", version: "1.0.0", type: "module", private: true }));
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...deps], { cwd: dir, maxBuffer: 1 << 24 });
    await writeFile(join(dir, "device.mjs"), DEVICE_SCRIPT);
    return dir;
  };
  const installed = async (dir: string) => {
    const top = (await readdir(join(dir, "node_modules"))).filter((n) => !n.startsWith("."));
    const names: string[] = [];
    for (const n of top) {
      if (n.startsWith("@")) for (const m of await readdir(join(dir, "node_modules", n))) names.push(`${n}/${m}`);
      else names.push(n);
    }
    return names.sort();
  };
  const node = (dir: string, args: string[]) => spawnChild(process.execPath, args, { cwd: dir, env: { PATH: process.env.PATH ?? "" } });
  /** Runs the device script until it serves a call, then ends it and expects it to exit by itself. */
  const serves = async (dir: string, args: string[], device: string, globalWebSocket: boolean) => {
    const p = node(dir, [...args, "device.mjs", srv.wsUrl, "alice", device, `${device}-secret`]);
    try {
      await p.printed((out) => out.includes("ready"), 30_000, "the device to connect");
      expect(p.out(), p.err()).to.include("ready");
      const r = await api(srv.url, "GET", `/v2/users/alice/devices/${device}/runtime`, { token });
      expect(r.status).to.equal(200);
      expect(r.body).to.deep.equal({ out: { globalWebSocket } });
      const d = await api(srv.url, "POST", `/v2/users/alice/devices/${device}/double`, { token, json: { in: 21 } });
      expect(d.body).to.deep.equal({ out: 42 });
    } finally {
      p.child.stdin.end();
    }
    expect(await p.exit, p.err()).to.equal(0);
  };

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    for (const d of ["pkg_flag", "pkg_ws", "pkg_none"]) await newDevice(srv.url, token, "alice", d);
    tarball = await packSdk();
    alone = await project([tarball]);
    withWs = await project([tarball, "ws@^8"]);
  });
  after(async () => {
    await srv?.close();
    for (const d of temp) await rm(d, { recursive: true, force: true });
  });

  it("the tarball holds the built package: ESM + types, the ES2019 bundles and the README, no sources", async () => {
    const { stdout } = await run("tar", ["-tzf", tarball]);
    const files = stdout.trim().split("\n").map((f) => f.replace(/^package\//, "")).sort();
    expect(files).to.include.members(["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/portable.js", "dist/portable.d.ts", "dist/protocol.js", "dist/es2019/device.mjs", "dist/es2019/device.cjs"]);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))).to.deep.equal([]);
    const pkg = await readJson(join(SDK_DIR, "package.json"));
    expect(pkg.name).to.equal("@thingrelay/device");
    expect(pkg.dependencies ?? {}).to.deep.equal({});
    expect(pkg.peerDependenciesMeta).to.deep.equal({ ws: { optional: true } });
  });

  it("a fresh project installs one package; with ws, two", async () => {
    expect(await installed(alone)).to.deep.equal(["@thingrelay/device"]);
    expect(await installed(withWs)).to.deep.equal(["@thingrelay/device", "ws"]);
  });

  it("Node 20 with ws: the Node entry loads ws and serves calls", async () => {
    await serves(withWs, [], "pkg_ws", typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function");
  });

  it("Node 20 --experimental-websocket without ws: the global WebSocket serves calls", async () => {
    await serves(alone, ["--experimental-websocket"], "pkg_flag", true);
  });

  it("no WebSocket at all (Node 20, no ws): connect() rejects saying what to install or pass, no uncaught error", async function () {
    if (typeof (globalThis as { WebSocket?: unknown }).WebSocket === "function") this.skip(); // this Node has one built in
    const p = node(alone, ["device.mjs", srv.wsUrl, "alice", "pkg_none", "pkg_none-secret"]);
    p.child.stdin.end();
    expect(await p.exit, p.err()).to.equal(3);
    expect(p.err()).to.match(/^connect failed: no WebSocket: .*npm install ws.*"WebSocket" or "transport" option/);
    expect(p.err()).to.not.match(/\n\s+at /); // no stack trace: the script caught the rejection
  });

  it("the portable entry with no WebSocket rejects with what to pass (no pending promise)", async () => {
    await writeFile(join(alone, "portable.mjs"), `
import { Device } from "@thingrelay/device/portable";
const d = new Device({ server: "ws://127.0.0.1:9", user: "alice", device: "x", credentials: "y" });
d.connect().then(() => process.exit(1), (e) => { process.stderr.write(e.message + " | state " + d.state); process.exit(3); });
`);
    const p = node(alone, ["portable.mjs"]);
    expect(await p.exit, p.err()).to.equal(3);
    expect(p.err()).to.match(/^no WebSocket: this runtime has no global WebSocket\. Pass the "WebSocket" option .* or a "transport" .* \| state closed$/);
  });

  it("esbuild --platform=neutral bundles it with nothing external, and never sees ws", async () => {
    await writeFile(join(alone, "browser.mjs"), 'import { Device } from "@thingrelay/device";\nglobalThis.device = new Device({ server: "ws://h", user: "u", device: "d", credentials: "c" });\n');
    const esbuild = await import("esbuild");
    const r = await esbuild.build({ entryPoints: [join(alone, "browser.mjs")], bundle: true, platform: "neutral", format: "esm", write: false, metafile: true, logLevel: "silent" });
    expect(r.errors).to.deep.equal([]);
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((i) => i.endsWith("@thingrelay/device/dist/portable.js"))).to.equal(true);
    expect(inputs.filter((i) => /dist\/index\.js$|\/ws\//.test(i))).to.deep.equal([]);
    const code = r.outputFiles[0]!.text;
    expect(code).to.not.match(/\bimport\s*\(|from\s*["']ws["']|require\(/);
  });

  it("the ES2019 build has no syntax newer than ES2019 (no ??=, ?., ?? or import())", async () => {
    const esbuild = await import("esbuild");
    for (const f of ["device.mjs", "device.cjs"]) {
      const code = await readFile(join(alone, "node_modules/@thingrelay/device/dist/es2019", f), "utf8");
      // Lowering to ES2019 changes nothing only if the file holds no newer syntax.
      const format = f.endsWith(".mjs") ? "esm" : "cjs";
      const asIs = await esbuild.transform(code, { target: "esnext", format });
      const lowered = await esbuild.transform(code, { target: "es2019", format });
      expect(lowered.code, f).to.equal(asIs.code);
      expect(code, f).to.not.match(/\?\?=|\?\.[a-zA-Z_$[(]|\bimport\s*\(/);
    }
  });

  it(`is at most 4 KB minified and gzipped (the bench reports the figure)`, async () => {
    const { gzip } = await sdkSize();
    expect(gzip).to.be.at.most(4096);
  });
});
