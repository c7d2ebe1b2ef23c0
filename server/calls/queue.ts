import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Hub } from "../gateway/hub.js";
import type { ClusterBridge } from "../cluster/bridge.js";
import { type CallStatus, type QueuedCallDoc, Repositories } from "../store/repos.js";
import { checkVerb, knownKinds } from "../relay/kinds.js";
import { KeyedSerial } from "../serial.js";

/** `?ttl=` of a queued call, in seconds. */
export const CALL_TTL = Object.freeze({ defaultS: 3600, maxS: 604_800 });
/** Longest wait for a device's resource kinds (a Thinger device asked again) before a queued call's kind check. */
const KIND_WAIT_MS = 2_000;
/** Finished calls (succeeded, failed, expired, cancelled) stay readable this long, then are purged. */
export const CALL_RETENTION_MS = 7 * 24 * 3_600_000;

/**
 * A new call id: 16 base64url characters, never starting with "-" (1 in 64 would), which a command line
 * (`thingrelay calls <device> <id>`) would take for an option.
 */
export function newCallId(): string {
  for (;;) {
    const id = randomBytes(12).toString("base64url");
    if (id[0] !== "-") return id;
  }
}
/** A running call's lease: its timeout plus this margin. Past it, a call still `running` was cut by a crash. */
const LEASE_MARGIN_MS = 5_000;
/** Errors that mean the call never left the server: it goes back to the queue. */
const NOT_SENT = new Set(["device_offline", "device_busy"]);

/** A queued call as `GET …/calls/{id}` shows it. */
export interface CallView {
  id: string;
  resource: string;
  status: CallStatus;
  out?: unknown;
  error?: { code: string; message: string; status: number };
  created_ts: number;
  done_ts: number | null;
}

export interface CallQueueOptions {
  maxPerDevice: number;
  maxPerUser: number;
  /** How often the holding node looks for calls it was not told about (ms). */
  pollMs: number;
  /** True when other nodes share the store: a start then leaves their running calls to their leases. */
  shared: boolean;
}

export interface CallQueueEvents {
  /** A call reached a final state (the account event stream shows it as a `call` event). */
  done: [{ user: string; device: string; call: CallView }];
}

/**
 * Queued calls (`Prefer: respond-async`, issue 18). Calls are persisted first, then delivered one at a time
 * per device, in creation order, by the node holding the device session: at once if it is connected, else when
 * it next comes online here. A call is claimed (`queued` → `running`) by an atomic store update before it is
 * sent, so two drains can never send it twice; once sent it is never sent again — a crash while it runs leaves
 * it `failed` with `call_interrupted`, a device that drops mid-call leaves it `failed` with `device_disconnected`.
 */
export class CallQueue extends EventEmitter<CallQueueEvents> {
  private readonly draining = new Map<string, { again: boolean }>();
  private readonly enqueues = new KeyedSerial();
  private readonly unhook: Array<() => void> = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private seqCounter = 0;
  private closed = false;

  constructor(
    private readonly repos: Repositories,
    private readonly hub: Hub,
    private readonly logger: Logger,
    private readonly options: CallQueueOptions,
    private readonly cluster?: ClusterBridge,
  ) {
    super();
    this.setMaxListeners(0);
    if (!Number.isInteger(options.pollMs) || options.pollMs < 1) throw new RangeError('"pollMs" must be a positive integer');
  }

  /**
   * Fails the calls a previous run of this server left `running` (single node: nobody else can be running
   * them), then starts delivering: on every local `online`, on notes from other nodes, and on a slow poll.
   */
  async start(): Promise<void> {
    if (!this.options.shared) {
      const n = await this.repos.calls.updateMany({ status: "running" }, { $set: interrupted(Date.now()) });
      if (n > 0) this.logger.warn({ calls: n }, "queued calls that were running at the last stop marked failed (call_interrupted)");
    }
    const onOnline = (e: { user: string; device: string; remote?: boolean }) => {
      if (e.remote !== true) this.drain(e.user, e.device);
    };
    this.hub.on("online", onOnline);
    this.unhook.push(() => this.hub.off("online", onOnline));
    if (this.cluster) {
      const cluster = this.cluster;
      const onNotify = (user: string, device: string, kind: string) => {
        if (kind === "drain") this.drain(user, device);
      };
      cluster.on("notify", onNotify);
      this.unhook.push(() => cluster.off("notify", onNotify));
    }
    this.pollTimer = setInterval(() => void this.poll(), this.options.pollMs);
    this.pollTimer.unref();
    // Devices that connected while the recovery above ran: their `online` came before the listener.
    await this.poll();
  }

  close(): void {
    this.closed = true;
    clearInterval(this.pollTimer);
    for (const u of this.unhook.splice(0)) u();
  }

  /**
   * The relay's kind check for a queued call (always a POST), before it is accepted: when the device is held here
   * and described, an output answers 405 `method_not_allowed` (Allow: GET) and an unknown resource 404, as a direct
   * call would. Devices offline or held elsewhere are checked at delivery.
   */
  async checkKind(user: string, device: string, resource: string): Promise<void> {
    const session = this.hub.get(user, device);
    if (!session || session.isClosed) return;
    await knownKinds(session, KIND_WAIT_MS);
    checkVerb(session, resource, "POST");
    if (session.resourceKind(resource) === undefined) throw new AppError("resource_not_found", `device has no resource "${resource}"`);
  }

  /** Persists a call and starts its delivery (here, or on the node holding the device). */
  async enqueue(user: string, device: string, resource: string, hasInput: boolean, input: unknown, ttlS: number, timeoutMs: number): Promise<CallView> {
    const deviceKey = Repositories.deviceKey(user, device);
    // One enqueue at a time per account here: a parallel burst cannot pass the counts together.
    const doc = await this.enqueues.run(user, async () => {
      const retry = { headers: { "Retry-After": "30" } };
      if ((await this.repos.calls.count({ deviceKey, status: "queued" })) >= this.options.maxPerDevice) {
        throw new AppError("queue_full", `at most ${this.options.maxPerDevice} queued calls per device`, retry);
      }
      if ((await this.repos.calls.count({ user, status: "queued" })) >= this.options.maxPerUser) {
        throw new AppError("queue_full", `at most ${this.options.maxPerUser} queued calls per account`, retry);
      }
      const now = Date.now();
      const call: QueuedCallDoc = {
        _id: newCallId(), deviceKey, user, device, resource, hasInput,
        ...(hasInput ? { inputJson: JSON.stringify(input ?? null) } : {}),
        status: "queued",
        seq: `${String(now).padStart(15, "0")}-${String(this.seqCounter++ % 1e9).padStart(9, "0")}`,
        createdTs: now, expiresTs: now + ttlS * 1000, timeoutMs, doneTs: null,
      };
      await this.repos.calls.insertOne(call);
      return call;
    });
    if (!(await this.repos.deviceStillExists(user, device))) {
      // Deleted while the call was queued: never delivered to a device re-created with the id.
      await this.repos.calls.deleteOne({ _id: doc._id });
      throw new AppError("device_not_found");
    }
    if (this.hub.get(user, device)) this.drain(user, device);
    else this.cluster?.notify(user, device, "drain", null);
    return view(doc);
  }

  /** One call of the device (404 call_not_found otherwise), its lapsed states settled first. */
  async get(user: string, device: string, id: string): Promise<CallView> {
    const doc = await this.repos.calls.findOne({ _id: id, deviceKey: Repositories.deviceKey(user, device) });
    if (!doc) throw new AppError("call_not_found");
    return view(await this.settleLapsed(doc));
  }

  /** A page of the device's calls, newest first, and how many there are. */
  /** A device's calls, newest first (bounded by the queue limits and the retention of finished calls). */
  async listAll(user: string, device: string): Promise<CallView[]> {
    const docs = await this.repos.calls.find({ deviceKey: Repositories.deviceKey(user, device) }, { sort: { seq: -1 } });
    const items: CallView[] = [];
    for (const d of docs) items.push(view(await this.settleLapsed(d)));
    return items;
  }

  /** Cancels a call that is still queued; 409 call_not_queued once it ran, ended or lapsed. */
  async cancel(user: string, device: string, id: string): Promise<CallView> {
    const now = Date.now();
    const doc = await this.repos.calls.findOneAndUpdate(
      { _id: id, deviceKey: Repositories.deviceKey(user, device), status: "queued", expiresTs: { $gt: now } },
      { $set: { status: "cancelled", doneTs: now } },
    );
    if (doc) {
      const v = view(doc);
      this.emit("done", { user, device, call: v });
      return v;
    }
    const current = await this.get(user, device, id);
    throw new AppError("call_not_queued", `the call is ${current.status}`);
  }

  /** Starts (or re-runs) the delivery loop of a device held here. No-op for devices held elsewhere. */
  drain(user: string, device: string): void {
    if (this.closed || !this.hub.get(user, device)) return;
    const key = Repositories.deviceKey(user, device);
    const running = this.draining.get(key);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false };
    this.draining.set(key, state);
    void (async () => {
      try {
        do {
          state.again = false;
          await this.deliverAll(user, device);
        } while (state.again && !this.closed);
      } catch (err) {
        this.logger.error({ err, user, device }, "queued call delivery failed");
      } finally {
        this.draining.delete(key);
      }
    })();
  }

  /** Deletes finished calls past their retention. */
  async purge(now = Date.now()): Promise<number> {
    return await this.repos.calls.deleteMany({ doneTs: { $lt: now - CALL_RETENTION_MS } });
  }

  private async deliverAll(user: string, device: string): Promise<void> {
    const deviceKey = Repositories.deviceKey(user, device);
    for (;;) {
      const session = this.hub.get(user, device);
      if (!session || session.isClosed || this.closed) return;
      const now = Date.now();
      const [next] = await this.repos.calls.find({ deviceKey, status: "queued" }, { sort: { seq: 1 }, limit: 1 });
      if (!next) return;
      if (next.expiresTs <= now) {
        await this.settleLapsed(next);
        continue;
      }
      const claimed = await this.repos.calls.findOneAndUpdate(
        { _id: next._id, status: "queued" },
        { $set: { status: "running", leaseTs: now + next.timeoutMs + LEASE_MARGIN_MS } },
      );
      if (!claimed) continue; // cancelled meanwhile
      const input = claimed.inputJson === undefined ? undefined : (JSON.parse(claimed.inputJson) as unknown);
      let update: Partial<QueuedCallDoc>;
      try {
        // The kind check again (the device may have been offline, or re-described, when the call was queued):
        // a wrong-kind call ends failed with method_not_allowed and never runs.
        await knownKinds(session, KIND_WAIT_MS);
        checkVerb(session, claimed.resource, "POST");
        const r = await session.call(claimed.resource, input, claimed.hasInput, claimed.timeoutMs);
        update = { status: "succeeded", doneTs: Date.now(), hasOut: r.hasOut, ...(r.hasOut ? { outJson: JSON.stringify(r.out ?? null) } : {}) };
      } catch (err) {
        const e = err instanceof AppError ? err : new AppError("internal_error", undefined, { cause: err });
        if (NOT_SENT.has(e.code)) {
          // Never reached the device: back in the queue, first in line. Busy: try again shortly.
          await this.repos.calls.updateOne({ _id: claimed._id, status: "running" }, { $set: { status: "queued" }, $unset: { leaseTs: true } });
          if (e.code === "device_busy") setTimeout(() => this.drain(user, device), 1_000).unref();
          return;
        }
        if (!(err instanceof AppError)) this.logger.error({ err, user, device }, "queued call failed unexpectedly");
        update = { status: "failed", doneTs: Date.now(), error: { code: e.code, message: e.message, status: e.status } };
      }
      const done = await this.repos.calls.findOneAndUpdate({ _id: claimed._id, status: "running" }, { $set: update });
      if (done) this.emit("done", { user, device, call: view(done) });
    }
  }

  /** Settles in the store what time alone decided: a queued call past its ttl, a running one past its lease. */
  private async settleLapsed(doc: QueuedCallDoc): Promise<QueuedCallDoc> {
    const now = Date.now();
    let update: Partial<QueuedCallDoc> | undefined;
    if (doc.status === "queued" && doc.expiresTs <= now) {
      update = { status: "expired", doneTs: doc.expiresTs };
    } else if (doc.status === "running" && doc.leaseTs !== undefined && doc.leaseTs < now) {
      update = interrupted(now);
    }
    if (!update) return doc;
    const after = await this.repos.calls.findOneAndUpdate({ _id: doc._id, status: doc.status }, { $set: update });
    if (after) {
      this.emit("done", { user: doc.user, device: doc.device, call: view(after) });
      return after;
    }
    return (await this.repos.calls.findOne({ _id: doc._id })) ?? doc;
  }

  /** Delivers to devices held here that have calls waiting (missed notes, retries), expires lapsed ones, purges old ones. */
  private async poll(): Promise<void> {
    try {
      const waiting = await this.repos.calls.find({ status: "queued" }, { limit: 1000 });
      const keys = new Set(waiting.map((d) => d.deviceKey));
      for (const d of waiting) if (d.expiresTs <= Date.now()) await this.settleLapsed(d);
      for (const key of keys) {
        const [user, device] = key.split("/") as [string, string];
        this.drain(user, device);
      }
      await this.purge();
    } catch (err) {
      this.logger.warn({ err }, "queued call poll failed");
    }
  }
}

function interrupted(now: number): Partial<QueuedCallDoc> {
  return {
    status: "failed", doneTs: now,
    error: { code: "call_interrupted", message: "the server stopped while the call was running; it was not sent again", status: 502 },
  };
}

export function view(doc: QueuedCallDoc): CallView {
  const v: CallView = { id: doc._id, resource: doc.resource, status: doc.status, created_ts: doc.createdTs, done_ts: doc.doneTs };
  if (doc.status === "succeeded" && doc.hasOut) v.out = doc.outJson === undefined ? null : (JSON.parse(doc.outJson) as unknown);
  if (doc.error) v.error = doc.error;
  return v;
}
