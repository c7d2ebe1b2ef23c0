import { createHash } from "node:crypto";
import { AppError } from "../errors.js";
import { insertIfAbsent } from "../store/types.js";
import type { IdempotencyDoc, Repositories } from "../store/repos.js";
import { KeyedSerial } from "../serial.js";
import { systemTimers, type TimerHandle, type Timers } from "../timers.js";

/** How long the first outcome of a key is kept (IETF httpapi Idempotency-Key draft: the server's choice). */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
/** Longest key accepted (characters). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;
/** Keys: printable ASCII without quotes or backslashes (the draft's sf-string, quoted or not). */
const KEY_RE = /^[\x20-\x21\x23-\x5b\x5d-\x7e]+$/;

/** Response headers kept with an outcome and sent again on a replay. */
const KEPT_HEADERS = ["Location", "Preference-Applied", "Content-Type"];

/**
 * Codes after which the device was certainly not called (refused before, busy, offline, unknown): such an
 * outcome is not kept, the key is released and a retry with it runs afresh. Every other outcome — a result, a
 * device error, a timeout, a drop mid-call, a queued call — is kept: the device may have acted.
 */
const RELEASING = new Set([
  "invalid_request", "invalid_json", "payload_too_large", "unsupported_media_type", "device_not_found", "device_offline",
  "resource_not_found", "device_busy", "too_many_requests", "queue_full", "service_unavailable", "method_not_allowed",
  "forbidden", "unauthorized", "internal_error",
]);

export interface StoredOutcome {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export type Begin =
  | { kind: "new"; id: string }
  | { kind: "replay"; outcome: StoredOutcome };

/**
 * `Idempotency-Key` on `POST /v2/…` (issue 18): per account and key, the first outcome is kept for 24 h in
 * the store (so it survives restarts and holds across cluster nodes); the same key with the same request
 * answers it again, with another request 422, while the first still runs 409.
 *
 * "Still runs" is a lease in the store (`leaseTs`), renewed while the first request is alive on its node, so that
 * a slow call or store never lets a retry on another node take the key over; past the lease, a retry concludes the
 * first request died with its node (a crash) and answers 502 call_interrupted. On the node running it, the first
 * request is known alive whatever its lease says (an event-loop stall can outlast it). Should another node answer
 * call_interrupted for a first request that was only stalled, the first request's outcome still replaces it when
 * it ends: later retries get the real outcome.
 */
export class IdempotencyKeys {
  private readonly claims = new KeyedSerial();
  /** Keys whose first request runs on this node, with the timer renewing their lease. */
  private readonly running = new Map<string, TimerHandle>();

  /** `timers`: the clock of leases and their renewal (the app's; tests pass a fake one). */
  constructor(private readonly repos: Repositories, private readonly maxPerUser: number, private readonly timers: Timers = systemTimers) {}

  /** The key from the header value: a bare token or the draft's quoted sf-string; 400 when malformed. */
  static parse(header: string): string {
    let key = header.trim();
    if (key.length >= 2 && key.startsWith('"') && key.endsWith('"')) key = key.slice(1, -1);
    if (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY_LENGTH || !KEY_RE.test(key)) {
      throw new AppError("invalid_request", `"Idempotency-Key" must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters`);
    }
    return key;
  }

  /** What identifies "the same request": method, path, async or not, and the exact body. */
  static fingerprint(parts: readonly string[]): string {
    return createHash("sha256").update(JSON.stringify(parts)).digest("base64url");
  }

  /**
   * The fingerprint of a relay call in canonical form (QA F9): the normalised device and resource, queued or not,
   * the parsed ttl and timeout values, and the parsed input as JSON with sorted keys. A retry whose body was
   * re-serialised (spaces, key order) or whose path or numbers are spelt differently (`io/`, `timeout=5.0`) is
   * the same request; another input, resource, `Prefer`, ttl or timeout is not.
   */
  static callFingerprint(c: { device: string; resource: string; queued: boolean; ttlS: number | null; timeoutMs: number; hasInput: boolean; input: unknown }): string {
    return IdempotencyKeys.fingerprint([
      "call/2", c.device, c.resource, c.queued ? "async" : "sync", String(c.ttlS ?? ""), String(c.timeoutMs), c.hasInput ? canonicalJson(c.input) : "",
    ]);
  }

  /**
   * Claims the key for a new request, or returns the kept outcome (409/422 when it cannot be either). A claim
   * (`kind: "new"`) must be ended by {@link finish}: until then its lease (`leaseMs`) is renewed every `leaseMs / 2`.
   */
  async begin(user: string, key: string, fingerprint: string, leaseMs: number): Promise<Begin> {
    const id = `${user}/${createHash("sha256").update(key).digest("base64url")}`;
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = this.timers.now();
      const existing = await this.repos.idempotency.findOne({ _id: id });
      if (existing && existing.expiresTs <= now) {
        await this.repos.idempotency.deleteOne({ _id: id, expiresTs: existing.expiresTs });
        continue;
      }
      if (existing) return { kind: "replay", outcome: await this.answer(existing, fingerprint, now) };
      const doc: IdempotencyDoc = { _id: id, user, fingerprint, state: "in_flight", leaseTs: now + leaseMs, createdTs: now, expiresTs: now + IDEMPOTENCY_TTL_MS };
      // New keys of one account are claimed one at a time here: a parallel burst cannot pass the count together.
      const claimed = await this.claims.run(user, async () => {
        if ((await this.repos.idempotency.count({ user, expiresTs: { $gt: now } })) >= this.maxPerUser) {
          throw new AppError("too_many_idempotency_keys", `at most ${this.maxPerUser} Idempotency-Keys per account within 24 h`, { headers: { "Retry-After": "3600" } });
        }
        // False: another request with this key got in first (answered as a repeat of it).
        return await insertIfAbsent(this.repos.idempotency, doc);
      });
      if (claimed) {
        this.hold(id, leaseMs);
        return { kind: "new", id };
      }
    }
    throw new AppError("idempotency_key_in_flight");
  }

  /**
   * Keeps the outcome of the request that claimed the key, or releases the key (see {@link RELEASING}). Also over
   * a call_interrupted another node answered meanwhile (this request was alive after all): its outcome is the truth.
   */
  async finish(id: string, outcome: StoredOutcome, code?: string): Promise<void> {
    this.release(id);
    const ours = { _id: id, state: { $in: ["in_flight", "interrupted"] } };
    if (code !== undefined && RELEASING.has(code)) {
      await this.repos.idempotency.deleteOne(ours);
      return;
    }
    await this.repos.idempotency.updateOne(ours, { $set: { state: "done", status: outcome.status, body: outcome.body, headers: outcome.headers } });
  }

  /** Marks the key's first request alive here and renews its lease until {@link finish}. */
  private hold(id: string, leaseMs: number): void {
    const every = Math.max(1, Math.floor(leaseMs / 2));
    let renewing = false;
    const timer = this.timers.setInterval(() => {
      // One renewal at a time: a slow one applied after a newer one would shorten the lease (seen on FerretDB).
      if (renewing) return;
      renewing = true;
      this.repos.idempotency.updateOne({ _id: id, state: "in_flight" }, { $set: { leaseTs: this.timers.now() + leaseMs } }).then(
        // Not in flight any more (finished, interrupted by another node, purged, its account deleted): nothing to renew.
        (n) => {
          renewing = false;
          if (n === 0 && this.running.get(id) === timer) this.release(id);
        },
        // A failed renewal is tried again at the next tick; the lease has half of it left.
        () => (renewing = false),
      );
    }, every);
    timer.unref?.();
    this.release(id);
    this.running.set(id, timer);
  }

  private release(id: string): void {
    const timer = this.running.get(id);
    if (timer === undefined) return;
    this.timers.clearInterval(timer);
    this.running.delete(id);
  }

  /** Deletes keys past their 24 h. */
  async purge(now = this.timers.now()): Promise<number> {
    return await this.repos.idempotency.deleteMany({ expiresTs: { $lt: now } });
  }

  static keptHeaders(get: (name: string) => string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = get(h);
      if (v) out[h] = v;
    }
    return out;
  }

  private async answer(doc: IdempotencyDoc, fingerprint: string, now: number): Promise<StoredOutcome> {
    if (doc.fingerprint !== fingerprint) throw new AppError("idempotency_key_reused");
    if (doc.state !== "in_flight") return { status: doc.status ?? 200, body: doc.body ?? "", headers: doc.headers ?? {} };
    if (doc.leaseTs > now || this.running.has(doc._id)) throw new AppError("idempotency_key_in_flight", undefined, { headers: { "Retry-After": "1" } });
    // The server stopped while the first request ran (its node is gone, or it would have renewed the lease): its
    // outcome is unknown, and the device is not called again.
    const body = JSON.stringify({ error: { code: "call_interrupted", message: "the server stopped while the first request with this Idempotency-Key ran; it was not sent again" } });
    const outcome: StoredOutcome = { status: 502, body, headers: { "Content-Type": "application/json; charset=utf-8" } };
    await this.repos.idempotency.updateOne({ _id: doc._id, state: "in_flight" }, { $set: { state: "interrupted", ...outcome } });
    return outcome;
  }
}

/** JSON with object keys sorted at every depth: the same value always gives the same text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x)).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}
