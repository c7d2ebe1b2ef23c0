import { AppError } from "../errors.js";
import { type DeviceDoc, Repositories } from "../store/repos.js";
import { DuplicateKeyError } from "../store/types.js";
import type { CredentialHasher } from "../auth/passwords.js";
import type { Hub } from "../gateway/hub.js";
import { CLOSE, DEVICE_RE } from "../gateway/protocol.js";
import { cacheKey, type RevocationCache } from "../auth/authenticator.js";
import type { Quotas } from "../auth/quotas.js";

/** Device ids: the protocol's rule (device-sdk/protocol.ts). */
export const DEVICE_ID_RE = DEVICE_RE;
export const MAX_DESCRIPTION = 256;
export const MAX_CREDENTIALS = 256;

export interface DeviceView {
  device: string;
  description: string;
  type: string;
  connection: { active: boolean; ts: number | null };
}

export interface NewDevice {
  id: string;
  description: string;
  credentials: string;
  type: string;
}

/** The device registry: CRUD over the store plus live connection state from the hub. */
export class DevicesService {
  constructor(
    private readonly repos: Repositories,
    private readonly credentials: CredentialHasher,
    private readonly hub: Hub,
    private readonly cache: RevocationCache,
    private readonly quotas?: Quotas,
  ) {}

  view(doc: DeviceDoc): DeviceView {
    // hub.stats covers sessions on this node and, in cluster mode, those other nodes announced.
    const st = this.hub.stats(doc.user, doc.device);
    return {
      device: doc.device,
      description: doc.description,
      type: typeof doc.type === "string" ? doc.type : "Generic",
      connection: { active: st.connected, ts: st.connected ? st.connected_ts : doc.lastConnectionTs },
    };
  }

  async list(user: string, id?: string): Promise<DeviceView[]> {
    const query: Record<string, unknown> = { user };
    if (id !== undefined) query.device = id;
    const docs = await this.repos.devices.find(query, { sort: { device: 1 }, limit: 10_000 });
    return docs.map((d) => this.view(d));
  }

  async get(user: string, device: string): Promise<DeviceDoc> {
    const doc = await this.repos.devices.findOne({ _id: Repositories.deviceKey(user, device) });
    if (!doc) throw new AppError("device_not_found");
    return doc;
  }

  async exists(user: string, device: string): Promise<boolean> {
    return this.hub.get(user, device) !== undefined || (await this.repos.devices.count({ _id: Repositories.deviceKey(user, device) })) > 0;
  }

  /**
   * The one place that tells `device_not_found` from `device_offline` once no session answered: the error a
   * caller gets when a device has no live session anywhere (registered or not).
   */
  async noSession(user: string, device: string): Promise<AppError> {
    return (await this.exists(user, device)) ? new AppError("device_offline") : new AppError("device_not_found");
  }

  /** Runs `fn`; a `device_offline` it throws becomes {@link noSession}'s answer. */
  async orNoSession<T>(user: string, device: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof AppError && err.code === "device_offline") throw await this.noSession(user, device);
      throw err;
    }
  }

  async create(user: string, d: NewDevice): Promise<DeviceDoc> {
    return this.quotas ? this.quotas.device(user, () => this.insert(user, d)) : this.insert(user, d);
  }

  private async insert(user: string, d: NewDevice): Promise<DeviceDoc> {
    const doc: DeviceDoc = {
      _id: Repositories.deviceKey(user, d.id), user, device: d.id, description: d.description, type: d.type,
      credentialsHash: this.credentials.hash(d.credentials), createdAt: Date.now(), lastConnectionTs: null,
    };
    try {
      await this.repos.devices.insertOne(doc);
    } catch (err) {
      if (err instanceof DuplicateKeyError) throw new AppError("device_exists", `device "${d.id}" already exists`);
      throw err;
    }
    if (!(await this.repos.accountStillExists(user))) {
      // The account was deleted meanwhile: a device (and credentials) left for an account re-created with the name.
      await this.repos.deleteDevice(user, d.id);
      throw new AppError("user_not_found");
    }
    return doc;
  }

  async update(user: string, device: string, patch: { description?: string; credentials?: string }): Promise<DeviceDoc> {
    const $set: Record<string, unknown> = {};
    if (patch.description !== undefined) $set.description = patch.description;
    if (patch.credentials !== undefined) $set.credentialsHash = this.credentials.hash(patch.credentials);
    const doc = Object.keys($set).length === 0
      ? await this.repos.devices.findOne({ _id: Repositories.deviceKey(user, device) })
      : await this.repos.devices.findOneAndUpdate({ _id: Repositories.deviceKey(user, device) }, { $set });
    if (!doc) throw new AppError("device_not_found");
    // A session opened with the old credentials must not outlive them (close 4001: reconnect with the new ones).
    if (patch.credentials !== undefined) this.hub.kick(user, device, CLOSE.unauthorized, "credentials changed");
    return doc;
  }

  /** Deletes a device. Refused while connected unless `force`, which closes its session with 4004 first. */
  async delete(user: string, device: string, force = false): Promise<void> {
    // Connected here or, in cluster mode, on another node (as announced over NATS).
    if (!force && this.hub.stats(user, device).connected) throw new AppError("device_connected");
    const tokens = await this.repos.deviceTokens.find({ user, device });
    if (!(await this.repos.deleteDevice(user, device))) throw new AppError("device_not_found");
    for (const t of tokens) this.cache.invalidate(cacheKey.deviceToken(t._id));
    // A session that authenticated between the check and the delete must not outlive its registration.
    this.hub.kick(user, device, CLOSE.deviceDeleted, "device deleted");
    this.hub.forget(user, device);
  }

  closeSession(user: string, device: string): void {
    if (!this.hub.closeSession(user, device, CLOSE.closedByUser, "closed by user")) throw new AppError("device_offline");
  }
}
