/**
 * Fuzzing of every Thinger decoder: random bytes and mutated valid encodings (bytes flipped, inserted,
 * deleted, truncated). Each decoder must return or throw ThingerCodecError — anything else is a crash.
 * `npm test` runs a few hundred inputs per decoder; `npm run test:fuzz:thinger` runs 100,000 per decoder
 * (FUZZ_RUNS; FUZZ_SEED replays a run) and prints the figures.
 */
import { expect } from "chai";
import fc from "fast-check";
import {
  FrameReader,
  ThingerCodecError,
  decodeIotmpBody,
  decodeIotmpFrame,
  decodeLegacyBody,
  decodeLegacyFrame,
  decodePson1,
  decodePson2,
  detectIotmpDialect,
  encodeIotmpMessage,
  encodeLegacyBody,
  encodeLegacyMessage,
  encodePson1,
  encodePson2,
} from "../../server/thinger/index.js";
import { encodeIotmpBody } from "../../server/thinger/iotmp-frame.js";
import { iotmpMessage, legacyMessage, psonValue } from "./arbitraries.js";

const RUNS = Number.isInteger(Number(process.env.FUZZ_RUNS)) && Number(process.env.FUZZ_RUNS) > 0 ? Number(process.env.FUZZ_RUNS) : 300;
const SEED = Number.isSafeInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;

type Edit = { at: number; op: number; byte: number };

/** Applies byte edits: 0 set, 1 insert, 2 delete, 3 truncate, 4 flip one bit. */
function mutate(input: Uint8Array, edits: Edit[]): Uint8Array {
  const b = [...input];
  for (const { at, op, byte } of edits) {
    const i = b.length === 0 ? 0 : at % (b.length + (op === 1 ? 1 : 0));
    if (op === 0 && b.length > 0) b[i] = byte;
    else if (op === 1) b.splice(i, 0, byte);
    else if (op === 2) b.splice(i, 1);
    else if (op === 3) b.length = i;
    else if (b.length > 0) b[i]! ^= 1 << (byte & 7);
  }
  return Uint8Array.from(b);
}

const edits = fc.array(fc.record({ at: fc.nat(), op: fc.integer({ min: 0, max: 4 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 });

/** Random bytes half of the time; otherwise a valid encoding from `valid`, mutated. */
function inputs(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.tuple(valid, edits).map(([v, e]) => mutate(v, e)),
  );
}

const figures: string[] = [];

describe("thinger wire: fuzzing every decoder", function () {
  this.timeout(Math.max(30_000, RUNS * 10));
  after(() => {
    process.stdout.write(`\nTHINGER FUZZ: seed=${SEED} runs/decoder=${RUNS} | ${figures.join(" | ")}\n`);
  });

  function fuzz(name: string, valid: fc.Arbitrary<Uint8Array>, decode: (b: Uint8Array) => unknown): void {
    it(`${name}: returns or throws ThingerCodecError for every input`, () => {
      let refusedCount = 0;
      let crashes = 0;
      const started = process.hrtime.bigint();
      fc.assert(
        fc.property(inputs(valid), (b) => {
          try {
            decode(b);
          } catch (err) {
            if (err instanceof ThingerCodecError) {
              refusedCount++;
              return;
            }
            crashes++;
            throw err;
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true },
      );
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      figures.push(`${name} inputs=${RUNS} refused=${refusedCount} crashes=${crashes} ${ms.toFixed(0)}ms`);
      expect(crashes).to.equal(0);
    });
  }

  fuzz("pson1", psonValue.map(encodePson1), decodePson1);
  fuzz("pson2", psonValue.map(encodePson2), decodePson2);
  fuzz("legacy-body", legacyMessage.map(encodeLegacyBody), decodeLegacyBody);
  fuzz("iotmp1-body", iotmpMessage.map((m) => encodeIotmpBody(m, 1)), (b) => decodeIotmpBody(b, 1, 8));
  fuzz("iotmp2-body", iotmpMessage.map((m) => encodeIotmpBody(m, 2)), (b) => {
    detectIotmpDialect(b);
    return decodeIotmpBody(b, undefined, 7);
  });
  fuzz(
    "frame-stream",
    fc.oneof(legacyMessage.map(encodeLegacyMessage), iotmpMessage.map((m) => encodeIotmpMessage(m, 2))),
    (b) => {
      // Small cap so the oversize path is reached too; pieces of 3 bytes exercise the incremental header.
      const reader = new FrameReader({ maxFrameBytes: 64 });
      for (let i = 0; i < b.length; i += 3) {
        for (const f of reader.push(b.subarray(i, i + 3))) {
          if (b[0] === 0x01 || b[0] === 0x02) decodeLegacyFrame(f);
          else decodeIotmpFrame(f);
        }
      }
    },
  );
});
