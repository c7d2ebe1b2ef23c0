import { expect } from "chai";
import type { EventSourceMessage } from "eventsource-parser";
import { startServer, ADMIN, type TestServer } from "./helpers/server.js";
import { login, newAccount, newDevice } from "./helpers/api.js";
import { onceWhere, streamsOpen, whenState } from "./helpers/wait.js";
import { closeAllSse, sse } from "./helpers/sse.js";
import { RawDevice } from "./helpers/rawdevice.js";
import { EventLog, ResumeBudget } from "../server/streams/log.js";
import { STREAM_DEFAULTS } from "../server/streams/service.js";

const json = (e: EventSourceMessage) => JSON.parse(e.data);
const KiB = 1024;

describe("streams: resume buffers are bounded in bytes", () => {
  it("one log: bounded in bytes (oldest leave first); an event over the per-event cap is delivered but not kept, and resuming across it is refused", () => {
    const log = new EventLog<number>({ maxEvents: 100, maxBytes: 1000, maxEventBytes: 300 });
    const evs = Array.from({ length: 10 }, (_, i) => log.append("x", "v".repeat(150), i));
    expect(evs[0]!.bytes).to.be.within(150, 300);
    expect(log.bytes).to.be.at.most(1000);
    expect(log.size).to.equal(Math.floor(1000 / evs[0]!.bytes));
    expect(log.since(evs[0]!.id), "oldest left").to.equal(null);
    expect(log.since(evs[7]!.id)!.map((e) => e.meta)).to.deep.equal([8, 9]);

    const big = log.append("x", "w".repeat(400), 10);
    expect(big.text).to.include("w".repeat(400)); // what live subscribers get
    expect(log.size).to.equal(Math.floor(1000 / evs[0]!.bytes));
    expect(log.since(evs[9]!.id), "across a value that was not kept").to.equal(null);
    expect(log.since(big.id)).to.deep.equal([]);
    log.skip(); // an event nobody records
    expect(log.since(big.id)).to.equal(null);
  });

  it("a budget shared by logs: over the total, the oldest events of any log leave first; clear() gives their bytes back", () => {
    const budget = new ResumeBudget(1000);
    const a = new EventLog<string>({ maxEvents: 100, maxBytes: 800, budget });
    const b = new EventLog<string>({ maxEvents: 100, maxBytes: 800, budget });
    const value = "v".repeat(200);
    const a1 = a.append("x", value, "a1");
    const b1 = b.append("x", value, "b1");
    const per = a1.bytes;
    a.append("x", value, "a2");
    b.append("x", value, "b2");
    expect(budget.bytes).to.equal(4 * per);
    a.append("x", value, "a3"); // 5 × ~250 > 1000: a1, the oldest of all, leaves
    expect(budget.bytes).to.be.at.most(1000);
    expect(a.since(`${a.epoch}-0`), "a1 left").to.equal(null);
    expect(a.since(a1.id)!.map((e) => e.meta)).to.deep.equal(["a2", "a3"]);
    expect(b.since(`${b.epoch}-0`)!.map((e) => e.meta)).to.deep.equal(["b1", "b2"]);
    b.append("x", value, "b3"); // now b1 is the oldest of all
    expect(b.since(`${b.epoch}-0`), "b1 left").to.equal(null);
    expect(b.since(b1.id)!.map((e) => e.meta)).to.deep.equal(["b2", "b3"]);
    expect(a.since(`${a.epoch}-1`)!.map((e) => e.meta)).to.deep.equal(["a2", "a3"]);
    expect(budget.bytes).to.equal(a.bytes + b.bytes);
    a.clear();
    expect(budget.bytes).to.equal(b.bytes);
    expect(budget.count).to.equal(b.size);
    // One event larger than the whole budget is simply not kept (and evicting it terminates).
    const tiny = new ResumeBudget(100);
    const c = new EventLog({ maxEvents: 10, maxBytes: 1000, maxEventBytes: 1000, budget: tiny });
    c.append("x", value);
    expect([c.size, c.bytes, tiny.bytes, tiny.count]).to.deep.equal([0, 0, 0, 0]);
  });

  it("defaults: 256 KiB per topic, 64 KiB per kept event, 32 MiB across topics", () => {
    expect(STREAM_DEFAULTS).to.include({ bufferBytes: 256 * KiB, maxEventBytes: 64 * KiB, totalBufferBytes: 32 * KiB * KiB });
  });
});

describe("streams: memory and robustness against device values (real server)", function () {
  this.timeout(60_000);
  let srv: TestServer;
  let token: string;
  let dev: RawDevice;
  const names = Array.from({ length: 8 }, (_, i) => `r${i}`);
  const base = (path: string) => `${srv.url}${path}${path.includes("?") ? "&" : "?"}authorization=${token}`;
  const buffered = () => srv.relay.services.streams.resumeBuffer;
  /**
   * Resolves once the resume buffers hold what `holds` wants, checked after each value the hub hands out (the
   * stream service's own listener, registered at construction, has recorded it by then).
   */
  const bufferedWhen = (holds: (b: { bytes: number; events: number }) => boolean, what: string) =>
    whenState(srv.relay.services.hub, "data", () => holds(buffered()), 10_000, what);
  /** Sends one frame and waits until the socket took it. */
  const push = (resource: string, out: unknown) =>
    new Promise<void>((resolve, reject) => dev.ws.send(JSON.stringify({ type: "data", resource, out }), (err) => (err ? reject(err) : resolve())));

  before(async () => {
    srv = await startServer();
    const admin = await login(srv.url, ADMIN.user, ADMIN.password);
    token = await newAccount(srv.url, admin.access_token, "alice");
    await newDevice(srv.url, token, "alice", "raw", "raw-secret");
    const resources = Object.fromEntries([...names, "remote_only", "live"].map((n) => [n, "output"]));
    dev = await RawDevice.described(srv.wsUrl, "alice", "raw", "raw-secret", resources);
  });
  afterEach(async () => {
    closeAllSse();
    await streamsOpen(srv.relay.services.streams, 0, 5000, "streams to close");
  });
  after(async () => {
    await dev?.close();
    await srv?.close();
  });

  it("after one stream opened and closed on each of 8 resources, large pushed values are not kept and kept ones stay within 256 KiB per topic", async () => {
    for (const n of names) {
      const c = await sse(base(`/v2/users/alice/devices/raw/${n}`));
      expect(c.status).to.equal(200);
      c.close();
      await streamsOpen(srv.relay.services.streams, 0, 5000, "stream to close");
    }
    expect(buffered()).to.deep.equal({ bytes: 0, events: 0, topics: 8 });
    // 200 KiB values (over the 64 KiB per-event cap), three per resource, then one small marker each. Frames
    // of one socket are handled in order: once the 8 markers are buffered, every large value was seen.
    const large = "L".repeat(200 * KiB);
    for (let i = 0; i < 3; i++) for (const n of names) await push(n, large);
    for (const n of names) await push(n, "marker");
    await bufferedWhen((b) => b.events === 8, "the markers");
    expect(buffered().bytes).to.be.below(8 * 200);

    // 40 KiB values are kept, at most 256 KiB worth per topic (6 of them), the oldest leaving first.
    const medium = "M".repeat(40 * KiB);
    let handled = 0;
    const allHandled = onceWhere<[{ out: unknown }]>(srv.relay.services.hub, "data", (e) => e.out === medium && ++handled === 10 * names.length, 10_000, "the 80 values to reach the hub");
    for (let i = 0; i < 10; i++) for (const n of names) await push(n, medium);
    await allHandled;
    expect(buffered().events, "six 40 KiB values per topic").to.equal(8 * 6);
    expect(buffered().bytes).to.be.within(8 * 6 * 40 * KiB, 8 * 256 * KiB);
  });

  it("a topic held only for another cluster node's subscribers records nothing here", async () => {
    const streams = srv.relay.services.streams;
    streams.setRemoteInterval("alice", "raw", "remote_only", "node-b", 1000);
    expect(await dev.take((f) => f.resource === "remote_only")).to.deep.equal({ type: "stream", resource: "remote_only", interval: 1000 });
    const before = buffered();
    expect(before.topics).to.equal(9);
    await push("remote_only", "N".repeat(10 * KiB));
    await push("r0", "marker"); // r0 is within its resume window: recorded
    // The first new event buffered is the marker (frames are handled in order): the 10 KiB value was not kept.
    await bufferedWhen((b) => b.events > before.events, "the marker");
    expect(buffered().events).to.equal(before.events + 1);
    expect(buffered().bytes - before.bytes).to.be.below(200);
    streams.setRemoteInterval("alice", "raw", "remote_only", "node-b", null);
    expect(await dev.take((f) => f.resource === "remote_only")).to.deep.equal({ type: "unstream", resource: "remote_only" });
  });

  it("a value nested 5,000 deep (or a BigInt) does not crash the server: dropped with a warning that omits it, later values still flow", async () => {
    const c = await sse(base("/v2/users/alice/devices/raw/live"));
    expect(c.status).to.equal(200);
    await dev.take((f) => f.resource === "live");
    const deepJson = `${"[".repeat(5000)}"deep-marker"${"]".repeat(5000)}`;
    const deep = JSON.parse(deepJson) as unknown;
    // The gateway may refuse such frames itself; a cluster peer's value reaches the hub without it, so the
    // stream listener is exercised directly too. Neither may throw out of the hub's emit.
    await new Promise<void>((resolve, reject) => dev.ws.send(`{"type":"data","resource":"live","out":${deepJson}}`, (err) => (err ? reject(err) : resolve())));
    const hub = srv.relay.services.hub;
    expect(() => hub.emit("data", { user: "alice", device: "raw", resource: "live", out: deep, ts: Date.now() })).to.not.throw();
    expect(() => hub.emit("data", { user: "alice", device: "raw", resource: "live", out: 10n, ts: Date.now() })).to.not.throw();
    await push("live", 42);
    const next = await c.next((e) => e.event === undefined);
    expect(json(next)).to.include({ out: 42 });
    expect(c.events.filter((e) => e.event === undefined)).to.have.length(1);
    const warnings = srv.logs.filter((l) => l.includes("cannot be serialised"));
    expect(warnings.length).to.be.at.least(2);
    for (const w of warnings) {
      expect(JSON.parse(w)).to.include({ level: 40, user: "alice", device: "raw", resource: "live" });
      expect(w).to.not.include("deep-marker").and.not.include("[[[");
    }
    // Still serving.
    expect((await sse(base("/v2/users/alice/devices/raw/r1"))).status).to.equal(200);
  });
});
