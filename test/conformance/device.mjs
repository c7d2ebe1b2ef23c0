// The conformance device (issue 17.5): one script, unchanged, on every runtime the SDK supports — Node
// (with `ws` or a global WebSocket), Bun, Deno, browsers. test/conformance.test.ts runs it against a real
// server and drives it over REST. It imports the SDK as a device project does ("@thingrelay/device",
// installed from the packed tarball), or, in a browser, takes the bundled SDK from globalThis.THINGRELAY_SDK.
//
// Arguments: [sdk, server, user, device, credentials] from process.argv (Node, Bun), Deno.args, or
// globalThis.CONFORMANCE (browser). It reports JSON lines through console.log.
const g = globalThis;
const args = g.Deno ? g.Deno.args : g.process && g.process.argv ? g.process.argv.slice(2) : g.CONFORMANCE;
const [sdk, server, user, device, credentials] = args;
const say = (o) => console.log(JSON.stringify(o));
const runtime = g.Deno ? "deno" : g.Bun ? "bun" : g.process && g.process.versions && g.process.versions.node ? "node" : "browser";

// Count the timers the SDK (and the WebSocket it uses) holds, to check that close() leaves none behind.
const live = new Set();
const real = { setTimeout: g.setTimeout, clearTimeout: g.clearTimeout, setInterval: g.setInterval, clearInterval: g.clearInterval };
g.setTimeout = function (fn, ms, ...rest) {
  const h = real.setTimeout.call(g, (...a) => {
    live.delete(h);
    if (typeof fn === "function") fn(...a);
  }, ms, ...rest);
  live.add(h);
  return h;
};
g.setInterval = function (fn, ms, ...rest) {
  const h = real.setInterval.call(g, fn, ms, ...rest);
  live.add(h);
  return h;
};
g.clearTimeout = function (h) {
  live.delete(h);
  return real.clearTimeout.call(g, h);
};
g.clearInterval = function (h) {
  live.delete(h);
  return real.clearInterval.call(g, h);
};

const { Device, DeviceError } = g.THINGRELAY_SDK || (await import(sdk));
const d = new Device({ server, user, device, credentials, reconnectInitialMs: 100, reconnectMaxMs: 500, connectTimeoutMs: 600000 });
const state = { relay: false, resets: 0 };
let counter = 0;
let pushed = 0;
d.output("temperature", () => 21.5);
// Which file of the package this runtime's export conditions picked (a browser gets a bundle).
const entry = g.THINGRELAY_SDK ? "bundle" : import.meta.resolve(sdk).split("/").slice(-2).join("/");
d.output("runtime", () => ({ runtime, entry, globalWebSocket: typeof g.WebSocket === "function" }));
d.input("relay", (on) => {
  if (typeof on !== "boolean") throw new DeviceError(400, "relay expects true or false");
  state.relay = on;
});
d.io("sum", (x) => ({ sum: x.a + x.b }));
d.run("reset", () => {
  state.resets++;
});
d.output("state", () => state);
d.output("counter", () => ++counter); // sampled by the server's stream frames
d.output("pushed", () => pushed);
d.run("push", () => {
  pushed++;
  return d.stream("pushed"); // pushed by the device itself
});
d.output("slow", async () => {
  await new Promise((r) => real.setTimeout.call(g, r, 20));
  return "late";
});
d.run("finish", () => {
  real.setTimeout.call(g, async () => {
    await d.close();
    say({ closed: d.state, timers: live.size });
  }, 0);
});
let connections = 0;
d.on("connected", () => say({ connected: ++connections }));
d.on("disconnected", (e) => say({ disconnected: e.code }));
d.on("error", (e) => say({ error: e.message }));
try {
  await d.connect();
} catch (e) {
  say({ failed: String(e && e.message) });
}
