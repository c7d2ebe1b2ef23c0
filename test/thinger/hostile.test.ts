/**
 * Hostile input: every malformed shape the reference warns about (wrong container lengths, huge varints,
 * deep nesting, truncation, oversize frames, bad UTF-8, unknown tags and fields) throws ThingerCodecError with
 * a stable reason — never another error, never a hang or an allocation sized by the attacker.
 */
import { expect } from "chai";
import {
  FrameReader,
  MAX_FRAME_BYTES,
  ThingerCodecError,
  decodeIotmpBody,
  decodeIotmpFrame,
  decodeLegacyBody,
  decodeLegacyFrame,
  decodePson1,
  decodePson2,
  encodeIotmpMessage,
  encodeLegacyMessage,
  encodePson1,
  encodePson2,
  type PsonValue,
  type ThingerCodecErrorReason,
} from "../../server/thinger/index.js";
import { bytes } from "./vectors.js";

function refused(fn: () => unknown, reason: ThingerCodecErrorReason): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, "expected a ThingerCodecError").to.be.instanceOf(ThingerCodecError);
  expect((caught as ThingerCodecError).reason).to.equal(reason);
}

function nested(depth: number, open: number[], leaf: number[]): Uint8Array {
  // Arrays of one item each, innermost first, for legacy PSON (byte lengths) — built from the inside out.
  let inner = Uint8Array.from(leaf);
  for (let i = 0; i < depth; i++) {
    const len = inner.length;
    const lenBytes: number[] = [];
    let n = len;
    do {
      lenBytes.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
    inner = Uint8Array.from([...open, ...lenBytes, ...inner]);
  }
  return inner;
}

function deepValue(depth: number): PsonValue {
  let v: PsonValue = 1;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

describe("thinger wire: hostile input", () => {
  describe("legacy PSON", () => {
    it("a container claiming more bytes than are left is refused", () => {
      refused(() => decodePson1(bytes('72 10 4a 02 "hi"')), "bad_length");
      refused(() => decodePson1(bytes("6a ff ff ff ff 0f 00")), "bad_length");
    });
    it("an item running past its container's stated length is refused", () => {
      refused(() => decodePson1(bytes('72 02 4a 05 "alice"')), "bad_length");
      refused(() => decodePson1(bytes("72 01 1d 00 00 ac 41")), "truncated");
    });
    it("a container shorter than its content leaves trailing bytes, which are refused", () => {
      refused(() => decodePson1(bytes('72 01 40 4a 02 "hi"')), "trailing_bytes");
    });
    it("a string length beyond the input is refused before allocating", () => {
      refused(() => decodePson1(bytes("4a ff ff ff ff 0f")), "bad_length");
      refused(() => decodePson1(bytes("5a 80 80 80 80 08 00")), "bad_length");
    });
    it("a varint longer than 8 bytes or above 2^53 - 1 is refused", () => {
      refused(() => decodePson1(bytes("08 ff ff ff ff ff ff ff ff ff 01")), "varint_too_long");
      refused(() => decodePson1(bytes("08 80 80 80 80 80 80 80 10")), "varint_too_large");
      expect(decodePson1(bytes("10 ff ff ff ff ff ff ff 0f"))).to.equal(-Number.MAX_SAFE_INTEGER);
    });
    it("nesting deeper than 32 is refused, even 2,000 levels deep (no stack overflow)", () => {
      expect(decodePson1(nested(32, [0x72], [0x40]))).to.deep.equal(deepValue(32));
      refused(() => decodePson1(nested(33, [0x72], [0x40])), "too_deep");
      refused(() => decodePson1(nested(2000, [0x72], [0x40])), "too_deep");
    });
    it("unknown tags, multi-byte tags and invalid UTF-8 are refused", () => {
      refused(() => decodePson1(bytes("80 01")), "bad_tag");
      refused(() => decodePson1(bytes("7a")), "bad_tag");
      refused(() => decodePson1(bytes("4a 02 c3 28")), "utf8");
      refused(() => decodePson1(bytes("6a 04 02 ff fe 40")), "utf8");
    });
    it("truncated values are refused", () => {
      for (const v of ["1d 00 00", "21 00", "4a 05 61", "08 80", ""]) refused(() => decodePson1(bytes(v)), v === "4a 05 61" ? "bad_length" : "truncated");
    });
    it("a __proto__ key becomes an own property and pollutes nothing", () => {
      const v = decodePson1(bytes('6a 0f 09 "__proto__" 6a 03 01 "x" 40')) as Record<string, unknown>;
      expect(Object.keys(v)).to.deep.equal(["__proto__"]);
      expect(Object.getPrototypeOf(v)).to.equal(Object.prototype);
      expect(({} as Record<string, unknown>).x).to.equal(undefined);
    });
    it("the encoder refuses what PSON cannot carry", () => {
      refused(() => encodePson1(deepValue(33)), "too_deep");
      refused(() => encodePson1((() => 1) as unknown as PsonValue), "bad_value");
      refused(() => encodePson1(new Date() as unknown as PsonValue), "bad_value");
      const cyclic: PsonValue[] = [];
      cyclic.push(cyclic);
      refused(() => encodePson1(cyclic), "too_deep");
    });
  });

  describe("PSON v2", () => {
    it("a count larger than the bytes left is refused before allocating", () => {
      refused(() => decodePson2(bytes("ff ff ff ff ff 0f")), "bad_length"); // array of 2^32 - 1
      refused(() => decodePson2(bytes("df ff ff ff 7f 80 00")), "bad_length"); // map needs ≥ 2 bytes a pair
      refused(() => decodePson2(bytes("9f 80 80 04 61")), "bad_length");
    });
    it("a header varint longer than 5 bytes is refused, value varints above 2^53 - 1 too", () => {
      refused(() => decodePson2(bytes("ff 80 80 80 80 80 01")), "varint_too_long");
      refused(() => decodePson2(bytes("1f 80 80 80 80 80 80 80 10")), "varint_too_large");
      expect(decodePson2(bytes("3f ff ff ff ff ff ff ff 0f"))).to.equal(-Number.MAX_SAFE_INTEGER);
    });
    it("nesting deeper than 32 is refused, even 100,000 levels deep", () => {
      const ok = new Uint8Array(33).fill(0xe1);
      ok[32] = 0x01;
      expect(decodePson2(ok)).to.deep.equal(deepValue(32));
      const deep = new Uint8Array(34).fill(0xe1);
      deep[33] = 0x01;
      refused(() => decodePson2(deep), "too_deep");
      refused(() => decodePson2(new Uint8Array(100_000).fill(0xe1)), "too_deep");
    });
    it("reserved headers (floats 42-5F, discrete 63-7F) and non-string map keys are refused", () => {
      refused(() => decodePson2(bytes("42 00 00 00 00")), "bad_tag");
      refused(() => decodePson2(bytes("63")), "bad_tag");
      refused(() => decodePson2(bytes("c1 01 01")), "bad_tag");
    });
    it("truncated values and trailing bytes are refused", () => {
      refused(() => decodePson2(bytes("40 00 00")), "truncated");
      refused(() => decodePson2(bytes("e1 40 00")), "truncated");
      refused(() => decodePson2(bytes("e2 01")), "bad_length");
      refused(() => decodePson2(bytes("01 01")), "trailing_bytes");
    });
    it("the encoder refuses undefined and too-deep values", () => {
      refused(() => encodePson2(undefined as unknown as PsonValue), "bad_value");
      refused(() => encodePson2(deepValue(33)), "too_deep");
    });
  });

  describe("frames", () => {
    it("a frame declaring more than 256 KiB is refused as soon as its header arrives", () => {
      const reader = new FrameReader({ maxFrameBytes: MAX_FRAME_BYTES });
      expect(reader.push(bytes("01 80 80 10"))).to.deep.equal([]); // exactly 256 KiB: wait for the body
      const big = new FrameReader({ maxFrameBytes: MAX_FRAME_BYTES });
      refused(() => big.push(bytes("01 81 80 10")), "frame_too_large");
      refused(() => big.push(bytes("00")), "truncated"); // a failed reader stays failed
    });
    it("a 256 KiB frame arriving in 1 KiB pieces is assembled, holding no more than one frame", () => {
      const reader = new FrameReader({ maxFrameBytes: MAX_FRAME_BYTES });
      const body = new Uint8Array(MAX_FRAME_BYTES).fill(7);
      const wire = Uint8Array.from([0x01, 0x80, 0x80, 0x10, ...body, 0x02, 0x00]);
      const frames = [];
      let peak = 0;
      for (let i = 0; i < wire.length; i += 1024) {
        frames.push(...reader.push(wire.subarray(i, i + 1024)));
        peak = Math.max(peak, reader.bufferedBytes);
      }
      expect(frames.map((f) => [f.type, f.body.length])).to.deep.equal([
        [1, MAX_FRAME_BYTES],
        [2, 0],
      ]);
      expect(peak).to.be.at.most(MAX_FRAME_BYTES + 4);
    });
    it("header varints longer than 5 bytes are refused even before they end", () => {
      refused(() => new FrameReader().push(bytes("81 80 80 80 80")), "varint_too_long");
      refused(() => new FrameReader().push(bytes("01 ff ff ff ff ff 01")), "varint_too_long");
    });
    it("a header above 2^32 - 1 is refused", () => {
      refused(() => new FrameReader().push(bytes("ff ff ff ff 1f 00")), "varint_too_large");
    });
    it("types outside the allowed list are refused", () => {
      refused(() => new FrameReader({ types: [1, 2] }).push(bytes("03 00")), "frame_type");
      refused(() => decodeLegacyFrame({ type: 3, body: new Uint8Array(0) }), "frame_type");
      refused(() => decodeIotmpFrame({ type: 0x80, body: new Uint8Array(0) }), "frame_type");
    });
    it("a truncated frame just waits; the encoders refuse bodies over 256 KiB", () => {
      const reader = new FrameReader();
      expect(reader.push(bytes("01 0b 08 02 26 72 06 4a"))).to.deep.equal([]);
      expect(reader.bufferedBytes).to.equal(8);
      const huge = "x".repeat(MAX_FRAME_BYTES);
      refused(() => encodeLegacyMessage({ streamId: 1, payload: huge }), "frame_too_large");
      refused(() => encodeIotmpMessage({ type: 1, streamId: 1, payload: huge }, 2), "frame_too_large");
    });
    it("keep-alives with a body are refused", () => {
      refused(() => decodeLegacyFrame({ type: 2, body: bytes("00") }), "bad_length");
      refused(() => decodeIotmpFrame({ type: 5, body: bytes("08 01") }), "bad_length");
    });
  });

  describe("legacy messages", () => {
    it("a stream id above u16 is refused", () => {
      refused(() => decodeLegacyBody(bytes("08 80 80 04")), "bad_field");
      refused(() => encodeLegacyMessage({ streamId: 65536 }), "bad_field");
    });
    it("an unknown PSON field (wire 6) and wire types 3, 4, 7 are refused; wires 0, 1, 2, 5 are skipped", () => {
      refused(() => decodeLegacyBody(bytes("2e 40")), "bad_field");
      refused(() => decodeLegacyBody(bytes("0b")), "bad_field");
      expect(decodeLegacyBody(bytes("28 05 29 00 00 00 00 00 00 00 00 2a 02 00 00 2d 00 00 00 00 08 03"))).to.deep.equal({ streamId: 3 });
      refused(() => decodeLegacyBody(bytes("2a 05 00")), "bad_length");
    });
    it('"empty" (78) in a field means the field is absent', () => {
      expect(decodeLegacyBody(bytes("08 01 10 01 36 78"))).to.deep.equal({ streamId: 1, flag: 1 });
    });
  });

  describe("IOTMP messages", () => {
    it("the other dialect's PSON wire type is refused", () => {
      refused(() => decodeIotmpBody(bytes("1a 01"), 1), "bad_field");
      refused(() => decodeIotmpBody(bytes("19 40"), 2), "bad_field");
      refused(() => decodeIotmpBody(bytes("19 40 12 01")), "bad_field"); // mixed in one body
    });
    it("unknown fields, wire types and multi-byte keys are refused", () => {
      refused(() => decodeIotmpBody(bytes("28 01")), "bad_field");
      refused(() => decodeIotmpBody(bytes("0d 00 00 00 00")), "bad_field");
      refused(() => decodeIotmpBody(bytes("88 01 01")), "bad_field");
      refused(() => decodeIotmpBody(bytes("09 00")), "bad_field"); // stream id must be wire 0
    });
    it("stream ids above u16 and wire-0 varints above 10 bytes are refused", () => {
      refused(() => decodeIotmpBody(bytes("08 80 80 04")), "bad_field");
      refused(() => decodeIotmpBody(bytes("18 ff ff ff ff ff ff ff ff ff ff 01")), "varint_too_long");
    });
    it("wire-0 values are read as int64: IOTMP-Linux 1.3 sends -5 as 2^64 - 5", () => {
      expect(decodeIotmpBody(bytes("18 fb ff ff ff ff ff ff ff ff 01"), 1)).to.deep.equal({ type: 0, payload: -5 });
      refused(() => decodeIotmpBody(bytes("18 80 80 80 80 80 80 80 80 10"), 1), "varint_too_large");
    });
  });
});
