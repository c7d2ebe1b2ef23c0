import { expect } from "chai";
import { once } from "node:events";
import type { IncomingMessage } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import { AppError } from "../server/errors.js";
import { CALL_TIMEOUT_SLACK_MS, FIRST_DESCRIBE_WAIT_MS, JsonSession, type CallResult, type SessionEvents } from "../server/gateway/session.js";
import { parsedJsonDepth } from "../server/json.js";
import { FakeClock } from "./helpers/fake-clock.js";

/**
 * Issue 15: a JSON session's calls time out from one coarse timer per session (no `setTimeout` per call). Each
 * call still fails with device_timeout at its own deadline (at most CALL_TIMEOUT_SLACK_MS late), never before.
 * Real sockets on port 0; the session's clock is a fake one.
 */
describe("gateway: call timeouts from one timer per session", () => {
  let wss: WebSocketServer;
  let device: WebSocket;
  let session: JsonSession;
  let clock: FakeClock;
  /** Call frames the device received, in order. */
  let calls: Array<{ id: number; resource: string }>;

  const events: SessionEvents = { onDescribe: () => {}, onData: () => {}, onTraffic: () => {} };

  beforeEach(async () => {
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const accepted = once(wss, "connection") as Promise<[WebSocket]>;
    device = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    const [serverSide] = await accepted;
    clock = new FakeClock();
    session = new JsonSession("alice", "lamp", serverSide, "127.0.0.1", { maxInflight: 64, maxBufferedBytes: 1 << 20 }, events, undefined, clock);
    serverSide.on("message", (data: Buffer) => session.receive(data.toString(), data.length));
    calls = [];
    device.on("message", (data: Buffer) => calls.push(JSON.parse(data.toString()) as { id: number; resource: string }));
    await once(device, "open");
  });

  afterEach(async () => {
    session.markClosed();
    device.terminate();
    await new Promise((r) => wss.close(r));
  });

  /** Waits until the device has received `n` call frames. */
  async function received(n: number): Promise<void> {
    while (calls.length < n) await once(device, "message");
  }

  /** The outcome of a call so far: "pending", or its AppError code, or "ok". */
  function track(p: Promise<CallResult>): () => string {
    let state = "pending";
    p.then(() => (state = "ok"), (e: unknown) => (state = e instanceof AppError ? e.code : String(e)));
    return () => state;
  }

  it("fails a call with device_timeout once its deadline passed, not before", async () => {
    const outcome = track(session.call("value", undefined, false, 100));
    await received(1);
    await clock.advance(99);
    expect(outcome()).to.equal("pending");
    expect(session.inflight).to.equal(1);
    await clock.advance(1 + CALL_TIMEOUT_SLACK_MS);
    expect(outcome()).to.equal("device_timeout");
    expect(session.inflight).to.equal(0);
  });

  it("keeps one timer for many calls and expires each at its own deadline", async () => {
    const long = track(session.call("a", undefined, false, 5_000));
    const short = track(session.call("b", undefined, false, 200));
    const mid = track(session.call("c", undefined, false, 1_000));
    await received(3);
    expect(clock.size).to.equal(1);
    await clock.advance(200 + CALL_TIMEOUT_SLACK_MS);
    expect([long(), short(), mid()]).to.deep.equal(["pending", "device_timeout", "pending"]);
    await clock.advance(800);
    expect([long(), mid()]).to.deep.equal(["pending", "device_timeout"]);
    expect(clock.size).to.equal(1);
    await clock.advance(4_000);
    expect(long()).to.equal("device_timeout");
    expect(clock.size).to.equal(0);
  });

  it("answered calls never time out, and the timer stops once nothing is pending", async () => {
    const answered = session.call("value", undefined, false, 100);
    await received(1);
    device.send(JSON.stringify({ type: "result", id: calls[0]!.id, out: 7 }));
    expect(await answered).to.deep.equal({ hasOut: true, out: 7 });
    await clock.advance(100 + CALL_TIMEOUT_SLACK_MS);
    expect(session.inflight).to.equal(0);
    expect(clock.size).to.equal(0);
  });

  it("a later call with an earlier deadline still times out at its own", async () => {
    const long = track(session.call("a", undefined, false, 60_000));
    await received(1);
    await clock.advance(1_000);
    const short = track(session.call("b", undefined, false, 50));
    await received(2);
    await clock.advance(50 + CALL_TIMEOUT_SLACK_MS);
    expect([long(), short()]).to.deep.equal(["pending", "device_timeout"]);
  });

  it("closing the session fails pending calls with device_disconnected and drops the timer", async () => {
    const outcome = track(session.call("value", undefined, false, 100));
    await received(1);
    session.markClosed();
    await clock.advance(0);
    expect(outcome()).to.equal("device_disconnected");
    expect(clock.size).to.equal(0);
  });
  describe("the resource list asked for before the first describe", () => {
    /** The list's outcome so far: "pending" or its JSON. */
    function trackList(p: Promise<unknown>): () => string {
      let state = "pending";
      void p.then((v) => (state = JSON.stringify(v)));
      return () => state;
    }
    /** Settles what the session's promises started by a frame or a clock step. */
    const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

    it("waits for the device's describe and answers its resources", async () => {
      const list = trackList(session.resourceList());
      await clock.advance(FIRST_DESCRIBE_WAIT_MS - 1);
      expect(list()).to.equal("pending");
      const described = new Promise<void>((resolve) => session.ws.once("message", () => resolve()));
      device.send(JSON.stringify({ type: "describe", resources: { temperature: "output", led: { kind: "input" } } }));
      await described;
      await settle();
      expect(JSON.parse(list())).to.deep.equal({ temperature: { kind: "output" }, led: { kind: "input" } });
      expect(clock.size).to.equal(0);
    });

    it("answers an empty list at the end of the wait for a device that never describes, and at once once closed", async () => {
      const list = trackList(session.resourceList());
      await clock.advance(FIRST_DESCRIBE_WAIT_MS - 1);
      expect(list()).to.equal("pending");
      await clock.advance(1);
      expect(list()).to.equal("{}");
      const again = trackList(session.resourceList());
      session.markClosed();
      await settle();
      expect(again()).to.equal("{}");
      expect(clock.size).to.equal(0);
    });
  });
});

describe("gateway: the call frames of one turn leave in one write", () => {
  let wss: WebSocketServer;
  let device: WebSocket;
  let session: JsonSession;
  /** The server side's TCP socket. */
  let socket: Socket;
  let frames: Array<{ id: number; resource: string }>;

  beforeEach(async () => {
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    const accepted = once(wss, "connection") as Promise<[WebSocket, IncomingMessage]>;
    device = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    frames = [];
    device.on("message", (data: Buffer) => frames.push(JSON.parse(data.toString()) as { id: number; resource: string }));
    const [serverSide, req] = await accepted;
    socket = req.socket as Socket;
    const events: SessionEvents = { onDescribe: () => {}, onData: () => {}, onTraffic: () => {} };
    session = new JsonSession("alice", "lamp", serverSide, "127.0.0.1", { maxInflight: 64, maxBufferedBytes: 1 << 20 }, events);
    await once(device, "open");
  });

  afterEach(async () => {
    session.markClosed();
    device.terminate();
    await new Promise((r) => wss.close(r));
  });

  it("holds three calls made in one turn in the socket until the turn ends, then delivers them in order", async () => {
    for (const r of ["a", "b", "c"]) session.call(r, undefined, false, 60_000).catch(() => {});
    expect(socket.writableCorked).to.equal(1);
    expect(socket.writableLength).to.be.greaterThan(0);
    await new Promise((r) => setImmediate(r));
    expect(socket.writableCorked).to.equal(0);
    while (frames.length < 3) await once(device, "message");
    expect(frames.map((f) => f.resource)).to.deep.equal(["a", "b", "c"]);
  });
});

describe("json: parsedJsonDepth", () => {
  const nested = (d: number): string => "[".repeat(d) + "]".repeat(d);

  it("agrees with the depth limit on both sides of it", () => {
    for (const d of [1, 2, 3, 4, 5]) {
      const text = nested(d);
      expect(parsedJsonDepth(text, JSON.parse(text), 3), `depth ${d}`).to.equal(d <= 3);
    }
    const deep = nested(65);
    expect(parsedJsonDepth(deep, JSON.parse(deep), 64)).to.equal(false);
    expect(parsedJsonDepth(nested(64), JSON.parse(nested(64)), 64)).to.equal(true);
  });
});
