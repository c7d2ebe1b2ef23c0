/**
 * The small collection interface both backends implement. Queries and updates are the common subset of
 * MongoDB's documents that nedb also speaks: equality, `$in`, `$ne`, `$lt`/`$gt` in queries; `$set`,
 * `$unset`, `$inc` in updates. Documents are keyed by a string `_id` chosen by the repository, so
 * uniqueness never depends on secondary indexes (nedb has no compound unique index).
 */
export type Doc = { _id: string } & Record<string, unknown>;
export type Query = Record<string, unknown>;
export type Update = { $set?: Record<string, unknown>; $unset?: Record<string, unknown>; $inc?: Record<string, number> };

export interface FindOptions {
  sort?: Record<string, 1 | -1>;
  limit?: number;
  /** Documents to pass over first (after sorting): list pages. */
  skip?: number;
}

export interface Collection<T extends Doc> {
  /** Inserts; throws {@link DuplicateKeyError} when `_id` exists. */
  insertOne(doc: T): Promise<void>;
  findOne(query: Query): Promise<T | null>;
  find(query: Query, options?: FindOptions): Promise<T[]>;
  /** Returns how many documents matched (0 or 1). */
  updateOne(query: Query, update: Update): Promise<number>;
  updateMany(query: Query, update: Update): Promise<number>;
  /**
   * Updates the first match and returns it as it is after the update, or null. Atomic on MongoDB and nedb;
   * FerretDB's SQLite backend (our CI stand-in for MongoDB) is not, so where exactly one caller must win the
   * repositories claim with a unique `insertOne` instead (see `Repositories.consumeRefreshToken`).
   */
  findOneAndUpdate(query: Query, update: Update): Promise<T | null>;
  deleteOne(query: Query): Promise<number>;
  deleteMany(query: Query): Promise<number>;
  count(query: Query): Promise<number>;
}

export interface IndexSpec {
  collection: string;
  field: string;
  /** Unique among the documents that have the field (sparse). */
  unique?: boolean;
}

export interface Store {
  readonly kind: "embedded" | "mongodb";
  collection<T extends Doc>(name: string): Collection<T>;
  /** Resolves when the backend answers; rejects otherwise (feeds GET /ready). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class DuplicateKeyError extends Error {
  constructor(collection: string, options?: { cause?: unknown }) {
    super(`duplicate key in ${collection}`, options);
    this.name = "DuplicateKeyError";
  }
}

/**
 * Inserts `doc` unless a document with its `_id` exists: true when this insert made it, false when one was there.
 * A unique insert is atomic on every backend, so it serves as a claim that exactly one of parallel writers wins.
 */
export async function insertIfAbsent<T extends Doc>(col: Collection<T>, doc: T): Promise<boolean> {
  try {
    await col.insertOne(doc);
    return true;
  } catch (err) {
    if (err instanceof DuplicateKeyError) return false;
    throw err;
  }
}

export class StoreUnavailableError extends Error {
  constructor(options?: { cause?: unknown }) {
    super("store unavailable", options);
    this.name = "StoreUnavailableError";
  }
}

/** Secondary (non-unique) indexes both backends create at start. */
export const INDEXES: readonly IndexSpec[] = [
  { collection: "users", field: "lower", unique: true },
  { collection: "devices", field: "user" },
  { collection: "refresh_tokens", field: "family" },
  { collection: "device_tokens", field: "user" },
  { collection: "user_tokens", field: "user" },
  // Issue 18: device properties, queued calls, idempotency keys.
  { collection: "device_properties", field: "deviceKey" },
  { collection: "queued_calls", field: "deviceKey" },
  { collection: "queued_calls", field: "user" },
  { collection: "queued_calls", field: "status" },
  { collection: "idempotency_keys", field: "user" },
  // Issue 19: console dashboards.
  { collection: "dashboards", field: "user" },
];

export const COLLECTIONS = ["users", "devices", "refresh_families", "refresh_tokens", "refresh_claims", "device_tokens", "user_tokens",
  "device_properties", "queued_calls", "idempotency_keys", "dashboards"] as const;
