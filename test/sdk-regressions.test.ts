import { expect } from "chai";
import { Device } from "../device-sdk/index.js";
import { FakeClock } from "./helpers/fake-clock.js";
import { fakeSocketClass } from "./helpers/fake-socket.js";

let fake = fakeSocketClass({ autoOpen: true });
let clock = new FakeClock();
const socketOpened = (n: number) => fake.opened(n);

function newDevice(): Device {
  return new Device({ server: "ws://fake", user: "u", device: "d", credentials: "c", WebSocket: fake.FakeWS, keepalive: 1, timers: clock });
}

describe("device SDK: state machine regressions", () => {
  beforeEach(() => {
    fake = fakeSocketClass({ autoOpen: true });
    clock = new FakeClock();
  });

  it("a frame that arrives after close() neither reopens the session nor starts timers", async () => {
    const d = newDevice();
    const states: string[] = [];
    d.on("state", (s) => states.push(s));
    let connected = 0;
    d.on("connected", () => void connected++);
    void d.connect().catch(() => undefined);
    const ws = await socketOpened(1);
    const closing = d.close();
    ws.receive({ type: "connected", keepalive: 1 });
    await closing;
    expect(connected).to.equal(0);
    expect(d.state).to.equal("closed");
    expect(clock.size).to.equal(0); // no keepalive, connect or reconnect timer left
    expect(states).to.deep.equal(["connecting", "closing", "closed"]);
  });

  it("connect() while a close is in progress waits for it, then opens a new session", async () => {
    const d = newDevice();
    const first = d.connect();
    (await socketOpened(1)).receive({ type: "connected", keepalive: 1 });
    await first;
    const closing = d.close();
    const reopened = d.connect();
    await closing;
    (await socketOpened(2)).receive({ type: "connected", keepalive: 1 });
    await reopened;
    expect(d.state).to.equal("open");
    await d.close();
  });

  it("a stream request never runs an input or run handler", async () => {
    const d = newDevice();
    let relayCalls = 0;
    d.input("relay", () => void relayCalls++);
    d.run("reset", () => void relayCalls++);
    const c = d.connect();
    const ws = await socketOpened(1);
    ws.receive({ type: "connected", keepalive: 1 });
    await c;
    ws.receive({ type: "stream", resource: "relay", interval: 60 });
    ws.receive({ type: "stream", resource: "reset", interval: 60 });
    await clock.advance(150); // two intervals and more: no sampling started
    expect(relayCalls).to.equal(0);
    expect(ws.sent.filter((f) => f.type === "data")).to.have.length(0);
    let threw = false;
    await d.stream("relay").catch(() => (threw = true));
    expect(threw).to.equal(true);
    await d.close();
  });

  it("a hung output handler under a stream is called once, not once per tick", async () => {
    const d = newDevice();
    let calls = 0;
    d.output("stuck", () => {
      calls++;
      return new Promise(() => undefined);
    });
    const c = d.connect();
    const ws = await socketOpened(1);
    ws.receive({ type: "connected", keepalive: 1 });
    await c;
    ws.receive({ type: "stream", resource: "stuck", interval: 50 });
    await clock.advance(400); // eight ticks, each finding the first call still running
    expect(calls).to.equal(1);
    await d.close();
  });
});
