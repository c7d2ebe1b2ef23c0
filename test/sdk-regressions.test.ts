import { expect } from "chai";
import { Device, type WebSocketLike } from "../device-sdk/index.js";

/** An in-memory WebSocket the test drives by hand: frames in with `deliver`, frames out in `sent`. */
class FakeSocket implements WebSocketLike {
  static last: FakeSocket[] = [];
  readyState = 0;
  sent: Array<Record<string, unknown>> = [];
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.last.push(this);
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }
  close(code = 1000, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 5);
  }
  deliver(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));
async function socketOpened(n: number): Promise<FakeSocket> {
  while (FakeSocket.last.length < n || FakeSocket.last[n - 1]!.readyState !== 1) await tick();
  return FakeSocket.last[n - 1]!;
}

function newDevice(): Device {
  return new Device({ server: "ws://fake", user: "u", device: "d", credentials: "c", WebSocket: FakeSocket, keepalive: 1 });
}

describe("device SDK: state machine regressions", () => {
  beforeEach(() => {
    FakeSocket.last = [];
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
    ws.deliver({ type: "connected", keepalive: 1 });
    await closing;
    expect(connected).to.equal(0);
    expect(d.state).to.equal("closed");
    expect(states).to.deep.equal(["connecting", "closing", "closed"]);
  });

  it("connect() while a close is in progress waits for it, then opens a new session", async () => {
    const d = newDevice();
    const first = d.connect();
    (await socketOpened(1)).deliver({ type: "connected", keepalive: 1 });
    await first;
    const closing = d.close();
    const reopened = d.connect();
    await closing;
    (await socketOpened(2)).deliver({ type: "connected", keepalive: 1 });
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
    ws.deliver({ type: "connected", keepalive: 1 });
    await c;
    ws.deliver({ type: "stream", resource: "relay", interval: 60 });
    ws.deliver({ type: "stream", resource: "reset", interval: 60 });
    await new Promise((r) => setTimeout(r, 150));
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
    ws.deliver({ type: "connected", keepalive: 1 });
    await c;
    ws.deliver({ type: "stream", resource: "stuck", interval: 50 });
    await new Promise((r) => setTimeout(r, 400));
    expect(calls).to.equal(1);
    await d.close();
  });
});
