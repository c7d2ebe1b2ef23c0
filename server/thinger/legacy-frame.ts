/**
 * Legacy Thinger protocol messages (the "thinger.io" Arduino library, the old Linux client):
 * THINGER-PROTOCOL §2. A frame of type 1 (MESSAGE) holds protobuf-style fields `key = (field << 3) | wire`:
 * 1 stream id (varint, omitted when 0), 2 signal flag (varint, omitted when 0), 3 identifier, 4 resource and
 * 6 payload (wire 6, one legacy PSON value each). A frame of type 2 is the keep-alive, always `02 00`.
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import { encodeFrame, type Frame } from "./frame-reader.js";
import { MAX_FRAME_BYTES, MAX_HEADER_VARINT_BYTES, MAX_STREAM_ID, MAX_U32, ThingerCodecError } from "./limits.js";
import { readPson1, writePson1, type PsonValue } from "./pson1.js";

/** Frame types of the legacy protocol. Never send any other: the client desyncs on an unknown type. */
export const LEGACY_FRAME = { MESSAGE: 1, KEEP_ALIVE: 2 } as const;

/** Signal flags (field 2). */
export const LEGACY_FLAG = {
  RUN: 0,
  REQUEST_OK: 1,
  REQUEST_ERROR: 2,
  START_STREAM: 3,
  STOP_STREAM: 4,
  AUTH: 5,
  STREAM_EVENT: 6,
  STREAM_SAMPLE: 7,
  CALL_ENDPOINT: 8,
  CALL_DEVICE: 9,
  BUCKET_DATA: 10,
  GET_PROPERTY: 11,
  SET_PROPERTY: 12,
} as const;

/** Message fields (field numbers). Field 5 is unused. */
export const LEGACY_FIELD = { STREAM_ID: 1, FLAG: 2, IDENTIFIER: 3, RESOURCE: 4, PAYLOAD: 6 } as const;

/** The keep-alive frame, both directions. */
export const LEGACY_KEEPALIVE: Uint8Array = Uint8Array.of(0x02, 0x00);

/**
 * One legacy MESSAGE. Absent fields are `undefined`: a stream id or flag of 0 is not sent, so it decodes as
 * absent; a PSON field holding "empty" (`78`) decodes as absent too.
 */
export interface LegacyMessage {
  streamId?: number;
  flag?: number;
  identifier?: PsonValue;
  /** Path segments (`["sub","leaf"]`); decoded as `string[]` when every item is a string, else the raw value. */
  resource?: string[] | PsonValue;
  payload?: PsonValue;
}

const PSON_WIRE = 6;

/** The body of a MESSAGE, fields in the order the clients write them (1, 2, 3, 4, 6). */
export function encodeLegacyBody(m: LegacyMessage): Uint8Array {
  const w = new ByteWriter();
  const streamId = m.streamId ?? 0;
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > MAX_STREAM_ID) throw new ThingerCodecError("bad_field", `stream id ${streamId} is not a u16`);
  const flag = m.flag ?? 0;
  if (!Number.isInteger(flag) || flag < 0 || flag > MAX_U32) throw new ThingerCodecError("bad_field", `flag ${flag} is not a u32`);
  if (streamId !== 0) {
    w.byte((LEGACY_FIELD.STREAM_ID << 3) | 0);
    w.varint(streamId);
  }
  if (flag !== 0) {
    w.byte((LEGACY_FIELD.FLAG << 3) | 0);
    w.varint(flag);
  }
  for (const [field, value] of [
    [LEGACY_FIELD.IDENTIFIER, m.identifier],
    [LEGACY_FIELD.RESOURCE, m.resource],
    [LEGACY_FIELD.PAYLOAD, m.payload],
  ] as const) {
    if (value === undefined) continue;
    w.byte((field << 3) | PSON_WIRE);
    writePson1(w, value, 0);
  }
  return w.finish();
}

/** A whole MESSAGE frame (type 1). Throws ThingerCodecError when the body would exceed 256 KiB. */
export function encodeLegacyMessage(m: LegacyMessage): Uint8Array {
  return encodeFrame(LEGACY_FRAME.MESSAGE, encodeLegacyBody(m), MAX_FRAME_BYTES);
}

/** Decodes a MESSAGE body. Unknown fields with wire 0, 1, 2 or 5 are skipped as the clients do; others throw. */
export function decodeLegacyBody(body: Uint8Array): LegacyMessage {
  const r = new ByteReader(body);
  const m: LegacyMessage = {};
  while (r.pos < r.end) {
    const key = r.varint(MAX_HEADER_VARINT_BYTES, MAX_U32);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === PSON_WIRE) {
      const v = readPson1(r);
      if (field === LEGACY_FIELD.IDENTIFIER) m.identifier = v;
      else if (field === LEGACY_FIELD.RESOURCE) m.resource = asPath(v);
      else if (field === LEGACY_FIELD.PAYLOAD) m.payload = v;
      else throw new ThingerCodecError("bad_field", `unknown PSON field ${field}`);
      if (v === undefined) {
        // "empty" means absent
        if (field === LEGACY_FIELD.IDENTIFIER) delete m.identifier;
        else if (field === LEGACY_FIELD.RESOURCE) delete m.resource;
        else delete m.payload;
      }
      continue;
    }
    switch (wire) {
      case 0: {
        const v = r.varint(MAX_HEADER_VARINT_BYTES, MAX_U32);
        if (field === LEGACY_FIELD.STREAM_ID) {
          if (v > MAX_STREAM_ID) throw new ThingerCodecError("bad_field", `stream id ${v} is not a u16`);
          if (v === 0) delete m.streamId;
          else m.streamId = v;
        } else if (field === LEGACY_FIELD.FLAG) {
          if (v === 0) delete m.flag;
          else m.flag = v;
        }
        break;
      }
      case 1:
        r.take(8);
        break;
      case 2:
        r.take(r.varint(MAX_HEADER_VARINT_BYTES, MAX_U32));
        break;
      case 5:
        r.take(4);
        break;
      default:
        throw new ThingerCodecError("bad_field", `field ${field} has unsupported wire type ${wire}`);
    }
  }
  return m;
}

function asPath(v: PsonValue | undefined): string[] | PsonValue | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === "string") ? (v as string[]) : v;
}

/** A decoded legacy frame: a keep-alive (empty body) or a MESSAGE. Any other frame type throws. */
export type LegacyFrame = { kind: "keepalive" } | { kind: "message"; message: LegacyMessage };

export function decodeLegacyFrame(frame: Frame): LegacyFrame {
  if (frame.type === LEGACY_FRAME.KEEP_ALIVE) {
    if (frame.body.length !== 0) throw new ThingerCodecError("bad_length", "keep-alive frame with a body");
    return { kind: "keepalive" };
  }
  if (frame.type === LEGACY_FRAME.MESSAGE) return { kind: "message", message: decodeLegacyBody(frame.body) };
  throw new ThingerCodecError("frame_type", `unknown legacy frame type ${frame.type}`);
}
