/**
 * Limits and the one error class of the Thinger wire layer (legacy protocol and IOTMP). Every decoder here
 * throws {@link ThingerCodecError} — and nothing else — on malformed input, so a session can close the
 * connection on that one class without guessing. See docs/thinger-devices.md, "Wire format and limits".
 */

/** Largest frame body accepted or produced: 256 KiB, the cap of the IOTMP Linux client (THINGER-PROTOCOL §3.3). */
export const MAX_FRAME_BYTES = 256 * 1024;

/** Deepest container nesting a PSON value may have (top-level container = depth 1), on decode and encode. */
export const MAX_PSON_DEPTH = 32;

/** Most bytes of a varint in a frame header (type, size) or a message key: 5 bytes hold any 32-bit value. */
export const MAX_HEADER_VARINT_BYTES = 5;

/** Most bytes of a varint inside a PSON value: 8 bytes (56 bits); the value itself must also be a safe integer. */
export const MAX_VALUE_VARINT_BYTES = 8;

/** Largest u32, the bound of header varints, container lengths and counts. */
export const MAX_U32 = 0xffff_ffff;

/** Largest stream id: both protocols keep it in a u16. */
export const MAX_STREAM_ID = 0xffff;

/** Why a codec refused its input; stable strings tests and logs can match. */
export type ThingerCodecErrorReason =
  | "truncated"
  | "varint_too_long"
  | "varint_too_large"
  | "frame_too_large"
  | "frame_type"
  | "bad_tag"
  | "bad_length"
  | "too_deep"
  | "utf8"
  | "trailing_bytes"
  | "bad_field"
  | "bad_value";

/** The one error of the Thinger wire layer: malformed, hostile or unsupported bytes (or an unencodable value). */
export class ThingerCodecError extends Error {
  override readonly name = "ThingerCodecError";
  constructor(
    readonly reason: ThingerCodecErrorReason,
    message: string,
  ) {
    super(message);
  }
}
