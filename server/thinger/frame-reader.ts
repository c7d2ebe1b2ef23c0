/**
 * Framing shared by both Thinger protocols: `varint type`, `varint size`, then `size` bytes of body
 * (THINGER-PROTOCOL §2.1, §3.3). {@link FrameReader} cuts a byte stream (TCP, TLS) into frames incrementally,
 * refusing an oversize frame as soon as its header arrives, so at most one frame's bytes are ever buffered.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import { MAX_FRAME_BYTES, MAX_HEADER_VARINT_BYTES, MAX_U32, ThingerCodecError } from "./limits.js";

export interface Frame {
  type: number;
  body: Uint8Array;
}

export interface FrameReaderOptions {
  /** Largest body accepted, in bytes (default {@link MAX_FRAME_BYTES}, 256 KiB). */
  maxFrameBytes?: number;
  /** Frame types accepted; any other type throws as soon as it is read (default: any). */
  types?: readonly number[];
}

/** Which protocol a connection speaks, from its first byte: `01` legacy MESSAGE (AUTH), `03` IOTMP CONNECT. */
export function detectProtocol(firstByte: number): "legacy" | "iotmp" | undefined {
  if (firstByte === 0x01) return "legacy";
  if (firstByte === 0x03) return "iotmp";
  return undefined;
}

/** A whole frame: header + body. Throws when the body exceeds `maxFrameBytes`. */
export function encodeFrame(type: number, body: Uint8Array, maxFrameBytes = MAX_FRAME_BYTES): Uint8Array {
  if (!Number.isInteger(type) || type < 0 || type > MAX_U32) throw new ThingerCodecError("frame_type", `bad frame type ${type}`);
  if (body.length > maxFrameBytes) throw new ThingerCodecError("frame_too_large", `frame body of ${body.length} bytes exceeds ${maxFrameBytes}`);
  const w = new ByteWriter(body.length + 10);
  w.varint(type);
  w.varint(body.length);
  w.bytes(body);
  return w.finish();
}

/** Incremental frame reader for one connection. After it throws, the connection must be closed (the stream is lost). */
export class FrameReader {
  private readonly maxFrameBytes: number;
  private readonly types: ReadonlySet<number> | undefined;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Header of the frame whose body is still arriving. */
  private pending: { type: number; size: number; headerBytes: number } | undefined;
  private failed = false;

  constructor(opts: FrameReaderOptions = {}) {
    const max = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    if (!Number.isInteger(max) || max < 0 || max > MAX_U32) throw new TypeError('"maxFrameBytes" must be a non-negative integer');
    this.maxFrameBytes = max;
    this.types = opts.types ? new Set(opts.types) : undefined;
  }

  /** Bytes held while waiting for the rest of a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds bytes; returns every frame they complete, in order. Throws ThingerCodecError on a malformed header. */
  push(chunk: Uint8Array): Frame[] {
    if (this.failed) throw new ThingerCodecError("truncated", "frame reader already failed");
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    try {
      for (;;) {
        if (!this.pending && !this.readHeader()) break;
        const p = this.pending!;
        if (this.buffered < p.headerBytes + p.size) break;
        const all = this.flatten();
        frames.push({ type: p.type, body: all.subarray(p.headerBytes, p.headerBytes + p.size) });
        const rest = all.subarray(p.headerBytes + p.size);
        this.chunks = rest.length > 0 ? [rest] : [];
        this.buffered = rest.length;
        this.pending = undefined;
      }
    } catch (err) {
      this.failed = true;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
    return frames;
  }

  private flatten(): Uint8Array {
    if (this.chunks.length === 1) return this.chunks[0]!;
    const all = new Uint8Array(this.buffered);
    let at = 0;
    for (const c of this.chunks) {
      all.set(c, at);
      at += c.length;
    }
    this.chunks = [all];
    return all;
  }

  /** Parses the header if enough bytes are there; false when more are needed. */
  private readHeader(): boolean {
    if (this.buffered === 0) return false;
    // A header is at most 2 × 5 bytes: look only at those.
    const headLen = Math.min(this.buffered, 2 * MAX_HEADER_VARINT_BYTES);
    let head = this.chunks[0]!;
    if (head.length < headLen) head = this.flatten();
    const r = new ByteReader(head, 0, headLen);
    let type: number;
    let size: number;
    try {
      type = r.varint(MAX_HEADER_VARINT_BYTES, MAX_U32);
      if (this.types && !this.types.has(type)) throw new ThingerCodecError("frame_type", `unexpected frame type ${type}`);
      size = r.varint(MAX_HEADER_VARINT_BYTES, MAX_U32);
    } catch (err) {
      // Running out of bytes inside a short header only means "wait for more".
      if (err instanceof ThingerCodecError && err.reason === "truncated" && headLen < 2 * MAX_HEADER_VARINT_BYTES) return false;
      throw err;
    }
    if (size > this.maxFrameBytes) throw new ThingerCodecError("frame_too_large", `frame body of ${size} bytes exceeds ${this.maxFrameBytes}`);
    this.pending = { type, size, headerBytes: r.pos };
    return true;
  }
}
