import { expect } from "chai";
import { request, type ClientRequest } from "node:http";
import type { Socket } from "node:net";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { api, login, newAccount, newDevice } from "./helpers/api.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { TestDevice } from "./thinger/device.js";
import { Hub } from "../server/gateway/hub.js";
import { CallCancel } from "../server/gateway/call-cancel.js";

/**
 * Issue 13.7: a caller that goes away cancels its call. Its in-flight slot is freed at once (the device's
 * limit, 64 by default, is not held for the call timeout) and the device's late answer is dropped.
 */
describe("relay: calls cancelled when the HTTP caller disconnects", () => {
  let srv: TestServer;
  let token: string;
  /** Server-side sockets, to wait until the server saw each aborted client go. */
  const serverSockets = new Set<Socket>();

  before(async () => {
    srv = await startServer({ thinger: {} });
    srv.server.on("connection", (s: Socket) => {
      serverSockets.add(s);
      s.once("close", () => serverSockets.delete(s));
    });
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "mute", "mute-secret");
    await newDevice(srv.url, token, "alice", "tmute", "tmute-secret");
  });
  after(async () => srv?.close());

  /** Starts a call that no one will read, on its own connection. */
  function hangingCall(device: string, resource: string): ClientRequest {
    const req = request(`${srv.url}/v2/users/alice/devices/${device}/${resource}?timeout=60`, {
      agent: false, headers: { Authorization: `Bearer ${token}` },
    });
    req.on("error", () => {
      /* aborted on purpose */
    });
    req.end();
    return req;
  }

  /**
   * Aborts every request and waits until the server closed each of their sockets (those it accepted since
   * `before`) and ran its close handlers.
   */
  async function abortAll(reqs: ClientRequest[], before: Set<Socket>): Promise<void> {
    const closed = [...serverSockets].filter((s) => !before.has(s)).map((s) => new Promise((r) => s.once("close", r)));
    expect(closed).to.have.length(reqs.length);
    for (const r of reqs) r.destroy();
    await Promise.all(closed);
    await new Promise((r) => setImmediate(r)); // the responses' close events follow the socket's on the next tick
  }

  it("JSON device: 64 aborted calls free their slots at once, a 65th reaches the device, late answers are dropped", async () => {
    const d = await RawDevice.connect({ wsUrl: srv.wsUrl, user: "alice", device: "mute", credentials: "mute-secret", describe: { value: "output" } });
    after(() => d.kill());
    const session = () => srv.relay.services.hub.get("alice", "mute")!;
    const known = new Set(serverSockets);
    const reqs = Array.from({ length: 64 }, () => hangingCall("mute", "value"));
    await d.call(63);
    expect(session().inflight).to.equal(64);

    await abortAll(reqs, known);
    expect(session().inflight).to.equal(0);

    const next = api(srv.url, "GET", "/v2/users/alice/devices/mute/value", { token });
    const call = await d.call(64);
    for (const c of d.calls.slice(0, 64)) d.reply(c.id, "late");
    d.reply(call.id, "fresh");
    const r = await next;
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: "fresh" });
    expect(session().inflight).to.equal(0);
  });

  it("Thinger legacy device: an aborted call frees its slot and its id, the late answer is dropped", async () => {
    const answers: Array<(v: string) => void> = [];
    let asked: () => void = () => undefined;
    const t = new TestDevice({
      protocol: "legacy", port: srv.thingerPorts.thinger!, user: "alice", device: "tmute", credentials: "tmute-secret",
      resources: {
        value: { kind: "output", out: () => new Promise<string>((resolve) => {
          answers.push(resolve);
          asked();
        }) },
      },
    });
    after(() => t.dev.close());
    const nextAsk = () => new Promise<void>((r) => (asked = r));
    const online = new Promise((r) => srv.relay.services.hub.once("online", r));
    await t.connect();
    await online;
    const session = () => srv.relay.services.hub.get("alice", "tmute")!;
    let asking = nextAsk();
    const known = new Set(serverSockets);
    const reqs = [hangingCall("tmute", "value")];
    await asking;
    expect(session().inflight).to.equal(1);

    await abortAll(reqs, known);
    expect(session().inflight).to.equal(0);

    asking = nextAsk();
    const next = api(srv.url, "GET", "/v2/users/alice/devices/tmute/value", { token });
    await asking;
    answers[0]!("late");
    answers[1]!("fresh");
    const r = await next;
    expect(r.status).to.equal(200);
    expect(r.body).to.deep.equal({ out: "fresh" });
    expect(session().inflight).to.equal(0);
  });
});

describe("hub: a cluster-forwarded call the caller gave up on", () => {
  it("ends the local wait at once with the cancel's reason (the other node's answer is dropped)", async () => {
    let answer: (r: { hasOut: boolean; out?: unknown }) => void = () => undefined;
    const hub = new Hub(60_000, {
      call: () => new Promise((r) => (answer = r)),
      remoteStats: () => undefined,
      kick: () => undefined,
    });
    const gone = new CallCancel();
    const call = hub.call("alice", "far", "value", undefined, false, 60_000, "GET", gone);
    const reason = new Error("caller went away");
    gone.cancel(reason);
    let caught: unknown;
    await call.catch((e: unknown) => (caught = e));
    expect(caught).to.equal(reason);
    answer({ hasOut: true, out: "late" }); // settles nothing any more
  });
});
