/**
 * Every captured vector of THINGER-PROTOCOL round-trips byte for byte: device frames decode to the expected
 * message and re-encode to the same bytes; server frames are what our encoders produce.
 */
import { expect } from "chai";
import {
  FrameReader,
  IOTMP_KEEPALIVE,
  IOTMP_TYPE,
  LEGACY_FLAG,
  LEGACY_KEEPALIVE,
  decodeIotmpFrame,
  decodeLegacyFrame,
  decodePson2,
  detectIotmpDialect,
  detectProtocol,
  encodeIotmpMessage,
  encodeLegacyMessage,
  encodePson2,
  hex,
  type Frame,
  type IotmpMessage,
  type LegacyMessage,
} from "../../server/thinger/index.js";
import { IOTMP, LEGACY, VERSION } from "./vectors.js";

function oneFrame(bytes: Uint8Array): Frame {
  const frames = new FrameReader({ maxFrameBytes: 256 * 1024 }).push(bytes);
  expect(frames).to.have.length(1);
  return frames[0]!;
}

function legacy(bytes: Uint8Array): LegacyMessage {
  const f = decodeLegacyFrame(oneFrame(bytes));
  if (f.kind !== "message") throw new Error("expected a message");
  return f.message;
}

describe("thinger wire: captured legacy vectors (§2.4, §2.5, §2.9)", () => {
  const cases: Array<[string, Uint8Array, LegacyMessage]> = [
    ["AUTH", LEGACY.auth, { flag: LEGACY_FLAG.AUTH, resource: ["alice", "dev1", "s3cret"] }],
    ["auth accepted", LEGACY.authOk, { flag: LEGACY_FLAG.REQUEST_OK }],
    ["auth refused", LEGACY.authFail, { flag: LEGACY_FLAG.REQUEST_ERROR }],
    ["run output temp", LEGACY.runTemp, { streamId: 2, resource: ["temp"] }],
    ["temp = 21.5 as float32", LEGACY.runTempOk, { streamId: 2, flag: 1, payload: 21.5 }],
    ["write led = true", LEGACY.writeLed, { streamId: 7, resource: ["led"], payload: true }],
    ["OK without payload", LEGACY.writeLedOk, { streamId: 7, flag: 1 }],
    ["read input state via api", LEGACY.readLed, { streamId: 8, resource: ["led", "api"] }],
    ['{"in":true}', LEGACY.readLedOk, { streamId: 8, flag: 1, payload: { in: true } }],
    ["run sum", LEGACY.runSum, { streamId: 5, resource: ["sum"], payload: { value1: 2, value2: 40 } }],
    ['{"result":42}', LEGACY.runSumOk, { streamId: 5, flag: 1, payload: { result: 42 } }],
    ["error for an unknown resource", LEGACY.unknownError, { streamId: 9, flag: LEGACY_FLAG.REQUEST_ERROR }],
    ["START_STREAM 1000 ms", LEGACY.startStream, { streamId: 20, flag: LEGACY_FLAG.START_STREAM, resource: ["temp"], payload: 1000 }],
    ["stream OK", LEGACY.startStreamOk, { streamId: 20, flag: 1 }],
    ["stream sample", LEGACY.sample, { streamId: 20, flag: LEGACY_FLAG.STREAM_SAMPLE, payload: { out: 21.5 } }],
    ["STOP_STREAM", LEGACY.stopStream, { streamId: 20, flag: LEGACY_FLAG.STOP_STREAM, resource: ["temp"] }],
  ];
  for (const [name, wire, message] of cases) {
    it(`${name}: decodes and re-encodes byte for byte`, () => {
      expect(legacy(wire)).to.deep.equal(message);
      expect(hex(encodeLegacyMessage(message))).to.equal(hex(wire));
    });
  }

  it("keep-alive is 02 00 and decodes as a keep-alive", () => {
    expect(hex(LEGACY_KEEPALIVE)).to.equal(hex(LEGACY.keepAlive));
    expect(decodeLegacyFrame(oneFrame(LEGACY.keepAlive))).to.deep.equal({ kind: "keepalive" });
  });

  it("the first byte of AUTH says legacy", () => {
    expect(detectProtocol(LEGACY.auth[0]!)).to.equal("legacy");
  });
});

describe("thinger wire: captured IOTMP vectors (§3.4-§3.7)", () => {
  /** LX writes its unordered_map fields in these orders (as captured). */
  const PAYLOAD_FIRST = { fieldOrder: [3, 2, 1] } as const;
  const STREAM_FIRST = { fieldOrder: [1, 3] } as const;

  const cases: Array<[string, Uint8Array, IotmpMessage, typeof PAYLOAD_FIRST | typeof STREAM_FIRST | undefined]> = [
    ["CONNECT (device, id 17767)", IOTMP.connect, { type: IOTMP_TYPE.CONNECT, streamId: 17767, payload: ["alice", "dev1", "s3cret"] }, PAYLOAD_FIRST],
    ["CONNECT accepted", IOTMP.connectOk, { type: IOTMP_TYPE.OK, streamId: 17767 }, undefined],
    ["RUN version", IOTMP.runVersion, { type: IOTMP_TYPE.RUN, streamId: 3, resource: "version" }, undefined],
    ["OK with the raw output", IOTMP.runVersionOk, { type: IOTMP_TYPE.OK, streamId: 3, payload: VERSION }, PAYLOAD_FIRST],
    ["RUN nope", IOTMP.runNope, { type: IOTMP_TYPE.RUN, streamId: 4, resource: "nope" }, undefined],
    ["ERROR without payload", IOTMP.runNopeError, { type: IOTMP_TYPE.ERROR, streamId: 4 }, undefined],
    ["DESCRIBE", IOTMP.describe, { type: IOTMP_TYPE.DESCRIBE, streamId: 1 }, undefined],
    ["START_STREAM interval 1000", IOTMP.startStream, { type: IOTMP_TYPE.START_STREAM, streamId: 5, resource: "version", params: { interval: 1000 } }, undefined],
    ["stream OK", IOTMP.startStreamOk, { type: IOTMP_TYPE.OK, streamId: 5 }, undefined],
    ["STREAM_DATA (raw value)", IOTMP.streamData, { type: IOTMP_TYPE.STREAM_DATA, streamId: 5, payload: VERSION }, STREAM_FIRST],
    ["STOP_STREAM", IOTMP.stopStream, { type: IOTMP_TYPE.STOP_STREAM, streamId: 5 }, undefined],
    ["stop OK", IOTMP.stopStreamOk, { type: IOTMP_TYPE.OK, streamId: 5 }, undefined],
  ];
  for (const [name, wire, message, opts] of cases) {
    it(`${name}: decodes and re-encodes byte for byte`, () => {
      expect(decodeIotmpFrame(oneFrame(wire), 2)).to.deep.equal(message);
      expect(hex(encodeIotmpMessage(message, 2, opts))).to.equal(hex(wire));
    });
  }

  it("CONNECT: first byte says IOTMP, field 3 key 1A says dialect 2", () => {
    expect(detectProtocol(IOTMP.connect[0]!)).to.equal("iotmp");
    expect(detectIotmpDialect(oneFrame(IOTMP.connect).body)).to.equal(2);
  });

  it("a dialect-1 CONNECT (field 3 key 19, params 1) is detected as dialect 1", () => {
    const v1 = encodeIotmpMessage({ type: IOTMP_TYPE.CONNECT, streamId: 17767, params: 1, payload: ["alice", "dev1", "s3cret"] }, 1);
    const body = oneFrame(v1).body;
    expect(hex(body)).to.contain("19 72 15 4a 05");
    expect(detectIotmpDialect(body)).to.equal(1);
    expect(decodeIotmpFrame(oneFrame(v1), 1)).to.deep.equal({ type: 3, streamId: 17767, params: 1, payload: ["alice", "dev1", "s3cret"] });
  });

  it("keep-alive is 05 00", () => {
    expect(hex(IOTMP_KEEPALIVE)).to.equal(hex(IOTMP.keepAlive));
    expect(decodeIotmpFrame(oneFrame(IOTMP.keepAlive), 2)).to.deep.equal({ type: IOTMP_TYPE.KEEP_ALIVE });
  });

  it('PSON v2 {"interval":1000} = C1 88 "interval" 1F E8 07', () => {
    expect(hex(encodePson2({ interval: 1000 }))).to.equal(hex(IOTMP.intervalPson2));
    expect(decodePson2(IOTMP.intervalPson2)).to.deep.equal({ interval: 1000 });
  });

  it("the describe reply header (01 a7 02 1a ce …) waits for the rest of its 295-byte body", () => {
    const reader = new FrameReader({ maxFrameBytes: 256 * 1024 });
    expect(reader.push(Uint8Array.of(0x01, 0xa7, 0x02, 0x1a, 0xce))).to.deep.equal([]);
    expect(reader.bufferedBytes).to.equal(5);
  });
});
