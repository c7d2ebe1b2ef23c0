/**
 * Queued calls, properties and Idempotency-Keys across a crash (issue 18): a real server process is SIGKILLed
 * while one queued call runs on a device and two more wait behind it, then restarted on the same DATA_DIR.
 * The running call must end `failed` (call_interrupted) and never be sent again; the waiting ones must be
 * delivered once each, in order; the kept Idempotency-Key answer and the properties must still be there.
 */
import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startMain, stopAllMains, type MainProcess } from "./helpers/process.js";
import { api, login } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { sse } from "./helpers/sse.js";

const ADMIN_ENV = { THINGRELAY_ADMIN_USER: "root", THINGRELAY_ADMIN_PASSWORD: "root-password-1" };

describe("restart: queued calls survive SIGKILL and none runs twice (child process)", function () {
  this.timeout(60_000);
  let dataDir: string;
  let first: MainProcess | undefined;
  let second: MainProcess | undefined;
  let token: string;
  const ids: Record<string, string> = {};
  const ASYNC = { Prefer: "respond-async" };
  const relayPath = "/v2/users/alice/devices/d1/relay";
  const callPath = (id: string) => `/v1/users/alice/devices/d1/calls/${id}`;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "thingrelay-calls-restart-"));
    first = await startMain({ dataDir, env: ADMIN_ENV });
    const url = first.url;
    const root = (await login(url, "root", "root-password-1")).access_token;
    expect((await api(url, "POST", "/v1/users", { token: root, json: { username: "alice", password: "alice-password" } })).status).to.equal(201);
    token = (await login(url, "alice", "alice-password")).access_token;
    expect((await api(url, "POST", "/v1/users/alice/devices", { token, json: { device_id: "d1", device_description: "door", device_credentials: "d1-secret" } })).status).to.equal(201);
    expect((await api(url, "PUT", "/v3/users/alice/devices/d1/properties/mode", { token, json: { value: "eco" } })).status).to.equal(200);

    const dev = await RawDevice.described(first.wsUrl, "alice", "d1", "d1-secret", { relay: "input" });
    const a = await api(url, "POST", `${relayPath}?timeout=60`, { token, json: { in: "A" }, headers: ASYNC });
    expect(a.status).to.equal(202);
    ids.A = a.body.id;
    // The device holds call A and never answers it: A is `running` when the process dies.
    expect((await dev.take((f) => f.type === "call")).in).to.equal("A");
    for (const v of ["B", "C"]) {
      const r = await api(url, "POST", relayPath, { token, json: { in: v }, headers: { ...ASYNC, "Idempotency-Key": `key-${v}` } });
      expect(r.status).to.equal(202);
      ids[v] = r.body.id;
    }
    expect((await api(url, "GET", callPath(ids.A!), { token })).body.status).to.equal("running");
    expect((await api(url, "GET", callPath(ids.B!), { token })).body.status).to.equal("queued");
    expect(await first.kill("SIGKILL")).to.deep.equal({ code: null, signal: "SIGKILL" });
    dev.ws.terminate();
    second = await startMain({ dataDir, env: ADMIN_ENV });
  });

  after(async () => {
    await first?.cleanup();
    await second?.cleanup();
    await stopAllMains();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("the call that was running is failed with call_interrupted; the waiting ones are still queued", async () => {
    const a = (await api(second!.url, "GET", callPath(ids.A!), { token })).body;
    expect(a.status).to.equal("failed");
    expect(a.error.code).to.equal("call_interrupted");
    expect(a.done_ts).to.be.a("number");
    for (const v of ["B", "C"]) expect((await api(second!.url, "GET", callPath(ids[v]!), { token })).body.status).to.equal("queued");
  });

  it("a repeat with a kept Idempotency-Key replays the 202 without queueing again", async () => {
    const r = await api(second!.url, "POST", relayPath, { token, json: { in: "C" }, headers: { ...ASYNC, "Idempotency-Key": "key-C" } });
    expect(r.status).to.equal(202);
    expect(r.headers.get("idempotent-replayed")).to.equal("true");
    expect(r.body.id).to.equal(ids.C);
    expect((await api(second!.url, "GET", "/v1/users/alice/devices/d1/calls", { token })).body).to.have.length(3);
  });

  it("on connect the device gets its properties, then B and C once each, in order, and never A", async () => {
    // The account event stream announces each queued call that finished (a `call` event, sent once it is stored).
    const events = await sse(`${second!.url}/v1/users/alice/events?device=d1`, { Authorization: `Bearer ${token}` });
    expect(events.status).to.equal(200);
    const dev = await RawDevice.described(second!.wsUrl, "alice", "d1", "d1-secret", { relay: "input" });
    try {
      expect(await dev.take((f) => f.type === "property")).to.include({ name: "mode", value: "eco" });
      const b = await dev.take((f) => f.type === "call");
      expect(b.in).to.equal("B");
      dev.ws.send(JSON.stringify({ type: "result", id: b.id }));
      const c = await dev.take((f) => f.type === "call");
      expect(c.in).to.equal("C");
      dev.ws.send(JSON.stringify({ type: "result", id: c.id }));
      const cDone = await events.next((e) => e.event === undefined && (JSON.parse(e.data) as { id?: string }).id === ids.C);
      expect(JSON.parse(cDone.data)).to.include({ type: "call", status: "succeeded" });
      expect((await api(second!.url, "GET", callPath(ids.C!), { token })).body.status).to.equal("succeeded");
      expect((await api(second!.url, "GET", callPath(ids.B!), { token })).body.status).to.equal("succeeded");
      expect(dev.frames.filter((f) => f.type === "call").map((f) => f.in)).to.deep.equal(["B", "C"]);
    } finally {
      events.close();
      await dev.close();
    }
  });
});
