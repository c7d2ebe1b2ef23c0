/** fast-check arbitraries for PSON values and Thinger messages, and the normalisation each dialect applies. */
import fc from "fast-check";
import { setKey } from "../../server/thinger/bytes.js";
import type { IotmpMessage, LegacyMessage, PsonValue } from "../../server/thinger/index.js";

const text = fc.string({ unit: "grapheme", maxLength: 12 });
const key = fc.oneof(text, fc.constantFrom("__proto__", "constructor", "in", "out", ""));
const number = fc.oneof(
  fc.integer(),
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.double(),
  fc.double({ noDefaultInfinity: true, noNaN: true, min: -1e6, max: 1e6 }),
  fc.float().map(Number),
  fc.constantFrom(0, 1, -1, 30, 31, 127, 128, 2 ** 32, -(2 ** 32), 0.1, 3.14159265358979, 21.5, -0),
);

const scalar: fc.Arbitrary<PsonValue> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  number,
  text,
  fc.uint8Array({ maxLength: 40 }),
);

function object(entries: Array<[string, PsonValue]>): { [k: string]: PsonValue } {
  const o: { [k: string]: PsonValue } = {};
  for (const [k, v] of entries) setKey(o, k, v);
  return o;
}

/** Any PSON value, nested a few levels. */
export const psonValue: fc.Arbitrary<PsonValue> = fc.letrec<{ value: PsonValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalar,
    fc.array(tie("value"), { maxLength: 6 }),
    fc.array(fc.tuple(key, tie("value")), { maxLength: 6 }).map(object),
  ),
})).value;

/** What a legacy PSON round trip yields: the float32 narrowing of §2.3, -0 as 0. */
export function normalise1(v: PsonValue): PsonValue {
  return normalise(v, (n) => {
    if (Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER) return n === 0 ? 0 : n;
    const f = Math.fround(n);
    return Math.abs(n - f) <= 0.00001 ? f : n;
  });
}

/** What a PSON v2 round trip yields: numbers are exact, -0 becomes 0. */
export function normalise2(v: PsonValue): PsonValue {
  return normalise(v, (n) => (n === 0 ? 0 : n));
}

function normalise(v: PsonValue, num: (n: number) => number): PsonValue {
  if (typeof v === "number") return num(v);
  if (v === null || typeof v !== "object" || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((x) => normalise(x, num));
  return object(Object.keys(v).map((k) => [k, normalise(v[k]!, num)]));
}

const opt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(a, { nil: undefined });

function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as Array<keyof T>) if (o[k] === undefined) delete o[k];
  return o;
}

export const legacyMessage: fc.Arbitrary<LegacyMessage> = fc
  .record({
    streamId: opt(fc.integer({ min: 1, max: 0xffff })),
    flag: opt(fc.integer({ min: 1, max: 12 })),
    identifier: opt(psonValue),
    resource: opt(fc.oneof(fc.array(text, { minLength: 1, maxLength: 4 }), psonValue)),
    payload: opt(psonValue),
  })
  .map(defined);

export function normaliseLegacy(m: LegacyMessage): LegacyMessage {
  const out: LegacyMessage = { ...m };
  if (m.identifier !== undefined) out.identifier = normalise1(m.identifier);
  if (m.resource !== undefined) out.resource = normalise1(m.resource);
  if (m.payload !== undefined) out.payload = normalise1(m.payload);
  return out;
}

const field = fc.oneof(psonValue, fc.integer({ min: 0, max: 0xffff_ffff }));

export const iotmpMessage: fc.Arbitrary<IotmpMessage> = fc
  .record({
    type: fc.constantFrom(1, 2, 3, 4, 6, 7, 8, 9, 10),
    streamId: opt(fc.integer({ min: 0, max: 0xffff })),
    params: opt(field),
    payload: opt(field),
    resource: opt(fc.oneof(text, psonValue)),
  })
  .map(defined)
  .map((m) => {
    // Dialect 1 START_STREAM/DESCRIBE carry their resource in the payload field, so they have no payload.
    if (m.type === 7 || m.type === 8) delete m.payload;
    return m;
  });

export function normaliseIotmp(m: IotmpMessage, dialect: 1 | 2): IotmpMessage {
  const n = dialect === 1 ? normalise1 : normalise2;
  const out: IotmpMessage = { ...m };
  for (const k of ["params", "payload", "resource"] as const) if (m[k] !== undefined) out[k] = n(m[k]!);
  return out;
}
