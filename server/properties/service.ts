import { EventEmitter } from "node:events";
import { AppError } from "../errors.js";
import { isResourceName } from "../gateway/protocol.js";
import { jsonDepth } from "../json.js";
import { insertIfAbsent, type Query } from "../store/types.js";
import { type Clock, systemClock } from "../auth/limiter.js";
import { type PropertyDoc, Repositories } from "../store/repos.js";
import { KeyedSerial } from "../serial.js";

/** Bounds on device properties (README "Limits", docs/protocol.md). */
export const PROPERTY_LIMITS = Object.freeze({
  /** Largest value, as JSON text (bytes): 413 property_too_large. */
  maxValueBytes: 16 * 1024,
  /** Deepest nesting of a value (the value itself is level 1): 400 invalid_request. */
  maxDepth: 16,
  /** Properties per device: 400 too_many_properties. */
  maxPerDevice: 128,
});

/** A property as the API and the device protocol show it. */
export interface Property {
  property: string;
  value: unknown;
  updated_ts: number;
}

/** One change (set or delete), whatever made it: REST, a JSON device, a Thinger device. */
export interface PropertyChange extends Property {
  user: string;
  device: string;
  deleted: boolean;
  /** Set when the device itself made the change (its own session need not be told). */
  origin?: "device";
}

export interface PropertyEvents {
  change: [PropertyChange];
}

/**
 * Device properties (issue 18): JSON values kept in the store per device, edited over REST while the device is
 * offline, read and written by the device over any protocol. Transport-neutral: the JSON session
 * (server/properties/device.ts), and the Thinger legacy (GET_PROPERTY/SET_PROPERTY, flags 11/12) and IOTMP
 * (READ_PROPERTY/SET_PROPERTY, server/thinger/requests.ts) sessions call `get`/`set`/`list`; `change` pushes
 * edits to JSON sessions (server/properties/device.ts; the Thinger protocols have no push, their devices read).
 */
export class PropertiesService extends EventEmitter<PropertyEvents> {
  /** New properties of one device are created one at a time here: a parallel burst cannot pass the count together. */
  private readonly creations = new KeyedSerial();
  /** Writes of one property run one at a time here (keyed by the property's `_id`). */
  private readonly writes = new KeyedSerial();

  /** `clock`: stamps `updated_ts` (the app's timers; tests pass a fake one). */
  constructor(private readonly repos: Repositories, private readonly limits = PROPERTY_LIMITS, private readonly clock: Clock = systemClock) {
    super();
    this.setMaxListeners(0);
  }

  /** 400 unless `name` follows the resource-name rules. */
  static checkName(name: unknown): string {
    if (!isResourceName(name)) throw new AppError("invalid_request", "invalid property name");
    return name;
  }

  /** The value as JSON text, or 400/413 when it breaks the documented bounds. */
  checkValue(value: unknown): string {
    if (value === undefined) throw new AppError("invalid_request", '"value" is required');
    if (!jsonDepth(value, this.limits.maxDepth)) throw new AppError("invalid_request", `property value nested deeper than ${this.limits.maxDepth} levels`);
    const json = JSON.stringify(value);
    if (Buffer.byteLength(json) > this.limits.maxValueBytes) {
      throw new AppError("property_too_large", `property value larger than ${this.limits.maxValueBytes} bytes as JSON`);
    }
    return json;
  }

  async list(user: string, device: string): Promise<Property[]> {
    const docs = await this.repos.properties.find({ deviceKey: Repositories.deviceKey(user, device) }, { sort: { property: 1 } });
    return docs.map(view);
  }

  async get(user: string, device: string, property: string): Promise<Property> {
    const doc = await this.repos.properties.findOne({ _id: key(user, device, property) });
    if (!doc) throw new AppError("property_not_found", `device has no property "${property}"`);
    return view(doc);
  }

  /**
   * Creates or replaces a property; emits `change`. The write is stamped newer than the value it replaces: with
   * the clock's time, or just after the stored `updated_ts` when that is not older (a write of the same instant,
   * or another cluster node's clock running ahead). So the store's last write always carries the newest
   * `updated_ts`, the order devices are pushed values in (server/properties/device.ts drops older pushes), and the
   * two cannot disagree whatever order concurrent writes reach the store in.
   */
  async set(user: string, device: string, property: string, value: unknown, origin?: "device"): Promise<Property> {
    PropertiesService.checkName(property);
    const valueJson = this.checkValue(value);
    const _id = key(user, device, property);
    // One write of a property at a time on this node (no lost compare-and-set round here); the conditional writes
    // below keep the order across nodes sharing one MongoDB.
    const updatedTs = await this.writes.run(_id, () => this.write(user, device, property, _id, valueJson));
    const p: Property = { property, value: JSON.parse(valueJson) as unknown, updated_ts: updatedTs };
    this.emit("change", { ...p, user, device, deleted: false, ...(origin ? { origin } : {}) });
    return p;
  }

  /** Stores the value stamped after whatever the store holds for the property; returns its `updated_ts`. */
  private async write(user: string, device: string, property: string, _id: string, valueJson: string): Promise<number> {
    const props = this.repos.properties;
    let updatedTs = this.clock.now();
    // Replace only a value stamped before ours; ends when a write of ours lands. Every failed round means another
    // writer's write landed in between, so the loop cannot spin without the store changing.
    let replaceable: Query = { _id, updatedTs: { $lt: updatedTs } };
    for (;;) {
      if ((await props.updateOne(replaceable, { $set: { valueJson, updatedTs } })) > 0) return updatedTs;
      const stored = await props.findOne({ _id });
      if (stored) {
        // Stamped at or after our time: ours comes after it. Replace exactly that value (compare-and-set).
        updatedTs = Math.max(updatedTs, stored.updatedTs + 1);
        replaceable = { _id, updatedTs: stored.updatedTs };
        continue;
      }
      if (await this.create(user, device, property, _id, valueJson, updatedTs)) return updatedTs;
      // Created meanwhile (a first write of it on another node): replace it as above.
      replaceable = { _id, updatedTs: { $lt: updatedTs } };
    }
  }

  /** Inserts a new property under the per-device limit; false when it exists already (then nothing is written). */
  private async create(user: string, device: string, property: string, _id: string, valueJson: string, updatedTs: number): Promise<boolean> {
    const deviceKey = Repositories.deviceKey(user, device);
    const created = await this.creations.run(deviceKey, async () => {
      if ((await this.repos.properties.count({ deviceKey })) >= this.limits.maxPerDevice) {
        throw new AppError("too_many_properties", `at most ${this.limits.maxPerDevice} properties per device`);
      }
      const doc: PropertyDoc = { _id, deviceKey, user, device, property, valueJson, updatedTs };
      return await insertIfAbsent(this.repos.properties, doc);
    });
    if (created && !(await this.repos.deviceStillExists(user, device))) {
      // Deleted while the property was created: not kept for a device re-created with the id.
      await this.repos.properties.deleteOne({ _id });
      throw new AppError("device_not_found");
    }
    return created;
  }

  /**
   * Deletes a property (404 property_not_found if there is none); emits `change` with `deleted: true`, stamped after
   * the value it deleted (so a device pushed that value, even one stamped ahead of the clock, is pushed the deletion).
   */
  async delete(user: string, device: string, property: string, origin?: "device"): Promise<void> {
    const _id = key(user, device, property);
    const props = this.repos.properties;
    const updatedTs = await this.writes.run(_id, async () => {
      for (;;) {
        const stored = await props.findOne({ _id });
        if (!stored) throw new AppError("property_not_found", `device has no property "${property}"`);
        // Only the value read (another node may replace it meanwhile: then read again).
        if ((await props.deleteOne({ _id, updatedTs: stored.updatedTs })) > 0) return Math.max(this.clock.now(), stored.updatedTs + 1);
      }
    });
    this.emit("change", { property, value: null, updated_ts: updatedTs, user, device, deleted: true, ...(origin ? { origin } : {}) });
  }
}

function key(user: string, device: string, property: string): string {
  return `${user}/${device}/${property}`;
}

function view(doc: PropertyDoc): Property {
  return { property: doc.property, value: JSON.parse(doc.valueJson) as unknown, updated_ts: doc.updatedTs };
}
