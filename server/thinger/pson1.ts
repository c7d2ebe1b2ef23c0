/**
 * Legacy PSON ("protoson", PSON v1): the value encoding of the legacy Thinger protocol and of IOTMP wire type 1.
 * THINGER-PROTOCOL §2.3. Each value starts with a one-byte tag `(type << 3) | wire`; containers carry the
 * BYTE length of their content.
 *
 * Encoding reproduces the C++ clients and the Thinger server byte for byte: integral numbers as integers
 * (0 → `38`, 1 → `40`, else `08`/`10` + magnitude), other numbers as float32 when within 1e-5 of their float32
 * value (precision is lost, as with the real server), else float64; "" → `50`; empty bytes → `60`; `{}` → `6A 00`.
 *
 * "Empty" (`78`, a pson that was never assigned) has no JSON form. {@link decodePson1} returns `undefined` for it
 * at the top level; inside an object the key is left out, inside an array the item becomes `null` (positions
 * are kept). {@link encodePson1} writes `78` for a top-level `undefined`.
 */
import { ByteReader, ByteWriter, setKey, utf8 } from "./bytes.js";
import { MAX_PSON_DEPTH, MAX_U32, ThingerCodecError } from "./limits.js";
import { isPsonObject, type PsonValue } from "./pson-value.js";

export type { PsonValue } from "./pson-value.js";

/** Legacy PSON tags (type << 3 | wire). */
export const PSON1_TAG = {
  NULL: 0x00,
  VARINT: 0x08,
  SVARINT: 0x10,
  FLOAT: 0x1d,
  DOUBLE: 0x21,
  TRUE: 0x28,
  FALSE: 0x30,
  ZERO: 0x38,
  ONE: 0x40,
  STRING: 0x4a,
  EMPTY_STRING: 0x50,
  BYTES: 0x5a,
  EMPTY_BYTES: 0x60,
  OBJECT: 0x6a,
  ARRAY: 0x72,
  EMPTY: 0x78,
} as const;

/** Marker for a decoded "empty" (`78`) while walking containers. */
const EMPTY = Symbol("pson-empty");

/** Encodes one value (a top-level `undefined` becomes "empty", `78`). Throws ThingerCodecError on what PSON cannot carry. */
export function encodePson1(v: PsonValue | undefined): Uint8Array {
  const w = new ByteWriter();
  writePson1(w, v, 0);
  return w.finish();
}

/** Decodes exactly one value filling `buf`; `undefined` for "empty" (`78`). */
export function decodePson1(buf: Uint8Array): PsonValue | undefined {
  const r = new ByteReader(buf);
  const v = readPson1(r);
  if (r.pos !== r.end) throw new ThingerCodecError("trailing_bytes", `${r.end - r.pos} bytes after the value`);
  return v;
}

/** Reads one value at the reader's position (used by the frame layers); `undefined` for "empty". */
export function readPson1(r: ByteReader): PsonValue | undefined {
  const v = readValue(r, 0);
  return v === EMPTY ? undefined : v;
}

/** Writes one value at the writer's end (used by the frame layers). */
export function writePson1(w: ByteWriter, v: PsonValue | undefined, depth: number): void {
  if (v === undefined) {
    if (depth > 0) throw new ThingerCodecError("bad_value", "undefined inside a container");
    w.byte(PSON1_TAG.EMPTY);
    return;
  }
  writeValue(w, v, depth);
}

function writeValue(w: ByteWriter, v: PsonValue, depth: number): void {
  if (v === null) return w.byte(PSON1_TAG.NULL);
  switch (typeof v) {
    case "boolean":
      return w.byte(v ? PSON1_TAG.TRUE : PSON1_TAG.FALSE);
    case "number":
      return writeNumber(w, v);
    case "string": {
      if (v.length === 0) return w.byte(PSON1_TAG.EMPTY_STRING);
      const b = utf8(v);
      w.byte(PSON1_TAG.STRING);
      w.varint(b.length);
      return w.bytes(b);
    }
    case "object":
      break;
    default:
      throw new ThingerCodecError("bad_value", `cannot encode a ${typeof v} as PSON`);
  }
  if (v instanceof Uint8Array) {
    if (v.length === 0) return w.byte(PSON1_TAG.EMPTY_BYTES);
    w.byte(PSON1_TAG.BYTES);
    w.varint(v.length);
    return w.bytes(v);
  }
  if (depth >= MAX_PSON_DEPTH) throw new ThingerCodecError("too_deep", `value nested deeper than ${MAX_PSON_DEPTH} levels`);
  // The container's byte length comes first, so its content is encoded aside.
  const inner = new ByteWriter();
  if (Array.isArray(v)) {
    // JSON semantics: a hole or undefined item is null.
    for (const item of v) writeValue(inner, item === undefined ? null : item, depth + 1);
    w.byte(PSON1_TAG.ARRAY);
  } else if (isPsonObject(v)) {
    for (const key of Object.keys(v)) {
      const item = v[key];
      if (item === undefined) continue; // JSON semantics: an undefined member is left out
      const k = utf8(key);
      inner.varint(k.length);
      inner.bytes(k);
      writeValue(inner, item, depth + 1);
    }
    w.byte(PSON1_TAG.OBJECT);
  } else {
    throw new ThingerCodecError("bad_value", "cannot encode this object as PSON");
  }
  w.varint(inner.length);
  w.bytes(inner.finish());
}

/** The C++ `pson::operator=(double)` rule (THINGER-PROTOCOL §2.3). */
function writeNumber(w: ByteWriter, v: number): void {
  if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
    if (v === 0) return w.byte(PSON1_TAG.ZERO); // also -0
    if (v === 1) return w.byte(PSON1_TAG.ONE);
    w.byte(v > 0 ? PSON1_TAG.VARINT : PSON1_TAG.SVARINT);
    return w.varint(Math.abs(v));
  }
  const f = Math.fround(v);
  if (Math.abs(v - f) <= 0.00001) {
    w.byte(PSON1_TAG.FLOAT);
    return w.f32(f);
  }
  w.byte(PSON1_TAG.DOUBLE);
  w.f64(v);
}

function readValue(r: ByteReader, depth: number): PsonValue | typeof EMPTY {
  const tag = r.byte();
  switch (tag) {
    case PSON1_TAG.NULL:
      return null;
    case PSON1_TAG.VARINT:
      return r.varint();
    case PSON1_TAG.SVARINT: {
      const m = r.varint();
      return m === 0 ? 0 : -m;
    }
    case PSON1_TAG.FLOAT:
      return r.f32();
    case PSON1_TAG.DOUBLE:
      return r.f64();
    case PSON1_TAG.TRUE:
      return true;
    case PSON1_TAG.FALSE:
      return false;
    case PSON1_TAG.ZERO:
      return 0;
    case PSON1_TAG.ONE:
      return 1;
    case PSON1_TAG.STRING:
      return r.string(length(r));
    case PSON1_TAG.EMPTY_STRING:
      return "";
    case PSON1_TAG.BYTES:
      return r.take(length(r)).slice();
    case PSON1_TAG.EMPTY_BYTES:
      return new Uint8Array(0);
    case PSON1_TAG.OBJECT:
    case PSON1_TAG.ARRAY:
      return readContainer(r, tag, depth + 1);
    case PSON1_TAG.EMPTY:
      return EMPTY;
    default:
      throw new ThingerCodecError("bad_tag", `unknown legacy PSON tag 0x${tag.toString(16).padStart(2, "0")}`);
  }
}

/** A byte length, checked against the bytes left before anything is allocated. */
function length(r: ByteReader): number {
  const n = r.varint(5, MAX_U32);
  if (n > r.remaining) throw new ThingerCodecError("bad_length", `length ${n} exceeds the ${r.remaining} bytes left`);
  return n;
}

function readContainer(r: ByteReader, tag: number, depth: number): PsonValue {
  if (depth > MAX_PSON_DEPTH) throw new ThingerCodecError("too_deep", `value nested deeper than ${MAX_PSON_DEPTH} levels`);
  const n = length(r);
  const outerEnd = r.end;
  r.end = r.pos + n; // items cannot read past the container's stated extent
  try {
    if (tag === PSON1_TAG.ARRAY) {
      const out: PsonValue[] = [];
      while (r.pos < r.end) {
        const item = readValue(r, depth);
        out.push(item === EMPTY ? null : item);
      }
      return out;
    }
    const out: { [k: string]: PsonValue } = {};
    while (r.pos < r.end) {
      const key = r.string(length(r));
      const item = readValue(r, depth);
      if (item !== EMPTY) setKey(out, key, item);
    }
    return out;
  } finally {
    r.end = outerEnd;
  }
}
