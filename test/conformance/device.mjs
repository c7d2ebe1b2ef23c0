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

// Count the timers the SDK holds, to check that close() leaves none behind. Only timers the SDK's own code
// asks for count: the WebSocket under it may keep one of its own for a while after a close (undici's, on
// Node 20 --experimental-websocket and Node 22, refreshes a shared timer until its list drains), which is
// not the SDK's to clear. A timer is the SDK's when the code that called setTimeout/setInterval is in the
// package's dist/ (Node, Bun, Deno) or in the page's SDK bundle (/sdk.js, a browser).
const SDK_CODE = /[\\/]@thingrelay[\\/]device[\\/]dist[\\/]|\/sdk\.js[:?]/;
const sdkAsked = () => {
  const frames = String(new Error().stack).split("\n").filter((l) => /:\d+:\d+\)?\s*$/.test(l));
  const caller = frames.find((l) => !/device\.mjs/.test(l)); // the first frame outside this file's wrappers
  return caller !== undefined && SDK_CODE.test(caller);
};
const live = new Set(); // the SDK's timers still pending
let created = 0; // how many the SDK asked for in all (the check above must have seen some)
const real = { setTimeout: g.setTimeout, clearTimeout: g.clearTimeout, setInterval: g.setInterval, clearInterval: g.clearInterval };
g.setTimeout = function (fn, ms, ...rest) {
  if (!sdkAsked()) return real.setTimeout.call(g, fn, ms, ...rest);
  const h = real.setTimeout.call(g, (...a) => {
    live.delete(h);
    if (typeof fn === "function") fn(...a);
  }, ms, ...rest);
  live.add(h);
  created++;
  return h;
};
g.setInterval = function (fn, ms, ...rest) {
  const h = real.setInterval.call(g, fn, ms, ...rest);
  if (sdkAsked()) {
    live.add(h);
    created++;
  }
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
    say({ closed: d.state, timers: live.size, created: created > 0 });
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
