/**
 * IOTMP messages (IOTMP-Linux, IOTMP-Embedded/-Arduino): THINGER-PROTOCOL §3. A frame's type is the message
 * type; its body is a list of one-byte keys `(field << 3) | wire` with values: wire 0 a varint, wire 1 a legacy
 * PSON value (dialect 1: IOTMP-Linux ≤ 2025-09), wire 2 a PSON v2 value (dialect 2: IOTMP-Linux ≥ 2026-02,
 * IOTMP-Embedded). A connection uses one dialect, learnt from its CONNECT ({@link detectIotmpDialect}).
 */
import { ByteReader, ByteWriter } from "./bytes.js";
import { encodeFrame, type Frame } from "./frame-reader.js";
import { MAX_FRAME_BYTES, MAX_STREAM_ID, MAX_U32, ThingerCodecError } from "./limits.js";
import { readPson1, writePson1 } from "./pson1.js";
import { readPson2, writePson2 } from "./pson2.js";
import type { PsonValue } from "./pson-value.js";

/** Message types (the frame type). Keep them below 0x80: the Linux client reads the type as one byte. */
export const IOTMP_TYPE = {
  OK: 0x01,
  ERROR: 0x02,
  CONNECT: 0x03,
  DISCONNECT: 0x04,
  KEEP_ALIVE: 0x05,
  RUN: 0x06,
  DESCRIBE: 0x07,
  START_STREAM: 0x08,
  STOP_STREAM: 0x09,
  STREAM_DATA: 0x0a,
} as const;

/** Body fields. */
export const IOTMP_FIELD = { STREAM_ID: 1, PARAMETERS: 2, PAYLOAD: 3, RESOURCE: 4 } as const;
export type IotmpField = (typeof IOTMP_FIELD)[keyof typeof IOTMP_FIELD];

/** 1: legacy PSON in wire type 1. 2: PSON v2 in wire type 2. */
export type IotmpDialect = 1 | 2;

/** The keep-alive frame, both directions. */
export const IOTMP_KEEPALIVE: Uint8Array = Uint8Array.of(0x05, 0x00);

/** Device→server RUN codes (§3.8). */
export const IOTMP_SERVER_RUN = {
  READ_PROPERTY: 1,
  SET_PROPERTY: 2,
  CALL_DEVICE: 3,
  CALL_ENDPOINT: 4,
  WRITE_BUCKET: 5,
  LOCK_SYNC: 6,
  UNLOCK_SYNC: 7,
  SUBSCRIBE_EVENT: 8,
} as const;

/**
 * One IOTMP message. A field sent as wire 0 decodes as a number; `undefined` means absent. In dialect 1,
 * START_STREAM and DESCRIBE carry their resource in field 3; this interface always calls it `resource`.
 */
export interface IotmpMessage {
  type: number;
  streamId?: number;
  params?: PsonValue | number;
  payload?: PsonValue | number;
  resource?: PsonValue;
}

/** How top-level numbers are written. */
export type IotmpNumberMode =
  /** Non-negative integers ≤ 2^32 − 1 as wire 0; anything else wrapped in PSON (what a server should send). */
  | "server"
  /** IOTMP-Linux HEAD: non-negative integers as wire 0, negative integers as wire-0 `0`, others in PSON. */
  | "iotmp-linux"
  /** IOTMP-Linux 1.3 (dialect 1): every number as a wire-0 varint of its value truncated to uint64. */
  | "iotmp-linux-1.3";

export interface IotmpEncodeOptions {
  /** Field order in the body (any order is valid; devices use various). Default: stream id, resource, params, payload. */
  fieldOrder?: readonly IotmpField[];
  numberMode?: IotmpNumberMode;
}

const SERVER_ORDER: readonly IotmpField[] = [IOTMP_FIELD.STREAM_ID, IOTMP_FIELD.RESOURCE, IOTMP_FIELD.PARAMETERS, IOTMP_FIELD.PAYLOAD];

/** In dialect 1 these types carry the resource in field 3 (PAYLOAD). */
function resourceInPayloadField(type: number, dialect: IotmpDialect): boolean {
  return dialect === 1 && (type === IOTMP_TYPE.START_STREAM || type === IOTMP_TYPE.DESCRIBE);
}

/** The body of a message. */
export function encodeIotmpBody(m: IotmpMessage, dialect: IotmpDialect, opts: IotmpEncodeOptions = {}): Uint8Array {
  if (dialect !== 1 && dialect !== 2) throw new ThingerCodecError("bad_value", `unknown IOTMP dialect ${String(dialect)}`);
  const mode = opts.numberMode ?? "server";
  const values = new Map<number, PsonValue | number | undefined>();
  if (m.streamId !== undefined) {
    if (!Number.isInteger(m.streamId) || m.streamId < 0 || m.streamId > MAX_STREAM_ID) throw new ThingerCodecError("bad_field", `stream id ${m.streamId} is not a u16`);
    values.set(IOTMP_FIELD.STREAM_ID, m.streamId);
  }
  values.set(IOTMP_FIELD.PARAMETERS, m.params);
  if (resourceInPayloadField(m.type, dialect)) {
    if (m.payload !== undefined && m.resource !== undefined) throw new ThingerCodecError("bad_field", "dialect 1 START_STREAM/DESCRIBE cannot carry both a resource and a payload");
    values.set(IOTMP_FIELD.PAYLOAD, m.resource !== undefined ? m.resource : m.payload);
  } else {
    values.set(IOTMP_FIELD.PAYLOAD, m.payload);
    values.set(IOTMP_FIELD.RESOURCE, m.resource);
  }
  const w = new ByteWriter();
  const order = opts.fieldOrder ?? SERVER_ORDER;
  const seen = new Set<number>();
  for (const field of [...order, ...SERVER_ORDER]) {
    if (seen.has(field)) continue;
    seen.add(field);
    const v = values.get(field);
    if (v === undefined) continue;
    if (field === IOTMP_FIELD.STREAM_ID) {
      w.byte(field << 3);
      w.varint(v as number);
      continue;
    }
    if (typeof v === "number" && writeTopNumber(w, field, v, mode)) continue;
    w.byte((field << 3) | dialect);
    if (dialect === 1) writePson1(w, v, 0);
    else writePson2(w, v, 0);
  }
  return w.finish();
}

/** Writes a top-level number as wire 0 when the mode says so; false when it must go in PSON. */
function writeTopNumber(w: ByteWriter, field: number, v: number, mode: IotmpNumberMode): boolean {
  if (mode === "iotmp-linux-1.3") {
    if (!Number.isFinite(v)) return false;
    w.byte(field << 3);
    w.varint64(BigInt(Math.trunc(v)));
    return true;
  }
  const integral = Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER;
  if (mode === "iotmp-linux" && integral) {
    w.byte(field << 3);
    w.varint(v < 0 ? 0 : Math.abs(v));
    return true;
  }
  if (integral && v >= 0 && v <= MAX_U32) {
    w.byte(field << 3);
    w.varint(Math.abs(v)); // Math.abs turns -0 into 0
    return true;
  }
  return false;
}

/** A whole frame. Throws ThingerCodecError when the body would exceed 256 KiB. */
export function encodeIotmpMessage(m: IotmpMessage, dialect: IotmpDialect, opts?: IotmpEncodeOptions): Uint8Array {
  if (!Number.isInteger(m.type) || m.type < 1 || m.type > 0x7f) throw new ThingerCodecError("frame_type", `bad IOTMP message type ${m.type}`);
  return encodeFrame(m.type, encodeIotmpBody(m, dialect, opts), MAX_FRAME_BYTES);
}

/**
 * Decodes a body. `dialect` fixes the accepted PSON wire type (1 or 2); without it either is accepted, but not
 * both in one body. `type` (the frame type) only matters for where dialect 1 puts the resource.
 */
export function decodeIotmpBody(body: Uint8Array, dialect?: IotmpDialect, type = 0): IotmpMessage {
  const m: IotmpMessage = { type };
  let psonWire: number | undefined = dialect;
  const r = new ByteReader(body);
  while (r.pos < r.end) {
    const key = r.byte();
    const field = key >> 3;
    const wire = key & 7;
    if (key >= 0x80 || field < IOTMP_FIELD.STREAM_ID || field > IOTMP_FIELD.RESOURCE) throw new ThingerCodecError("bad_field", `unknown IOTMP key 0x${key.toString(16)}`);
    let v: PsonValue | number | undefined;
    if (wire === 0) {
      v = readWire0(r);
    } else if (wire === 1 || wire === 2) {
      if (psonWire !== undefined && wire !== psonWire) throw new ThingerCodecError("bad_field", `PSON wire type ${wire} in a dialect ${psonWire} connection`);
      psonWire = wire;
      if (field === IOTMP_FIELD.STREAM_ID) throw new ThingerCodecError("bad_field", "stream id must be a varint");
      v = wire === 1 ? readPson1(r) : readPson2(r);
    } else {
      throw new ThingerCodecError("bad_field", `unsupported IOTMP wire type ${wire}`);
    }
    if (v === undefined) continue; // legacy "empty" (dialect 1) means absent
    switch (field) {
      case IOTMP_FIELD.STREAM_ID:
        if ((v as number) > MAX_STREAM_ID || (v as number) < 0) throw new ThingerCodecError("bad_field", `stream id ${String(v)} is not a u16`);
        m.streamId = v as number;
        break;
      case IOTMP_FIELD.PARAMETERS:
        m.params = v;
        break;
      case IOTMP_FIELD.PAYLOAD:
        if (resourceInPayloadField(type, (psonWire ?? 2) as IotmpDialect)) m.resource = v;
        else m.payload = v;
        break;
      default:
        m.resource = v;
    }
  }
  return m;
}

/**
 * A wire-0 value: up to 10 bytes read as a 64-bit integer, two's complement above 2^63 (IOTMP-Linux 1.3 sends
 * negative numbers that way), which must come out as a safe integer.
 */
function readWire0(r: ByteReader): number {
  const start = r.pos;
  let n = 0;
  for (;;) {
    const b = r.byte();
    if (++n > 10) throw new ThingerCodecError("varint_too_long", "varint longer than 10 bytes");
    if (b < 0x80) break;
  }
  if (n <= 7) {
    r.pos = start;
    return r.varint(7);
  }
  let v = 0n;
  for (let i = n - 1; i >= 0; i--) v = (v << 7n) | BigInt(r.buf[start + i]! & 0x7f);
  v = BigInt.asIntN(64, v); // bits beyond 64 are dropped, as a uint64_t would
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) throw new ThingerCodecError("varint_too_large", "varint value beyond 2^53");
  return Number(v);
}

/** The dialect of a CONNECT body, from the wire type of its field 3 (`19` → 1, `1A` → 2); undefined when unknown. */
export function detectIotmpDialect(body: Uint8Array): IotmpDialect | undefined {
  const r = new ByteReader(body);
  try {
    while (r.pos < r.end) {
      const key = r.byte();
      const wire = key & 7;
      if (key >> 3 === IOTMP_FIELD.PAYLOAD && (wire === 1 || wire === 2)) return wire;
      if (wire === 0) readWire0(r);
      else if (wire === 1) readPson1(r);
      else if (wire === 2) readPson2(r);
      else return undefined;
    }
  } catch (err) {
    if (err instanceof ThingerCodecError) return undefined;
    throw err;
  }
  return undefined;
}

/** Decodes a frame (`decodeIotmpBody` with the frame's type); a KEEP_ALIVE must have an empty body. */
export function decodeIotmpFrame(frame: Frame, dialect?: IotmpDialect): IotmpMessage {
  if (frame.type < 1 || frame.type > 0x7f) throw new ThingerCodecError("frame_type", `bad IOTMP message type ${frame.type}`);
  if (frame.type === IOTMP_TYPE.KEEP_ALIVE && frame.body.length !== 0) throw new ThingerCodecError("bad_length", "keep-alive frame with a body");
  return decodeIotmpBody(frame.body, dialect, frame.type);
}
