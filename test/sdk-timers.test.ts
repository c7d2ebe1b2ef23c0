import { expect } from "chai";
import { Device, type DeviceOptions } from "../device-sdk/index.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { fakeSocketClass, type FakeSocket } from "./helpers/fake-socket.js";

/**
 * The SDK's timers on an injected fake clock (issue 13.6): reconnect backoff, keepalive, connect timeout,
 * stream sampling and the property-request timeout, each checked at the exact millisecond, without sleeping.
 */
describe("device SDK: timers on an injected clock", () => {
  let clock: FakeClock;
  let fake: ReturnType<typeof fakeSocketClass>;
  const devices: Device[] = [];

  beforeEach(() => {
    clock = new FakeClock();
    fake = fakeSocketClass();
  });
  afterEach(async () => {
    for (const d of devices.splice(0)) await d.close();
  });

  /** A device on the fake clock and fake sockets; jitter fixed at 0.5, so each delay is 3/4 of its step. */
  const make = (extra: Partial<DeviceOptions> = {}) => {
    const d = new Device({ server: "ws://fake", user: "u", device: "d", credentials: "c", WebSocket: fake.FakeWS, timers: clock, random: () => 0.5, ...extra });
    d.on("error", () => undefined);
    devices.push(d);
    return d;
  };
  const socket = (n: number): FakeSocket => fake.instances[n - 1]!;
  const disconnects = (d: Device) => {
    const seen: Array<{ code: number; reason: string }> = [];
    d.on("disconnected", (e) => seen.push(e));
    return seen;
  };

  it("reconnect delays follow the backoff sequence: a new attempt exactly when each delay ends, none a millisecond before", async () => {
    const d = make({ reconnectInitialMs: 100, reconnectMaxMs: 400 });
    void d.connect().catch(() => undefined);
    expect(fake.instances).to.have.length(1);
    // 100, 200, 400, 400 (capped) with jitter 0.5 → 75, 150, 300, 300.
    for (const [i, delay] of [75, 150, 300, 300].entries()) {
      socket(i + 1).drop(1006); // this attempt failed
      expect(d.state).to.equal("connecting");
      await clock.advance(delay - 1);
      expect(fake.instances, `attempt ${i + 2} at ${delay - 1} ms`).to.have.length(i + 1);
      await clock.advance(1);
      expect(fake.instances, `attempt ${i + 2} at ${delay} ms`).to.have.length(i + 2);
    }
  });

  it("an accepted session resets the backoff: the next drop waits the first delay again", async () => {
    const d = make({ reconnectInitialMs: 100, reconnectMaxMs: 400 });
    const connected = d.connect();
    socket(1).drop(1006);
    await clock.advance(75);
    socket(2).drop(1006);
    await clock.advance(150);
    socket(3).accept();
    await connected;
    socket(3).drop(1006);
    await clock.advance(74);
    expect(fake.instances).to.have.length(3);
    await clock.advance(1);
    expect(fake.instances).to.have.length(4);
  });

  it("a missed keepalive closes the session (4408) after two silent intervals and reconnects after the backoff", async () => {
    const d = make({ keepalive: 1, reconnectInitialMs: 100 });
    const seen = disconnects(d);
    const connected = d.connect();
    socket(1).accept(1);
    await connected;
    // Checked every 250 ms: silence is noticed at the first check after 2 intervals (2000 ms), i.e. at 2250 ms.
    await clock.advance(2249);
    expect(seen).to.deep.equal([]);
    expect(d.state).to.equal("open");
    expect(socket(1).sent.filter((f) => f.type === "ping")).to.have.length(2); // at 1000 and 2000 ms
    await clock.advance(1);
    expect(seen).to.deep.equal([{ code: 4408, reason: "keepalive timeout" }]);
    expect(socket(1).closeCalls).to.deep.equal([4408]);
    expect(d.state).to.equal("connecting");
    await clock.advance(74);
    expect(fake.instances).to.have.length(1);
    await clock.advance(1);
    expect(fake.instances).to.have.length(2);
  });

  it("any frame from the server counts as life: a session that hears pongs stays open", async () => {
    const d = make({ keepalive: 1 });
    const seen = disconnects(d);
    const connected = d.connect();
    socket(1).accept(1);
    await connected;
    for (let i = 0; i < 5; i++) {
      await clock.advance(1500);
      socket(1).receive({ type: "pong" });
    }
    expect(seen).to.deep.equal([]);
    expect(d.state).to.equal("open");
    expect(socket(1).closeCalls).to.deep.equal([]);
  });

  it("the server's shorter keepalive wins: with 60 s asked and 1 s answered, silence is noticed at 2250 ms", async () => {
    const d = make({ keepalive: 60 });
    const seen = disconnects(d);
    const connected = d.connect();
    socket(1).accept(1);
    await connected;
    await clock.advance(2249);
    expect(seen).to.deep.equal([]);
    await clock.advance(1);
    expect(seen).to.deep.equal([{ code: 4408, reason: "keepalive timeout" }]);
  });

  it("the connect timeout fires at connectTimeoutMs when the server never answers the connect frame, and the device retries", async () => {
    const d = make({ connectTimeoutMs: 5000, reconnectInitialMs: 100 });
    const connected = d.connect();
    socket(1).closeCompletes = false; // the peer is gone: only the SDK's own timer can end this attempt
    socket(1).readyState = 1;
    socket(1).onopen?.({});
    expect(socket(1).sent).to.deep.equal([{ type: "connect", user: "u", device: "d", credentials: "c", keepalive: 60 }]);
    await clock.advance(4999);
    expect(socket(1).closeCalls).to.deep.equal([]);
    expect(d.state).to.equal("connecting");
    await clock.advance(1);
    expect(socket(1).closeCalls).to.deep.equal([4408]);
    await clock.advance(75);
    expect(fake.instances).to.have.length(2);
    socket(2).accept();
    await connected;
    expect(d.state).to.equal("open");
  });

  it("stream sampling runs on the clock: a value at once, then one per interval", async () => {
    const d = make();
    let n = 0;
    d.output("count", () => ++n);
    const connected = d.connect();
    socket(1).accept();
    await connected;
    socket(1).receive({ type: "stream", resource: "count", interval: 100 });
    await clock.advance(0);
    const data = () => socket(1).sent.filter((f) => f.type === "data").map((f) => f.out);
    expect(data()).to.deep.equal([1]);
    await clock.advance(99);
    expect(data()).to.deep.equal([1]);
    await clock.advance(1);
    expect(data()).to.deep.equal([1, 2]);
    await clock.advance(200);
    expect(data()).to.deep.equal([1, 2, 3, 4]);
    socket(1).receive({ type: "unstream", resource: "count" });
    await clock.advance(1000);
    expect(data()).to.deep.equal([1, 2, 3, 4]);
  });

  it("a property request the server never answers rejects after 10 s, not before", async () => {
    const d = make();
    const connected = d.connect();
    socket(1).accept();
    await connected;
    let outcome: unknown;
    const pending = d.property("threshold").then(
      (v) => (outcome = { value: v }),
      (e: Error) => (outcome = e.message),
    );
    expect(socket(1).sent.at(-1)).to.deep.equal({ type: "property_get", name: "threshold", id: 1 });
    await clock.advance(9999);
    expect(outcome).to.equal(undefined);
    await clock.advance(1);
    await pending;
    expect(outcome).to.equal("the server did not answer the property request in time");
  });

  it("close() leaves no timer behind on the clock (session, keepalive, streams and requests all cleared)", async () => {
    const d = make();
    d.output("t", () => 1);
    const connected = d.connect();
    socket(1).accept();
    await connected;
    socket(1).receive({ type: "stream", resource: "t", interval: 1000 });
    const request = d.property("p").catch((e: Error) => e.message);
    expect(clock.size).to.equal(3); // keepalive check, stream interval, property timeout
    await d.close();
    expect(await request).to.equal("device closed");
    expect(clock.size).to.equal(0);
  });
});
