import { MongoClient, MongoServerError, type Db, type Collection as MongoCollection, type Document, type MongoClientOptions } from "mongodb";
import { type Collection, type Doc, DuplicateKeyError, type FindOptions, INDEXES, type Query, type Store, StoreUnavailableError, type Update } from "./types.js";

function isDuplicate(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === 11000;
}

/** Server error codes of a server going away (shutdown, step-down, network): the store is unavailable. */
const UNAVAILABLE_CODES = new Set([6, 7, 89, 91, 189, 9001, 10107, 11600, 11602, 13435, 13436]);

/** A driver failure that means "cannot reach the store" (→ 503), not a bug (→ 500). */
function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // ExpiredSession: an operation still running on a client replaced below (we use no explicit sessions).
  if (/^Mongo(Network|ServerSelection|NotConnected|Topology|PoolCleared|ExpiredSession)/.test(err.name)) return true;
  // The driver sometimes lets a socket's own error through: "This socket has been ended by the other party"
  // (EPIPE) when the server closed the connection as a command was written (seen with FerretDB stopped).
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && /^(EPIPE|ECONNRESET|ECONNREFUSED|ECONNABORTED|ETIMEDOUT|ERR_STREAM_(WRITE_AFTER_END|DESTROYED))$/.test(code)) return true;
  return err instanceof MongoServerError && typeof err.code === "number" && UNAVAILABLE_CODES.has(err.code);
}

/**
 * FerretDB's SQLite backend (our CI stand-in for MongoDB) answers concurrent writes with "database is locked
 * (SQLITE_BUSY)" where MongoDB would wait; nothing was written, so the call is tried again (see BUSY_RETRIES),
 * then answers 503. MongoDB never sends this.
 */
function isBusy(err: unknown): boolean {
  return err instanceof MongoServerError && /SQLITE_BUSY|database is locked/.test(err.message);
}

/** Up to 8 more tries, 20 ms apart growing linearly (≈ 0.8 s in all), before answering 503. */
const BUSY_RETRIES = 8;

async function retryBusy<R>(op: () => Promise<R>): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!isBusy(err) || attempt > BUSY_RETRIES) throw err;
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 20));
    }
  }
}

/**
 * The client behind a store, replaced when the store stays unreachable: after a server restart the driver's
 * monitor can stay stuck on a dead connection, and the old client then never recovers (seen with FerretDB
 * restarted under load, test/store-outage.test.ts) while a new client connects at once.
 */
class Connection {
  private client: MongoClient;
  private db: Db;
  private failingSince: number | null = null;

  constructor(private readonly url: string, private readonly options: MongoClientOptions, private readonly recycleAfterMs: number, client: MongoClient) {
    this.client = client;
    this.db = client.db();
  }

  collection(name: string): MongoCollection<Document> {
    return this.db.collection(name);
  }

  command(cmd: Document): Promise<Document> {
    return this.db.command(cmd);
  }

  /** Runs a driver call; connectivity failures become StoreUnavailableError and, if they last, a new client. */
  async run<R>(op: () => Promise<R>): Promise<R> {
    try {
      const r = await retryBusy(op);
      this.failingSince = null;
      return r;
    } catch (err) {
      if (isBusy(err)) throw new StoreUnavailableError({ cause: err });
      if (!isUnavailable(err)) throw err;
      const now = Date.now();
      if (this.failingSince === null) this.failingSince = now;
      else if (now - this.failingSince >= this.recycleAfterMs) this.recycle(now);
      throw new StoreUnavailableError({ cause: err });
    }
  }

  private recycle(now: number): void {
    const old = this.client;
    this.client = new MongoClient(this.url, this.options);
    this.db = this.client.db();
    this.failingSince = now;
    void old.close(true).catch(() => undefined);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

class MongoColl<T extends Doc> implements Collection<T> {
  constructor(private readonly name: string, private readonly conn: Connection) {}
  private get c(): MongoCollection<Document> {
    return this.conn.collection(this.name);
  }
  async insertOne(doc: T): Promise<void> {
    try {
      await this.conn.run(() => this.c.insertOne({ ...doc } as Document));
    } catch (err) {
      if (isDuplicate(err)) throw new DuplicateKeyError(this.name, { cause: err });
      throw err;
    }
  }
  async findOne(query: Query): Promise<T | null> {
    return (await this.conn.run(() => this.c.findOne(query))) as T | null;
  }
  async find(query: Query, options: FindOptions = {}): Promise<T[]> {
    return (await this.conn.run(() => {
      let cursor = this.c.find(query);
      if (options.sort) cursor = cursor.sort(options.sort);
      if (options.skip !== undefined) cursor = cursor.skip(options.skip);
      if (options.limit !== undefined) cursor = cursor.limit(options.limit);
      return cursor.toArray();
    })) as unknown as T[];
  }
  async updateOne(query: Query, update: Update): Promise<number> {
    return (await this.conn.run(() => this.c.updateOne(query, update))).matchedCount;
  }
  async updateMany(query: Query, update: Update): Promise<number> {
    return (await this.conn.run(() => this.c.updateMany(query, update))).matchedCount;
  }
  async findOneAndUpdate(query: Query, update: Update): Promise<T | null> {
    return (await this.conn.run(() => this.c.findOneAndUpdate(query, update, { returnDocument: "after" }))) as T | null;
  }
  async deleteOne(query: Query): Promise<number> {
    return (await this.conn.run(() => this.c.deleteOne(query))).deletedCount;
  }
  async deleteMany(query: Query): Promise<number> {
    return (await this.conn.run(() => this.c.deleteMany(query))).deletedCount;
  }
  async count(query: Query): Promise<number> {
    return await this.conn.run(() => this.c.countDocuments(query));
  }
}

/** MongoDB backend (production, cluster mode). Creates the secondary indexes at start. */
export async function openMongoStore(url: string, options: { serverSelectionTimeoutMS?: number } = {}): Promise<Store> {
  const clientOptions: MongoClientOptions = { serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 5_000 };
  const client = new MongoClient(url, clientOptions);
  await client.connect();
  const db: Db = client.db();
  for (const { collection, field, unique } of INDEXES) {
    await db.collection(collection).createIndex({ [field]: 1 }, unique ? { unique: true, sparse: true } : {});
  }
  // Unreachable for two server selection timeouts in a row (10 s by default): start over with a new client.
  const conn = new Connection(url, clientOptions, 2 * clientOptions.serverSelectionTimeoutMS!, client);
  const colls = new Map<string, MongoColl<Doc>>();
  return {
    kind: "mongodb",
    collection<T extends Doc>(name: string): Collection<T> {
      let c = colls.get(name);
      if (!c) colls.set(name, (c = new MongoColl(name, conn)));
      return c as unknown as Collection<T>;
    },
    async ping() {
      await conn.run(() => conn.command({ ping: 1 }));
    },
    async close() {
      await conn.close();
    },
  };
}
