/**
 * Fuzzes the public API from its own OpenAPI document with schemathesis (PyPI; `pip install schemathesis`).
 * Opt-in, not part of `npm test`: `npm run test:schemathesis [-- <extra st run options>]`.
 *
 * Starts a real server on the embedded store (temp dir, port 0), seeds the account `alice` with the device
 * `nodemcu` connected through the device SDK (the example device's resources), signs alice in, and runs
 * `st run` with her bearer token, a fixed seed and bounded examples. Exits with schemathesis's code
 * (non-zero on any failure). SCHEMATHESIS_BIN overrides the `st` executable, SCHEMATHESIS_MAX_EXAMPLES
 * the examples per operation (default 50), SCHEMATHESIS_SEED the seed (default 1), SCHEMATHESIS_CONFIG the
 * settings file (default: schemathesis.toml here); SCHEMATHESIS_AS_ADMIN=1 sends the administrator's token
 * instead of alice's. Extra arguments go to `st run`.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startServer, ADMIN } from "../helpers/server.js";
import { login, newAccount, newDevice } from "../helpers/api.js";
import { createExampleDevice } from "../../examples/device.js";

const srv = await startServer({ env: { LOG_LEVEL: process.env.FUZZ_LOG_LEVEL ?? "silent" } });
let device: ReturnType<typeof createExampleDevice>["device"] | undefined;
let code = 1;
try {
  const admin = (await login(srv.url, ADMIN.user, ADMIN.password)).access_token;
  const token = await newAccount(srv.url, admin, "alice");
  await newDevice(srv.url, token, "alice", "nodemcu", "s3cret");
  device = createExampleDevice({ server: srv.wsUrl, user: "alice", device: "nodemcu", credentials: "s3cret" }).device;
  await device.connect();
  const args = [
    "--config-file", process.env.SCHEMATHESIS_CONFIG ?? fileURLToPath(new URL("schemathesis.toml", import.meta.url)),
    "run", `${srv.url}/openapi.json`,
    "--seed", process.env.SCHEMATHESIS_SEED ?? "1",
    "--max-examples", process.env.SCHEMATHESIS_MAX_EXAMPLES ?? "50",
    "--workers", "1",
    "--request-timeout", "15",
    // The account event stream is SSE only: its heartbeats keep a never-ending response under the read timeout.
    "--exclude-operation-id", "streamEvents",
    ...process.argv.slice(2),
  ];
  process.stdout.write(`server ${srv.url} (data ${srv.dataDir}); st ${args.slice(2, 4).join(" ")} …\n`);
  code = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.env.SCHEMATHESIS_BIN ?? "st", args, { stdio: "inherit", env: { ...process.env, THINGRELAY_FUZZ_TOKEN: process.env.SCHEMATHESIS_AS_ADMIN ? admin : token } });
    child.on("error", reject);
    child.on("exit", (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
} finally {
  await device?.close();
  await srv.close();
}
process.exit(code);
