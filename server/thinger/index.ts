/**
 * The Thinger wire layer: PSON v1/v2 codecs, legacy and IOTMP messages, the frame reader. Pure functions and
 * one incremental reader; no sockets, no sessions. Every decoder throws {@link ThingerCodecError} and nothing
 * else on malformed input.
 */
export { MAX_FRAME_BYTES, MAX_PSON_DEPTH, MAX_HEADER_VARINT_BYTES, MAX_STREAM_ID, ThingerCodecError, type ThingerCodecErrorReason } from "./limits.js";
export type { PsonValue } from "./pson-value.js";
export { encodePson1, decodePson1, PSON1_TAG } from "./pson1.js";
export { encodePson2, decodePson2, PSON2_TYPE } from "./pson2.js";
export { FrameReader, detectProtocol, encodeFrame, type Frame, type FrameReaderOptions } from "./frame-reader.js";
export {
  LEGACY_FLAG,
  LEGACY_FIELD,
  LEGACY_FRAME,
  LEGACY_KEEPALIVE,
  encodeLegacyBody,
  encodeLegacyMessage,
  decodeLegacyBody,
  decodeLegacyFrame,
  type LegacyFrame,
  type LegacyMessage,
} from "./legacy-frame.js";
export {
  IOTMP_FIELD,
  IOTMP_KEEPALIVE,
  IOTMP_SERVER_RUN,
  IOTMP_TYPE,
  decodeIotmpBody,
  decodeIotmpFrame,
  detectIotmpDialect,
  encodeIotmpBody,
  encodeIotmpMessage,
  type IotmpDialect,
  type IotmpEncodeOptions,
  type IotmpField,
  type IotmpMessage,
  type IotmpNumberMode,
} from "./iotmp-frame.js";
export { hex } from "./bytes.js";
