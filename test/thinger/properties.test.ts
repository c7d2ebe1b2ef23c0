/**
 * Round-trip properties (fast-check) of both PSON dialects and both message layers, through the incremental
 * frame reader fed in random pieces. `FUZZ_RUNS` raises the number of runs (`npm run test:fuzz:thinger`).
 */
import { expect } from "chai";
import fc from "fast-check";
import {
  FrameReader,
  decodeIotmpFrame,
  decodeLegacyFrame,
  decodePson1,
  decodePson2,
  encodeIotmpMessage,
  encodeLegacyMessage,
  encodePson1,
  encodePson2,
  hex,
  type Frame,
} from "../../server/thinger/index.js";
import { iotmpMessage, legacyMessage, normalise1, normalise2, normaliseIotmp, normaliseLegacy, psonValue } from "./arbitraries.js";

const RUNS = Math.max(1, Math.min(Number(process.env.FUZZ_RUNS) || 200, 20_000));
const params = { numRuns: RUNS };

/** Feeds `bytes` to a reader cut at the given points. */
function readInPieces(bytes: Uint8Array, cuts: number[]): Frame[] {
  const reader = new FrameReader({ maxFrameBytes: 256 * 1024 });
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const frames: Frame[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    frames.push(...reader.push(bytes.slice(from, p)));
    from = p;
  }
  expect(reader.bufferedBytes).to.equal(0);
  return frames;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

describe("thinger wire: round-trip properties", function () {
  this.timeout(Math.max(20_000, RUNS * 20));

  // Float32 narrowing can turn a tiny double into an integral float (5e-324 → 0.0f, sent again as `38`), so for
  // legacy PSON the encoding is stable from the second round on rather than from the first.
  it("legacy PSON: decode(encode(v)) is v with float32 narrowing, and the encoding is then stable", () => {
    fc.assert(
      fc.property(psonValue, (v) => {
        const back = decodePson1(encodePson1(v));
        expect(back).to.deep.equal(normalise1(v));
        const again = encodePson1(back);
        expect(hex(encodePson1(decodePson1(again)))).to.equal(hex(again));
      }),
      params,
    );
  });

  it("PSON v2: decode(encode(v)) is v exactly (-0 as 0), and re-encoding is byte-identical", () => {
    fc.assert(
      fc.property(psonValue, (v) => {
        const wire = encodePson2(v);
        const back = decodePson2(wire);
        expect(back).to.deep.equal(normalise2(v));
        expect(hex(encodePson2(back))).to.equal(hex(wire));
      }),
      params,
    );
  });

  it("legacy messages survive framing in random pieces", () => {
    fc.assert(
      fc.property(fc.array(legacyMessage, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (messages, cuts) => {
        const wires = messages.map(encodeLegacyMessage);
        const frames = readInPieces(concat(wires), cuts);
        expect(frames).to.have.length(messages.length);
        frames.forEach((f, i) => {
          const d = decodeLegacyFrame(f);
          expect(d).to.deep.equal({ kind: "message", message: normaliseLegacy(messages[i]!) });
          if (d.kind !== "message") return;
          const again = encodeLegacyMessage(d.message);
          const d2 = decodeLegacyFrame(readInPieces(again, [])[0]!);
          if (d2.kind === "message") expect(hex(encodeLegacyMessage(d2.message))).to.equal(hex(again));
        });
      }),
      params,
    );
  });

  for (const dialect of [1, 2] as const) {
    it(`IOTMP dialect ${dialect} messages survive framing in random pieces`, () => {
      fc.assert(
        fc.property(fc.array(iotmpMessage, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { maxLength: 8 }), (messages, cuts) => {
          const wires = messages.map((m) => encodeIotmpMessage(m, dialect));
          const frames = readInPieces(concat(wires), cuts);
          expect(frames).to.have.length(messages.length);
          frames.forEach((f, i) => {
            const d = decodeIotmpFrame(f, dialect);
            expect(d).to.deep.equal(normaliseIotmp(messages[i]!, dialect));
            if (dialect === 2) expect(hex(encodeIotmpMessage(d, dialect))).to.equal(hex(wires[i]!));
            const again = encodeIotmpMessage(d, dialect);
            expect(hex(encodeIotmpMessage(decodeIotmpFrame(readInPieces(again, [])[0]!, dialect), dialect))).to.equal(hex(again));
          });
        }),
        params,
      );
    });
  }
});
