/**
 * Byte reader and writer shared by the PSON codecs and the frame layers: protobuf-style base-128 varints
 * (little-endian groups of 7 bits, high bit = "more"), little-endian floats, strict UTF-8. Varints are read
 * with an explicit byte cap and value cap, so no input can make a loop run long or a number lose precision.
 */
import { MAX_VALUE_VARINT_BYTES, ThingerCodecError } from "./limits.js";

const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** UTF-8 bytes of a string (lone surrogates become U+FFFD, as everywhere JSON meets UTF-8 in Node). */
export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** Cursor over a byte array; `end` can be narrowed to a container's extent and restored. */
export class ByteReader {
  pos: number;
  end: number;
  private view: DataView | undefined;

  constructor(
    readonly buf: Uint8Array,
    pos = 0,
    end = buf.length,
  ) {
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  byte(): number {
    if (this.pos >= this.end) throw new ThingerCodecError("truncated", "input ends inside a value");
    return this.buf[this.pos++]!;
  }

  /**
   * A varint of at most `maxBytes` bytes whose value is at most `max`. Values beyond 2^53 cannot be compared
   * exactly, but rounding is monotonic, so anything above `max` (≤ 2^53 − 1) is still refused.
   */
  varint(maxBytes: number = MAX_VALUE_VARINT_BYTES, max: number = Number.MAX_SAFE_INTEGER): number {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < maxBytes; i++) {
      if (this.pos >= this.end) throw new ThingerCodecError("truncated", "input ends inside a varint");
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (value > max) throw new ThingerCodecError("varint_too_large", `varint ${value} exceeds ${max}`);
        return value;
      }
      mul *= 128;
    }
    throw new ThingerCodecError("varint_too_long", `varint longer than ${maxBytes} bytes`);
  }

  /** `n` bytes as a view into the input (callers copy what they keep). */
  take(n: number): Uint8Array {
    if (n > this.end - this.pos) throw new ThingerCodecError("bad_length", `length ${n} exceeds the ${this.end - this.pos} bytes left`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A UTF-8 string of `n` bytes, decoded strictly (invalid UTF-8 throws; a leading BOM is kept). */
  string(n: number): string {
    const bytes = this.take(n);
    if (n === 0) return "";
    try {
      return utf8Decoder.decode(bytes);
    } catch {
      throw new ThingerCodecError("utf8", "string is not valid UTF-8");
    }
  }

  f32(): number {
    const v = this.dataView().getFloat32(this.check(4), true);
    return v;
  }

  f64(): number {
    return this.dataView().getFloat64(this.check(8), true);
  }

  private check(n: number): number {
    if (n > this.end - this.pos) throw new ThingerCodecError("truncated", "input ends inside a float");
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private dataView(): DataView {
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    return this.view;
  }
}

/** Growable output buffer. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  length = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
    this.view = new DataView(this.buf.buffer);
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** A non-negative safe integer as a varint (at most 8 bytes). */
  varint(n: number): void {
    this.ensure(10);
    while (n >= 0x80) {
      this.buf[this.length++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.buf[this.length++] = n;
  }

  /** A 64-bit unsigned varint (up to 10 bytes), for reproducing clients that send two's-complement values. */
  varint64(n: bigint): void {
    this.ensure(10);
    let v = BigInt.asUintN(64, n);
    while (v >= 0x80n) {
      this.buf[this.length++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.length++] = Number(v);
  }

  f32(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }

  /** The bytes written so far (a copy sized to fit). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Bytes a varint of `n` takes. */
export function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Sets a key on a plain object without ever touching a prototype (`__proto__` becomes an own property). */
export function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Lowercase hex of bytes, space-separated (test and log helper). */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
