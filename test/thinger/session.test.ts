import { expect } from "chai";
import { AppError } from "../../server/errors.js";
import type { DeviceSession, SessionEvents } from "../../server/gateway/device-session.js";
import type { DeviceLink } from "../../server/thinger/link.js";
import { LegacySession } from "../../server/thinger/legacy-session.js";
import { IotmpSession } from "../../server/thinger/iotmp-session.js";
import { tidyNumbers } from "../../server/thinger/values.js";
import type { DeviceAnswer, DeviceRequest, DeviceRequestHandler } from "../../server/thinger/requests.js";
import { EventEmitter } from "node:events";
import { whenState } from "../helpers/wait.js";
import { FakeClock } from "../helpers/fake-clock.js";
import { CALL_TIMEOUT_SLACK_MS } from "../../server/gateway/device-session.js";
import {
  decodeIotmpFrame, decodeLegacyFrame, encodeIotmpMessage, encodeLegacyMessage, FrameReader, IOTMP_TYPE, LEGACY_FLAG,
  type Frame, type IotmpMessage, type LegacyMessage,
} from "../../server/thinger/index.js";

/** A link that records what the session writes; `written` emits "frame" for each frame. */
class FakeLink implements DeviceLink {
  readonly ip = "127.0.0.1";
  bufferedBytes = 0;
  readonly frames: Frame[] = [];
  readonly written = new EventEmitter();
  private readonly reader = new FrameReader();
  ended = false;
  write(bytes: Uint8Array): void {
    this.frames.push(...this.reader.push(bytes));
    this.written.emit("frame");
  }
  /** Resolves once `n` frames were written. */
  framesWritten(n: number, what: string): Promise<void> {
    return whenState(this.written, "frame", () => this.frames.length === n, 1000, what);
  }
  onData(): void {}
  onClose(): void {}
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.ended = true;
  }
}

const events = (): SessionEvents & { data: Array<[string, unknown]> } => {
  const data: Array<[string, unknown]> = [];
  return { data, onDescribe() {}, onTraffic() {}, onData(_s: DeviceSession, r: string, v: unknown) { data.push([r, v]); } };
};
/** Every unit session runs on its own fake clock: no real timer (silence, retries, call timeouts) is left armed. */
const options = (ev: SessionEvents, timers = new FakeClock()) => ({ limits: { maxInflight: 64, maxBufferedBytes: 1 << 20 }, keepaliveTimeoutMs: 60_000, events: ev, timers });
const frameOf = (bytes: Uint8Array): Frame => new FrameReader().push(bytes)[0]!;
const legacyIn = (m: LegacyMessage) => frameOf(encodeLegacyMessage(m));
const legacyOut = (f: Frame) => (decodeLegacyFrame(f) as { message: LegacyMessage }).message;

/** Describes `s` with output resources `names` (a stream starts only on a described output or io resource). */
async function described(s: LegacySession | IotmpSession, link: FakeLink, names: string[]): Promise<void> {
  const done = s.describe(1_000);
  const tree = Object.fromEntries(names.map((n) => [n, { fn: 3 }]));
  if (s instanceof LegacySession) {
    s.handleFrame(legacyIn({ streamId: legacyOut(link.frames.at(-1)!).streamId!, flag: LEGACY_FLAG.REQUEST_OK, payload: tree }));
  } else {
    const id = decodeIotmpFrame(link.frames.at(-1)!, 2).streamId!;
    s.handleFrame(frameOf(encodeIotmpMessage({ type: IOTMP_TYPE.OK, streamId: id, payload: tree }, 2)));
  }
  await done;
  link.frames.length = 0;
}

describe("Thinger sessions (unit): ids, reply matching, values", () => {
  let sessions: Array<{ markClosed(): void }> = [];
  afterEach(() => {
    for (const s of sessions) s.markClosed();
    sessions = [];
  });

  function legacy(): { s: LegacySession; link: FakeLink; ev: ReturnType<typeof events> } {
    const link = new FakeLink();
    const ev = events();
    const s = new LegacySession("alice", "dev1", link, options(ev));
    sessions.push(s);
    return { s, link, ev };
  }

  it("a stream's id is never handed to a call, and a sample on a call's id does not answer the call (type matters)", async () => {
    const { s, link, ev } = legacy();
    await described(s, link, ["temp"]);
    s.stream("temp", 1000);
    const streamId = legacyOut(link.frames[0]!).streamId!;
    const call = s.call("temp", undefined, false, 5_000);
    const callId = legacyOut(link.frames[1]!).streamId!;
    expect(callId).to.not.equal(streamId);
    // A sample carrying the call's id is not a reply; one carrying the stream id is data.
    s.handleFrame(legacyIn({ streamId: callId, flag: LEGACY_FLAG.STREAM_SAMPLE, payload: { out: 1 } }));
    s.handleFrame(legacyIn({ streamId: streamId, flag: LEGACY_FLAG.STREAM_SAMPLE, payload: { out: 2 } }));
    expect(ev.data).to.deep.equal([["temp", 2]]);
    // Replies with id 0 (or none) are ignored; the right one settles the call.
    s.handleFrame(legacyIn({ flag: LEGACY_FLAG.REQUEST_OK, payload: 99 }));
    s.handleFrame(legacyIn({ streamId: callId, flag: LEGACY_FLAG.REQUEST_OK, payload: 21.5 }));
    expect(await call).to.deep.equal({ hasOut: true, out: 21.5 });
  });

  it("ids wrap within 1..65535 and skip every id still pending or streaming", async () => {
    const { s, link } = legacy();
    await described(s, link, ["a", "x", "y"]); // takes id 1, free again
    s.stream("a", 0); // id 2, held by the stream
    const first = s.call("x", undefined, false, 5_000); // id 3, pending
    const ids: number[] = [];
    for (let i = 0; i < 65_534; i++) {
      const p = s.call("y", undefined, false, 5_000);
      const id = legacyOut(link.frames.at(-1)!).streamId!;
      ids.push(id);
      link.frames.length = 0;
      s.handleFrame(legacyIn({ streamId: id, flag: LEGACY_FLAG.REQUEST_OK }));
      await p;
    }
    expect(Math.min(...ids)).to.be.at.least(1);
    expect(Math.max(...ids)).to.be.at.most(65_535);
    expect(ids.filter((id) => id === 2 || id === 3)).to.deep.equal([]);
    s.handleFrame(legacyIn({ streamId: 3, flag: LEGACY_FLAG.REQUEST_ERROR }));
    const err = await first.catch((e: AppError) => e);
    expect(err).to.be.instanceOf(AppError);
    expect((err as AppError).code).to.equal("device_error");
  });

  it("QA F1: a stream asked for before the kinds are known is held (a describe is sent), started once described, never for a run resource", async () => {
    const { s, link } = legacy();
    s.stream("temp", 1000);
    s.stream("reset", 1000);
    expect(link.frames).to.have.length(1);
    const ask = legacyOut(link.frames[0]!);
    expect(ask.resource).to.deep.equal(["api"]);
    s.handleFrame(legacyIn({ streamId: ask.streamId!, flag: LEGACY_FLAG.REQUEST_OK, payload: { temp: { fn: 3 }, reset: { fn: 1 } } }));
    await link.framesWritten(2, "the held stream to start");
    expect(legacyOut(link.frames[1]!)).to.deep.include({ flag: LEGACY_FLAG.START_STREAM, resource: ["temp"] });
    s.stream("reset", 1000);
    expect(link.frames).to.have.length(2);
  });

  it("call timeouts run on the session's clock: each call fails with device_timeout at its own deadline (at most the slack late), never before; one timer serves them all", async () => {
    const clock = new FakeClock();
    const link = new FakeLink();
    const s = new LegacySession("alice", "dev1", link, options(events(), clock));
    sessions.push(s);
    const timersBefore = clock.size; // the silence timer
    const settled: string[] = [];
    const track = (name: string, p: Promise<unknown>) => p.then(() => settled.push(`${name} ok`), (e: AppError) => settled.push(`${name} ${e.code}`));
    const short = track("short", s.call("temp", undefined, false, 100));
    const long = track("long", s.call("temp", undefined, false, 300));
    const answered = track("answered", s.call("temp", undefined, false, 100));
    expect(clock.size - timersBefore, "one timeout timer for three calls").to.equal(1);
    s.handleFrame(legacyIn({ streamId: legacyOut(link.frames[2]!).streamId!, flag: LEGACY_FLAG.REQUEST_OK, payload: 1 }));
    await answered;
    await clock.advance(99);
    expect(settled).to.deep.equal(["answered ok"]);
    expect(s.inflight).to.equal(2);
    await clock.advance(1 + CALL_TIMEOUT_SLACK_MS);
    await short;
    expect(settled).to.deep.equal(["answered ok", "short device_timeout"]);
    await clock.advance(300 - (100 + CALL_TIMEOUT_SLACK_MS) - 1);
    expect(settled, "the long call is held 1 ms before its deadline").to.have.length(2);
    await clock.advance(1 + CALL_TIMEOUT_SLACK_MS);
    await long;
    expect(settled).to.deep.equal(["answered ok", "short device_timeout", "long device_timeout"]);
    expect(s.inflight).to.equal(0);
    // Its late answer matches nothing: no error, nothing settles twice.
    s.handleFrame(legacyIn({ streamId: legacyOut(link.frames[0]!).streamId!, flag: LEGACY_FLAG.REQUEST_OK, payload: 2 }));
    expect(settled).to.have.length(3);
  });

  it("a closed session fails its pending calls with device_disconnected; a dead one answers device_offline", async () => {
    const { s } = legacy();
    const call = s.call("temp", undefined, false, 5_000);
    s.close();
    expect(((await call.catch((e: AppError) => e)) as AppError).code).to.equal("device_disconnected");
    expect(((await s.call("temp", undefined, false, 5_000).catch((e: AppError) => e)) as AppError).code).to.equal("device_offline");
  });

  it("a device that stopped reading: calls answer 429 device_busy, and anything else the server would queue drops it", async () => {
    const { s, link } = legacy();
    link.bufferedBytes = 2 << 20;
    const busy = (await s.call("temp", undefined, false, 5_000).catch((e: AppError) => e)) as AppError;
    expect(busy.code).to.equal("device_busy");
    s.handleFrame(legacyIn({ streamId: 7, flag: LEGACY_FLAG.GET_PROPERTY, identifier: "p" }));
    expect(link.ended).to.equal(true);
    expect(s.isClosed).to.equal(true);
    expect(link.frames).to.have.length(0);
  });

  it("an input a frame cannot carry (too deep) is refused as the caller's invalid_request, nothing is sent", async () => {
    const { s, link } = legacy();
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    const err = await s.call("led", deep, true, 5_000).catch((e: AppError) => e);
    expect((err as AppError).code).to.equal("invalid_request");
    expect(link.frames).to.have.length(0);
    expect(s.inflight).to.equal(0);
  });

  it("IOTMP: a restarted stream stops its old id and starts under a fresh one; STREAM_DATA is raw; ERROR carries code and message", async () => {
    const link = new FakeLink();
    const ev = events();
    const s = new IotmpSession("alice", "dev1", link, options(ev), 2);
    sessions.push(s);
    const out = () => decodeIotmpFrame(link.frames.at(-1)!, 2);
    await described(s, link, ["temp", "boom"]);
    s.stream("temp", 1000);
    const first = out();
    expect(first).to.deep.include({ type: IOTMP_TYPE.START_STREAM, resource: "temp", params: { interval: 1000 } });
    s.stream("temp", 500);
    const stop = decodeIotmpFrame(link.frames.at(-2)!, 2);
    expect(stop).to.deep.include({ type: IOTMP_TYPE.STOP_STREAM, streamId: first.streamId });
    const second = out();
    expect(second.streamId).to.not.equal(first.streamId);
    const data = (m: IotmpMessage) => frameOf(encodeIotmpMessage(m, 2));
    s.handleFrame(data({ type: IOTMP_TYPE.STREAM_DATA, streamId: first.streamId!, payload: 1 }));
    s.handleFrame(data({ type: IOTMP_TYPE.STREAM_DATA, streamId: second.streamId!, payload: { v: 2 } }));
    expect(ev.data).to.deep.equal([["temp", { v: 2 }]]);
    const call = s.call("boom", undefined, false, 5_000);
    const run = out();
    s.handleFrame(data({ type: IOTMP_TYPE.ERROR, streamId: run.streamId!, payload: { error: "sensor failure" }, params: 503 }));
    const err = (await call.catch((e: AppError) => e)) as AppError;
    expect(err.code).to.equal("device_error");
    expect(err.status).to.equal(503);
    expect(err.message).to.equal("sensor failure");
  });

  it("device numbers narrowed to float32 read as the decimal the sketch wrote; bytes as base64; integers untouched", () => {
    expect(tidyNumbers(Math.fround(41.65))).to.equal(41.65);
    expect(tidyNumbers({ a: [Math.fround(0.1), 3, 2 ** 40 + 0.5] })).to.deep.equal({ a: [0.1, 3, 2 ** 40 + 0.5] });
    expect(tidyNumbers(3.141592653589793)).to.equal(3.141592653589793);
    expect(tidyNumbers(Uint8Array.of(1, 2, 3))).to.equal("AQID");
  });
});

describe("Thinger sessions (unit): device requests", () => {
  /** A handler whose answers the test releases one by one; `served(n)` resolves once `n` requests reached it. */
  function held() {
    const waiting: Array<(a: DeviceAnswer) => void> = [];
    const seen: DeviceRequest[] = [];
    const asked = new EventEmitter();
    const handler: DeviceRequestHandler = {
      answer(_u, _d, r) {
        seen.push(r);
        const answer = new Promise<DeviceAnswer>((resolve) => waiting.push(resolve));
        asked.emit("request");
        return answer;
      },
    };
    const served = (n: number, what: string) => whenState(asked, "request", () => waiting.length === n, 1000, what);
    return { handler, waiting, seen, served };
  }

  it("serves property requests one at a time in arrival order; past maxInflight waiting ones the answer is an error at once", async () => {
    const link = new FakeLink();
    const h = held();
    const s = new LegacySession("alice", "dev1", link, { ...options(events()), limits: { maxInflight: 2, maxBufferedBytes: 1 << 20 }, requests: h.handler });
    s.handleFrame(legacyIn({ streamId: 1, flag: LEGACY_FLAG.GET_PROPERTY, identifier: "a" }));
    s.handleFrame(legacyIn({ streamId: 2, flag: LEGACY_FLAG.SET_PROPERTY, identifier: "b", payload: 3 }));
    s.handleFrame(legacyIn({ streamId: 3, flag: LEGACY_FLAG.GET_PROPERTY, identifier: "c" }));
    // The third is over the bound: refused at once; the first two wait.
    expect(link.frames.map(legacyOut)).to.deep.equal([{ streamId: 3, flag: LEGACY_FLAG.REQUEST_ERROR }]);
    await h.served(1, "first request served");
    expect(h.seen).to.deep.equal([{ op: "get_property", name: "a" }]);
    h.waiting[0]!({ ok: true, payload: 21.5 });
    await h.served(2, "second request served");
    expect(h.seen[1]).to.deep.equal({ op: "set_property", name: "b", value: 3 });
    h.waiting[1]!({ ok: false, error: "nope" });
    await link.framesWritten(3, "answers");
    expect(link.frames.slice(1).map(legacyOut)).to.deep.equal([
      { streamId: 1, flag: LEGACY_FLAG.REQUEST_OK, payload: 21.5 },
      { streamId: 2, flag: LEGACY_FLAG.REQUEST_ERROR },
    ]);
    s.markClosed();
  });

  it("a session closed while a request is served sends nothing after; IOTMP errors carry the reason", async () => {
    const link = new FakeLink();
    const h = held();
    const s = new IotmpSession("alice", "dev1", link, { ...options(events()), requests: h.handler }, 2);
    const iotmpIn = (m: IotmpMessage) => frameOf(encodeIotmpMessage(m, 2));
    s.handleFrame(iotmpIn({ type: IOTMP_TYPE.RUN, streamId: 9, params: 1, resource: "p" }));
    await h.served(1, "request served");
    expect(h.seen[0]).to.deep.equal({ op: "get_property", name: "p" });
    h.waiting[0]!({ ok: false, error: "no such property" });
    await link.framesWritten(1, "answer");
    expect(decodeIotmpFrame(link.frames[0]!, 2)).to.deep.equal({ type: IOTMP_TYPE.ERROR, streamId: 9, payload: { error: "no such property" } });
    s.handleFrame(iotmpIn({ type: IOTMP_TYPE.RUN, streamId: 10, resource: 2, params: "p", payload: "v" }));
    await h.served(2, "second request served");
    s.markClosed();
    h.waiting[1]!({ ok: true });
    await new Promise((r) => setImmediate(r));
    expect(link.frames).to.have.length(1);
  });
});
