import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import * as nedbModule from "@seald-io/nedb";

// @seald-io/nedb is CommonJS: its class is the namespace's `default` at run time under NodeNext.
type Datastore<T> = nedbModule.default<T>;
type DatastoreClass = new <T>(options: { filename: string; timestampData?: boolean }) => Datastore<T>;
const Datastore = (nedbModule as unknown as { default: DatastoreClass }).default;
import { type Collection, type Doc, DuplicateKeyError, type FindOptions, INDEXES, type Query, type Store, type Update, COLLECTIONS } from "./types.js";

/** How often nedb rewrites its append-only files to drop superseded lines. */
const COMPACTION_INTERVAL_MS = 10 * 60_000;

function isUniqueViolation(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { errorType?: string }).errorType === "uniqueViolated";
}

class NedbCollection<T extends Doc> implements Collection<T> {
  constructor(private readonly name: string, private readonly db: Datastore<T>) {}

  async insertOne(doc: T): Promise<void> {
    try {
      await this.db.insertAsync(structuredClone(doc));
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateKeyError(this.name, { cause: err });
      throw err;
    }
  }
  async findOne(query: Query): Promise<T | null> {
    return (await this.db.findOneAsync(query)) ?? null;
  }
  async find(query: Query, options: FindOptions = {}): Promise<T[]> {
    let cursor = this.db.findAsync(query);
    if (options.sort) cursor = cursor.sort(options.sort);
    if (options.skip !== undefined) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    return await cursor;
  }
  async updateOne(query: Query, update: Update): Promise<number> {
    const { numAffected } = await this.db.updateAsync(query, update, { multi: false });
    return numAffected;
  }
  async updateMany(query: Query, update: Update): Promise<number> {
    const { numAffected } = await this.db.updateAsync(query, update, { multi: true });
    return numAffected;
  }
  async findOneAndUpdate(query: Query, update: Update): Promise<T | null> {
    // nedb runs every operation of a datastore through one queue, so match-and-update is atomic.
    const { affectedDocuments } = await this.db.updateAsync(query, update, { multi: false, returnUpdatedDocs: true });
    return (affectedDocuments as T | null) ?? null;
  }
  async deleteOne(query: Query): Promise<number> {
    return await this.db.removeAsync(query, { multi: false });
  }
  async deleteMany(query: Query): Promise<number> {
    return await this.db.removeAsync(query, { multi: true });
  }
  async count(query: Query): Promise<number> {
    return await this.db.countAsync(query);
  }
}

/** What {@link removeInPlace} uses of a nedb index (`@seald-io/nedb` lib/indexes.js). */
interface NedbIndex {
  remove(doc: unknown): void;
  tree: { search(key: unknown): unknown[] };
}

/**
 * nedb takes a document out of a non-unique index by rebuilding the whole list of documents under its key, so
 * every update of a device cost O(devices in its account) (index on `user`): a restart under 10,000 devices of one
 * account spent ~2 s of the shutdown and ~1.5 s of the reconnection in it, recording "seen now" (BENCHMARKS.md,
 * storm). The document is the very object in the list (nedb compares by identity), so it is spliced out where it
 * is; anything else — an array value, a key holding one document, a document not found — goes the library's way.
 */
function removeInPlace(index: NedbIndex | undefined, field: string): void {
  if (!index || typeof index.remove !== "function" || typeof index.tree?.search !== "function" || field.includes(".")) return;
  const remove = index.remove.bind(index);
  index.remove = (doc: unknown) => {
    const key = doc !== null && typeof doc === "object" && !Array.isArray(doc) ? (doc as Record<string, unknown>)[field] : undefined;
    if (typeof key === "string") {
      const list = index.tree.search(key);
      const at = list.length > 1 ? list.indexOf(doc) : -1;
      if (at >= 0) return void list.splice(at, 1);
    }
    remove(doc);
  };
}

/** The embedded store: one nedb file per collection under `dir`. The server is its only writer. */
export async function openNedbStore(dir: string): Promise<Store> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const dbs = new Map<string, Datastore<Doc>>();
  for (const name of COLLECTIONS) {
    const db = new Datastore<Doc>({ filename: join(dir, `${name}.db`), timestampData: false });
    await db.loadDatabaseAsync();
    db.setAutocompactionInterval(COMPACTION_INTERVAL_MS);
    dbs.set(name, db);
  }
  for (const { collection, field, unique } of INDEXES) {
    const db = dbs.get(collection)!;
    await db.ensureIndexAsync(unique ? { fieldName: field, unique: true, sparse: true } : { fieldName: field });
    if (!unique) removeInPlace((db as unknown as { indexes: Record<string, NedbIndex> }).indexes[field], field);
  }
  const collections = new Map<string, NedbCollection<Doc>>();
  return {
    kind: "embedded",
    collection<T extends Doc>(name: string): Collection<T> {
      const db = dbs.get(name);
      if (!db) throw new Error(`unknown collection ${name}`);
      let c = collections.get(name);
      if (!c) collections.set(name, (c = new NedbCollection(name, db)));
      return c as unknown as Collection<T>;
    },
    async ping() {},
    async close() {
      for (const db of dbs.values()) {
        db.stopAutocompaction();
        await db.compactDatafileAsync();
      }
    },
  };
}
