import { MongoClient, MongoServerError, type Db, type Collection as MongoCollection, type Document } from "mongodb";
import { type Collection, type Doc, DuplicateKeyError, type FindOptions, INDEXES, type Query, type Store, StoreUnavailableError, type Update } from "./types.js";

function isDuplicate(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

/** Maps driver connectivity failures to StoreUnavailableError so the API answers 503, not 500. */
function wrap(err: unknown): never {
  if (err instanceof Error && /^Mongo(Network|ServerSelection|NotConnected|Topology)/.test(err.name)) {
    throw new StoreUnavailableError({ cause: err });
  }
  throw err;
}

class MongoColl<T extends Doc> implements Collection<T> {
  constructor(private readonly name: string, private readonly c: MongoCollection<Document>) {}
  async insertOne(doc: T): Promise<void> {
    try {
      await this.c.insertOne({ ...doc } as Document);
    } catch (err) {
      if (isDuplicate(err)) throw new DuplicateKeyError(this.name, { cause: err });
      wrap(err);
    }
  }
  async findOne(query: Query): Promise<T | null> {
    return (await this.c.findOne(query).catch(wrap)) as T | null;
  }
  async find(query: Query, options: FindOptions = {}): Promise<T[]> {
    let cursor = this.c.find(query);
    if (options.sort) cursor = cursor.sort(options.sort);
    if (options.skip !== undefined) cursor = cursor.skip(options.skip);
    if (options.limit !== undefined) cursor = cursor.limit(options.limit);
    return (await cursor.toArray().catch(wrap)) as unknown as T[];
  }
  async updateOne(query: Query, update: Update): Promise<number> {
    return (await this.c.updateOne(query, update).catch(wrap)).matchedCount;
  }
  async updateMany(query: Query, update: Update): Promise<number> {
    return (await this.c.updateMany(query, update).catch(wrap)).matchedCount;
  }
  async findOneAndUpdate(query: Query, update: Update): Promise<T | null> {
    return (await this.c.findOneAndUpdate(query, update, { returnDocument: "after" }).catch(wrap)) as T | null;
  }
  async deleteOne(query: Query): Promise<number> {
    return (await this.c.deleteOne(query).catch(wrap)).deletedCount;
  }
  async deleteMany(query: Query): Promise<number> {
    return (await this.c.deleteMany(query).catch(wrap)).deletedCount;
  }
  async count(query: Query): Promise<number> {
    return await this.c.countDocuments(query).catch(wrap);
  }
}

/** MongoDB backend (production, cluster mode). Creates the secondary indexes at start. */
export async function openMongoStore(url: string, options: { serverSelectionTimeoutMS?: number } = {}): Promise<Store> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 5_000 });
  await client.connect();
  const db: Db = client.db();
  for (const { collection, field, unique } of INDEXES) {
    await db.collection(collection).createIndex({ [field]: 1 }, unique ? { unique: true, sparse: true } : {});
  }
  const colls = new Map<string, MongoColl<Doc>>();
  return {
    kind: "mongodb",
    collection<T extends Doc>(name: string): Collection<T> {
      let c = colls.get(name);
      if (!c) colls.set(name, (c = new MongoColl(name, db.collection(name))));
      return c as unknown as Collection<T>;
    },
    async ping() {
      await db.command({ ping: 1 }).catch(wrap);
    },
    async close() {
      await client.close();
    },
  };
}
