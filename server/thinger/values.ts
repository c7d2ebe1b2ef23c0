import type { ResourceKind } from "../gateway/protocol.js";
import type { PsonValue } from "./pson-value.js";

/** Values and names as Thinger devices send them, made into what REST callers see (used by the sessions). */

const FN_KINDS: Record<number, ResourceKind> = { 1: "run", 2: "input", 3: "output", 4: "io" };

/** `fn` of a Thinger describe entry → our resource kind (5, stream-only, and unknowns: none). */
export function kindOfFn(fn: unknown): ResourceKind | undefined {
  return typeof fn === "number" ? FN_KINDS[fn] : undefined;
}

/** True when a resource path matches a device template (`gpio/:pin`, `files/*path`). */
export function matches(template: string[], segs: string[]): boolean {
  for (let i = 0; i < template.length; i++) {
    const t = template[i]!;
    if (t.startsWith("*")) return segs.length > i;
    if (i >= segs.length) return false;
    if (!t.startsWith(":") && t !== segs[i]) return false;
  }
  return template.length === segs.length;
}

/**
 * Device values as a caller should see them. The clients narrow doubles to float32 (legacy PSON whenever within
 * 1e-5, PSON v2 when exact), so 41.65 arrives as 41.650001525878906: a number that is exactly a float32 is shown
 * as the shortest decimal that narrows to the same float32 (41.65), as the sketch wrote it. Bytes become base64.
 */
export function tidyNumbers(v: PsonValue | undefined, depth = 0): PsonValue | undefined {
  if (typeof v === "number") return shortFloat32(v);
  // Byte strings (the console's raw bytes, a sketch's binary output) reach JSON callers as base64.
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
  if (depth > 64 || typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => tidyNumbers(x, depth + 1) as PsonValue);
  const out: Record<string, PsonValue> = {};
  for (const [k, x] of Object.entries(v)) {
    // Keys come from the device: define, never assign through a prototype setter.
    Object.defineProperty(out, k, { value: tidyNumbers(x, depth + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function shortFloat32(x: number): number {
  if (Number.isInteger(x) || !Number.isFinite(x) || Math.fround(x) !== x) return x;
  for (let p = 1; p <= 9; p++) {
    const s = Number(x.toPrecision(p));
    if (Math.fround(s) === x) return s;
  }
  return x;
}

export function isObject(v: unknown): v is Record<string, PsonValue> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** A caller's JSON input as a PSON value (JSON is a subset). */
export function toPson(v: unknown): PsonValue {
  return v as PsonValue;
}
