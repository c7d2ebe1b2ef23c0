/**
 * Example device exposing the resources of Thinger's documentation: `location` and `temperature`
 * (output), `relay`, `rgb`, `command` (input), `io` (input/output: value1/value2 → sum/mult), `reset` (run).
 *
 *   THINGRELAY_SERVER=ws://localhost:8080 THINGRELAY_USER=alice THINGRELAY_DEVICE=nodemcu \
 *   THINGRELAY_CREDENTIALS=s3cret npm run example:device
 */
import { Device, DeviceError } from "../device-sdk/index.js";

export interface ExampleState {
  relay: boolean;
  rgb: { r: number; g: number; b: number };
  lastCommand: string | null;
  resets: number;
}

export interface ExampleOptions {
  server: string;
  user: string;
  device: string;
  credentials: string;
  /** Temperature source; defaults to a slow sine wave around 21 °C. */
  temperature?: () => number;
}

export function createExampleDevice(o: ExampleOptions): { device: Device; state: ExampleState } {
  const state: ExampleState = { relay: false, rgb: { r: 0, g: 0, b: 0 }, lastCommand: null, resets: 0 };
  const device = new Device({ server: o.server, user: o.user, device: o.device, credentials: o.credentials });
  const temperature = o.temperature ?? (() => Math.round((21 + 2 * Math.sin(Date.now() / 60_000)) * 10) / 10);

  device.output("temperature", temperature);
  device.output("location", () => ({ lat: 41.6488, lon: -0.8891 }));
  device.input("relay", (on: unknown) => {
    if (typeof on !== "boolean") throw new DeviceError(400, "relay expects true or false");
    state.relay = on;
  }, { state: () => state.relay }); // GET …/relay/api → {"kind":"input","in":<state>}
  device.input("rgb", (v: unknown) => {
    const c = v as { r?: unknown; g?: unknown; b?: unknown } | null;
    const ok = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 255;
    if (!c || !ok(c.r) || !ok(c.g) || !ok(c.b)) throw new DeviceError(400, "rgb expects {r,g,b} with integers 0-255");
    state.rgb = { r: c.r as number, g: c.g as number, b: c.b as number };
  });
  device.input("command", (cmd: unknown) => {
    if (typeof cmd !== "string") throw new DeviceError(400, "command expects a string");
    state.lastCommand = cmd;
  });
  device.io("io", (v: unknown) => {
    const { value1, value2 } = (v ?? {}) as { value1?: unknown; value2?: unknown };
    if (typeof value1 !== "number" || typeof value2 !== "number") throw new DeviceError(400, "io expects {value1, value2} numbers");
    return { sum: value1 + value2, mult: value1 * value2 };
  });
  device.run("reset", () => {
    state.resets++;
  });
  return { device, state };
}

// Run directly: configuration from the environment (this is an example program, not the server).
const isMain = import.meta.url === `file://${process.argv[1]}`;
if (isMain) {
  const env = process.env;
  const { device } = createExampleDevice({
    server: env.THINGRELAY_SERVER ?? "ws://localhost:8080",
    user: env.THINGRELAY_USER ?? "alice",
    device: env.THINGRELAY_DEVICE ?? "nodemcu",
    credentials: env.THINGRELAY_CREDENTIALS ?? "s3cret",
  });
  const server = env.THINGRELAY_SERVER ?? "ws://localhost:8080";
  process.stdout.write(`example device connecting to ${server}\n`);
  let stopping = false;
  // Say so while the server cannot be reached, instead of retrying silently.
  setInterval(() => {
    if (device.state === "connecting") process.stdout.write(`example device: still trying to reach ${server}\n`);
  }, 5_000).unref();
  device.on("state", (s) => {
    // The SDK stops for good after a fatal close (replaced, bad credentials, deleted): so does this program.
    if (s === "closed" && !stopping) {
      process.stdout.write("example device stopped: the server closed the session for good\n");
      process.exit(1);
    }
  });
  device.on("connected", () => process.stdout.write("example device connected\n"));
  device.on("disconnected", ({ code }) => process.stdout.write(`example device disconnected (${code})\n`));
  device.on("error", (e) => process.stderr.write(`example device: ${e.message}\n`));
  device.connect().catch((e: unknown) => {
    process.stderr.write(`example device: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
  const stop = () => {
    stopping = true;
    void device.close().then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
