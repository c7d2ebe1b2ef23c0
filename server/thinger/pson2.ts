/**
 * PSON v2: the value encoding of IOTMP wire type 2 (IOTMP-Linux since 2026-02, IOTMP-Embedded).
 * THINGER-PROTOCOL §3.5. A header byte holds the type in its top 3 bits and an inline value in its low 5;
 * inline 0x1F means "a varint follows". Maps and arrays carry a COUNT (pairs / items), not a byte length.
 *
 * Encoding follows the C++ encoder: integral numbers as integers (unsigned / negative magnitude), other
 * numbers as float32 when that is exact, else float64. Object keys are written in the object's own order
 * (the Linux client sorts them; the order carries no meaning).
 */
import { ByteReader, ByteWriter, setKey, utf8 } from "./bytes.js";
import { MAX_PSON_DEPTH, MAX_U32, ThingerCodecError } from "./limits.js";
import { isPsonObject, type PsonValue } from "./pson-value.js";

export type { PsonValue } from "./pson-value.js";

/** PSON v2 types (the top 3 bits of the header). */
export const PSON2_TYPE = {
  UNSIGNED: 0,
  NEGATIVE: 1,
  FLOAT: 2,
  DISCRETE: 3,
  STRING: 4,
  BYTES: 5,
  MAP: 6,
  ARRAY: 7,
} as const;

const INLINE_MAX = 0x1e;
const FOLLOWS = 0x1f;

/** Encodes one value. Throws ThingerCodecError on what PSON cannot carry (undefined, functions, too deep). */
export function encodePson2(v: PsonValue): Uint8Array {
  const w = new ByteWriter();
  writePson2(w, v, 0);
  return w.finish();
}

/** Decodes exactly one value filling `buf`. */
export function decodePson2(buf: Uint8Array): PsonValue {
  const r = new ByteReader(buf);
  const v = readPson2(r);
  if (r.pos !== r.end) throw new ThingerCodecError("trailing_bytes", `${r.end - r.pos} bytes after the value`);
  return v;
}

/** Reads one value at the reader's position (used by the frame layer). */
export function readPson2(r: ByteReader): PsonValue {
  return readValue(r, 0);
}

function header(w: ByteWriter, type: number, value: number): void {
  if (value <= INLINE_MAX) return w.byte((type << 5) | value);
  w.byte((type << 5) | FOLLOWS);
  w.varint(value);
}

/** Writes one value at the writer's end (used by the frame layer). */
export function writePson2(w: ByteWriter, v: PsonValue, depth: number): void {
  if (v === null) return w.byte(0x62);
  switch (typeof v) {
    case "boolean":
      return w.byte(v ? 0x61 : 0x60);
    case "number":
      return writeNumber(w, v);
    case "string": {
      const b = utf8(v);
      header(w, PSON2_TYPE.STRING, b.length);
      return w.bytes(b);
    }
    case "object":
      break;
    default:
      throw new ThingerCodecError("bad_value", `cannot encode a ${typeof v} as PSON`);
  }
  if (v instanceof Uint8Array) {
    header(w, PSON2_TYPE.BYTES, v.length);
    return w.bytes(v);
  }
  if (depth >= MAX_PSON_DEPTH) throw new ThingerCodecError("too_deep", `value nested deeper than ${MAX_PSON_DEPTH} levels`);
  if (Array.isArray(v)) {
    header(w, PSON2_TYPE.ARRAY, v.length);
    // JSON semantics: a hole or undefined item is null.
    for (const item of v) writePson2(w, item === undefined ? null : item, depth + 1);
    return;
  }
  if (!isPsonObject(v)) throw new ThingerCodecError("bad_value", "cannot encode this object as PSON");
  const keys = Object.keys(v).filter((k) => v[k] !== undefined); // JSON semantics: undefined members are left out
  header(w, PSON2_TYPE.MAP, keys.length);
  for (const key of keys) {
    const k = utf8(key);
    header(w, PSON2_TYPE.STRING, k.length);
    w.bytes(k);
    writePson2(w, v[key]!, depth + 1);
  }
}

function writeNumber(w: ByteWriter, v: number): void {
  if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
    return v < 0 ? header(w, PSON2_TYPE.NEGATIVE, -v) : header(w, PSON2_TYPE.UNSIGNED, Math.abs(v));
  }
  if (Math.fround(v) === v) {
    w.byte(0x40);
    return w.f32(v);
  }
  w.byte(0x41);
  w.f64(v);
}

/** The header's value: inline, or the varint that follows (a value varint, or a u32 length/count). */
function headerValue(r: ByteReader, inline: number, maxBytes: number, max: number): number {
  return inline < FOLLOWS ? inline : r.varint(maxBytes, max);
}

function readValue(r: ByteReader, depth: number): PsonValue {
  const h = r.byte();
  const type = h >> 5;
  const inline = h & 0x1f;
  switch (type) {
    case PSON2_TYPE.UNSIGNED:
      return headerValue(r, inline, 8, Number.MAX_SAFE_INTEGER);
    case PSON2_TYPE.NEGATIVE: {
      const m = headerValue(r, inline, 8, Number.MAX_SAFE_INTEGER);
      return m === 0 ? 0 : -m;
    }
    case PSON2_TYPE.FLOAT:
      if (inline === 0) return r.f32();
      if (inline === 1) return r.f64();
      break;
    case PSON2_TYPE.DISCRETE:
      if (inline === 0) return false;
      if (inline === 1) return true;
      if (inline === 2) return null;
      break;
    case PSON2_TYPE.STRING:
      return r.string(length(r, inline, 1));
    case PSON2_TYPE.BYTES:
      return r.take(length(r, inline, 1)).slice();
    case PSON2_TYPE.MAP: {
      if (depth + 1 > MAX_PSON_DEPTH) throw tooDeep();
      const n = length(r, inline, 2); // a pair takes at least 2 bytes
      const out: { [k: string]: PsonValue } = {};
      for (let i = 0; i < n; i++) {
        const kh = r.byte();
        if (kh >> 5 !== PSON2_TYPE.STRING) throw new ThingerCodecError("bad_tag", "PSON v2 map key is not a string");
        const key = r.string(length(r, kh & 0x1f, 1));
        setKey(out, key, readValue(r, depth + 1));
      }
      return out;
    }
    case PSON2_TYPE.ARRAY: {
      if (depth + 1 > MAX_PSON_DEPTH) throw tooDeep();
      const n = length(r, inline, 1);
      const out: PsonValue[] = [];
      for (let i = 0; i < n; i++) out.push(readValue(r, depth + 1));
      return out;
    }
  }
  throw new ThingerCodecError("bad_tag", `unknown PSON v2 header 0x${h.toString(16).padStart(2, "0")}`);
}

/** A length or count, checked against the bytes left (each unit needs at least `unitBytes`) before allocating. */
function length(r: ByteReader, inline: number, unitBytes: number): number {
  const n = headerValue(r, inline, 5, MAX_U32);
  if (n * unitBytes > r.remaining) throw new ThingerCodecError("bad_length", `length ${n} exceeds the ${r.remaining} bytes left`);
  return n;
}

function tooDeep(): ThingerCodecError {
  return new ThingerCodecError("too_deep", `value nested deeper than ${MAX_PSON_DEPTH} levels`);
}
