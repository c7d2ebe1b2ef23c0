/**
 * The value model shared by both PSON dialects: JSON plus byte strings. Numbers are JS numbers; integers are
 * exact up to 2^53 − 1 (larger wire integers are refused rather than rounded).
 */
export type PsonValue = null | boolean | number | string | Uint8Array | PsonValue[] | { [k: string]: PsonValue };

/** True for a value an encoder treats as an object (not null, not an array, not bytes). */
export function isPsonObject(v: unknown): v is { [k: string]: PsonValue } {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}
