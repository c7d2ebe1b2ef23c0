import type { Permission } from "../auth/permission.js";
import { type Collection, insertIfAbsent, type Store } from "./types.js";

export interface UserDoc {
  [key: string]: unknown;
  _id: string; // = username
  username: string;
  /** Lower-cased name: names are unique regardless of case. */
  lower?: string;
  passwordHash: string;
  admin: boolean;
  createdAt: number;
  passwordChangedAt: number;
  /** false: disabled by an administrator (sign-in, tokens and devices refused); absent = enabled. */
  enabled?: boolean;
  /** Failed sign-ins of the current per-account window and when it started (ms): the cluster-wide lock. */
  loginFailStart?: number;
  loginFailCount?: number;
}

export interface DeviceDoc {
  [key: string]: unknown;
  _id: string; // = `${user}/${device}`
  user: string;
  device: string;
  description: string;
  credentialsHash: string;
  createdAt: number;
  /** Last time (ms) a session of this device started or ended; null if it never connected. */
  lastConnectionTs: number | null;
}

export interface FamilyDoc {
  [key: string]: unknown;
  _id: string; // family id, carried by access tokens as `fam`
  user: string;
  createdAt: number;
  revoked: boolean;
  revokedReason: string | null;
}

export interface RefreshDoc {
  [key: string]: unknown;
  _id: string; // SHA-256 of the refresh token: a dump yields no usable token
  family: string;
  user: string;
  used: boolean;
  createdAt: number;
  expiresAt: number;
}

/** The claim that makes a refresh token's consumption exactly-once on every backend (`_id` = its hash). */
export interface RefreshClaimDoc {
  [key: string]: unknown;
  _id: string;
  usedAt: number;
  expiresAt: number;
}

export interface DeviceTokenDoc {
  [key: string]: unknown;
  _id: string; // jti
  user: string;
  device: string;
  name: string;
  resources: string[] | null;
  iat: number; // seconds
  exp: number | null; // seconds
}

export interface UserTokenDoc {
  [key: string]: unknown;
  _id: string; // jti
  user: string;
  name: string;
  enabled: boolean;
  allow: Permission[];
  deny: Permission[];
  iat: number; // seconds
  exp: number | null; // seconds
  createdAt: number;
  updatedAt: number;
}

/** One device property (issue 18): a JSON value kept server-side. */
export interface PropertyDoc {
  [key: string]: unknown;
  _id: string; // `${user}/${device}/${property}`
  deviceKey: string; // `${user}/${device}`
  user: string;
  device: string;
  property: string;
  /** The value as JSON text: nedb refuses keys with "." or a leading "$", which a JSON value may have. */
  valueJson: string;
  updatedTs: number;
}

export type CallStatus = "queued" | "running" | "succeeded" | "failed" | "expired" | "cancelled";

/** A queued (`Prefer: respond-async`) relay call (issue 18). */
export interface QueuedCallDoc {
  [key: string]: unknown;
  _id: string; // random id, the one in the Location URL
  deviceKey: string;
  user: string;
  device: string;
  resource: string;
  hasInput: boolean;
  /** Input and output as JSON text (see PropertyDoc.valueJson). */
  inputJson?: string;
  status: CallStatus;
  /** Delivery order within a device: creation time, then a per-process counter. */
  seq: string;
  createdTs: number;
  /** Deliver before this time (ms) or expire. */
  expiresTs: number;
  timeoutMs: number;
  /** While running: after this time (ms) the run is known to be over (a crash left it `running`). */
  leaseTs?: number;
  doneTs: number | null;
  hasOut?: boolean;
  outJson?: string;
  error?: { code: string; message: string; status: number };
}

/** The first outcome of a request sent with an `Idempotency-Key` (issue 18). */
export interface IdempotencyDoc {
  [key: string]: unknown;
  _id: string; // `${user}/${sha256(key)}`
  user: string;
  fingerprint: string;
  /** `interrupted`: answered call_interrupted (its node seemed gone); the first request's outcome may still replace it. */
  state: "in_flight" | "done" | "interrupted";
  /** While in flight: after this time (ms) the first request is known to be over (renewed while it runs). */
  leaseTs: number;
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  createdTs: number;
  expiresTs: number;
}

/** A console dashboard (issue 19, server/dashboards). */
export interface DashboardDoc {
  [key: string]: unknown;
  _id: string; // `${user}/${id}`
  user: string;
  id: string;
  name: string;
  /** Widgets as JSON text: nedb refuses keys with "." or a leading "$", which a widget's `options` may hold. */
  widgetsJson: string;
  createdTs: number;
  updatedTs: number;
}

/** Typed access to every collection, written once over the {@link Collection} interface. */
export class Repositories {
  readonly users: Collection<UserDoc>;
  readonly devices: Collection<DeviceDoc>;
  readonly families: Collection<FamilyDoc>;
  readonly refreshTokens: Collection<RefreshDoc>;
  readonly refreshClaims: Collection<RefreshClaimDoc>;
  readonly deviceTokens: Collection<DeviceTokenDoc>;
  readonly userTokens: Collection<UserTokenDoc>;
  readonly properties: Collection<PropertyDoc>;
  readonly calls: Collection<QueuedCallDoc>;
  readonly idempotency: Collection<IdempotencyDoc>;
  readonly dashboards: Collection<DashboardDoc>;

  constructor(readonly store: Store) {
    this.users = store.collection<UserDoc>("users");
    this.devices = store.collection<DeviceDoc>("devices");
    this.families = store.collection<FamilyDoc>("refresh_families");
    this.refreshTokens = store.collection<RefreshDoc>("refresh_tokens");
    this.refreshClaims = store.collection<RefreshClaimDoc>("refresh_claims");
    this.deviceTokens = store.collection<DeviceTokenDoc>("device_tokens");
    this.userTokens = store.collection<UserTokenDoc>("user_tokens");
    this.properties = store.collection<PropertyDoc>("device_properties");
    this.calls = store.collection<QueuedCallDoc>("queued_calls");
    this.idempotency = store.collection<IdempotencyDoc>("idempotency_keys");
    this.dashboards = store.collection<DashboardDoc>("dashboards");
  }

  static deviceKey(user: string, device: string): string {
    return `${user}/${device}`;
  }

  /**
   * Marks a refresh token used exactly once; concurrent callers: one gets the doc, the rest null (and find it
   * marked used once this returns). The winner is whoever inserts the token's claim first: a unique insert is
   * atomic on every backend, while a conditional findOneAndUpdate is not on FerretDB (see Collection).
   */
  async consumeRefreshToken(hash: string, now: number): Promise<RefreshDoc | null> {
    const doc = await this.refreshTokens.findOne({ _id: hash, used: false });
    if (!doc) return null;
    const won = await insertIfAbsent(this.refreshClaims, { _id: hash, usedAt: now, expiresAt: doc.expiresAt });
    const usedAt = won ? now : (await this.refreshClaims.findOne({ _id: hash }))?.usedAt ?? now;
    await this.refreshTokens.updateOne({ _id: hash, used: false }, { $set: { used: true, usedAt } });
    return won ? { ...doc, used: true, usedAt } : null;
  }

  async revokeFamily(family: string, reason: string): Promise<void> {
    await this.families.updateOne({ _id: family }, { $set: { revoked: true, revokedReason: reason } });
  }

  /** Revokes every refresh family of a user (password change, user deletion). */
  async revokeUserFamilies(user: string, reason: string): Promise<number> {
    return await this.families.updateMany({ user, revoked: false }, { $set: { revoked: true, revokedReason: reason } });
  }

  /**
   * Deletes refresh tokens past their expiry and the families left without any, a batch at a time. Used
   * tokens are kept until they expire: they are what reveals a reuse.
   */
  async purgeExpired(now: number, familyTtlMs: number, batch = 1000): Promise<{ tokens: number; families: number }> {
    const tokens = await this.refreshTokens.deleteMany({ expiresAt: { $lt: now } });
    await this.refreshClaims.deleteMany({ expiresAt: { $lt: now } });
    let families = 0;
    for (const f of await this.families.find({ createdAt: { $lt: now - familyTtlMs } }, { limit: batch })) {
      if ((await this.refreshTokens.count({ family: f._id })) === 0) families += await this.families.deleteOne({ _id: f._id });
    }
    return { tokens, families };
  }

  /**
   * Whether the device is registered, asked by a writer right after it added something the device owns (a token, a
   * property, a queued call): {@link deleteDevice} removes the device before what it owns, so either this sees the
   * deletion (the writer takes its write back) or the deletion's cascade runs after the write and removes it. Checked
   * only before the write, a deletion in between left the write behind, for a device re-created with the id to find.
   */
  async deviceStillExists(user: string, device: string): Promise<boolean> {
    return (await this.devices.count({ _id: Repositories.deviceKey(user, device) })) > 0;
  }

  /**
   * The same for what an account owns directly (devices, user tokens, dashboards): an account's deletion removes the
   * user first, then what it owns (server/users/account.ts).
   */
  async accountStillExists(user: string): Promise<boolean> {
    return (await this.users.count({ _id: user })) > 0;
  }

  /** Deletes a device with its tokens, properties and queued calls. */
  async deleteDevice(user: string, device: string): Promise<boolean> {
    const n = await this.devices.deleteOne({ _id: Repositories.deviceKey(user, device) });
    if (n > 0) await this.deviceTokens.deleteMany({ user, device });
    if (n > 0) await this.properties.deleteMany({ deviceKey: Repositories.deviceKey(user, device) });
    if (n > 0) await this.calls.deleteMany({ deviceKey: Repositories.deviceKey(user, device) });
    return n > 0;
  }
}
