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
    await dbs.get(collection)!.ensureIndexAsync(unique ? { fieldName: field, unique: true, sparse: true } : { fieldName: field });
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
