import { expect } from "chai";
import { createServer, type Server } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { runMain, startMain, stopAllMains, type MainProcess } from "../helpers/process.js";
import { api, login, newDevice } from "../helpers/api.js";
import { selfSigned } from "../helpers/self-signed.js";
import { sse } from "../helpers/sse.js";
import { TestDevice } from "./device.js";

const ADMIN_ENV = { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" };

/** server/main.ts opens the Thinger listeners from its configuration, logs their ports and closes them on SIGTERM. */
describe("main: Thinger listeners", function () {
  this.timeout(60_000);
  let dir: string;
  let main: MainProcess | undefined;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "thingrelay-thinger-main-"));
    const { cert, key } = selfSigned();
    await writeFile(join(dir, "cert.pem"), cert);
    await writeFile(join(dir, "key.pem"), key);
  });
  after(async () => {
    await stopAllMains();
    await main?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it("opens TCP and TLS listeners on free ports, logs them, serves a legacy TLS device, and closes them on SIGTERM", async () => {
    main = await startMain({
      env: {
        ...ADMIN_ENV, THINGRELAY_THINGER_PORT: "0", THINGRELAY_THINGER_TLS_PORT: "0", THINGRELAY_IOTMP_PORT: "off", THINGRELAY_IOTMP_TLS_PORT: "0",
        THINGRELAY_TLS_CERT: join(dir, "cert.pem"), THINGRELAY_TLS_KEY: join(dir, "key.pem"),
      },
    });
    const line = main.logs().find((l) => l.msg === "thinger device listeners") as Record<string, unknown> | undefined;
    expect(line, main.stdout).to.not.equal(undefined);
    expect(line).to.not.have.property("iotmp");
    const tlsPort = line!.thinger_tls as number;
    expect(tlsPort).to.be.a("number").and.greaterThan(0);
    expect(line!.thinger).to.be.a("number");
    expect(line!.iotmp_tls).to.be.a("number");

    const admin = await login(main.url, "root", "root-password-1");
    await newDevice(main.url, admin.access_token, "root", "esp", "s3cret");
    const d = new TestDevice({ protocol: "legacy", transport: "tls", port: tlsPort, user: "root", device: "esp", credentials: "s3cret", resources: { temp: { kind: "output", out: () => 21.5 } } });
    const events = await sse(`${main.url}/v1/users/root/events?authorization=${admin.access_token}`);
    await d.connect();
    await events.next((e) => e.event === undefined && (JSON.parse(e.data) as { type?: string }).type === "online");
    events.close();
    const r = await api(main.url, "GET", "/v2/users/root/devices/esp/temp", { token: admin.access_token });
    expect(r.body).to.deep.equal({ out: 21.5 });

    const exit = await main.kill("SIGTERM");
    expect(exit.code).to.equal(0);
    await d.closed;
    // The port is free again.
    const probe: Server = createServer();
    await new Promise<void>((resolve, reject) => probe.once("error", reject).listen(tlsPort, "127.0.0.1", () => resolve()));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  it("a Thinger port already taken stops the start with a clear error", async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", () => resolve()));
    try {
      const r = await runMain({ env: { THINGRELAY_THINGER_PORT: String((taken.address() as AddressInfo).port) } });
      expect(r.code).to.not.equal(0);
      expect(r.stderr).to.match(/EADDRINUSE/);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
