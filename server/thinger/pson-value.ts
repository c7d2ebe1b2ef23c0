/**
 * The value model shared by both PSON dialects: JSON plus byte strings. Numbers are JS numbers; integers are
 * exact up to 2^53 − 1 (larger wire integers are refused rather than rounded).
 */
export type PsonValue = null | boolean | number | string | Uint8Array | PsonValue[] | { [k: string]: PsonValue };

/** True for a plain object (prototype Object.prototype or null) — what JSON.parse and the decoders produce. */
export function isPsonObject(v: unknown): v is { [k: string]: PsonValue } {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
