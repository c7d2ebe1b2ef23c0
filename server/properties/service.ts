import { EventEmitter } from "node:events";
import { AppError } from "../errors.js";
import { isResourceName } from "../gateway/protocol.js";
import { jsonDepth } from "../json.js";
import { DuplicateKeyError } from "../store/types.js";
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

  constructor(private readonly repos: Repositories, private readonly limits = PROPERTY_LIMITS) {
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

  /** Creates or replaces a property; emits `change`. */
  async set(user: string, device: string, property: string, value: unknown, origin?: "device"): Promise<Property> {
    PropertiesService.checkName(property);
    const valueJson = this.checkValue(value);
    const updatedTs = Date.now();
    const _id = key(user, device, property);
    const n = await this.repos.properties.updateOne({ _id }, { $set: { valueJson, updatedTs } });
    if (n === 0) {
      const deviceKey = Repositories.deviceKey(user, device);
      await this.creations.run(deviceKey, async () => {
        // Created meanwhile by a parallel first write of the same property: this one replaces it.
        if ((await this.repos.properties.updateOne({ _id }, { $set: { valueJson, updatedTs } })) > 0) return;
        if ((await this.repos.properties.count({ deviceKey })) >= this.limits.maxPerDevice) {
          throw new AppError("too_many_properties", `at most ${this.limits.maxPerDevice} properties per device`);
        }
        const doc: PropertyDoc = { _id, deviceKey, user, device, property, valueJson, updatedTs };
        try {
          await this.repos.properties.insertOne(doc);
        } catch (err) {
          // A concurrent first write of the same property: ours is the later one.
          if (!(err instanceof DuplicateKeyError)) throw err;
          await this.repos.properties.updateOne({ _id }, { $set: { valueJson, updatedTs } });
        }
      });
      if (!(await this.repos.deviceStillExists(user, device))) {
        // Deleted while the property was created: not kept for a device re-created with the id.
        await this.repos.properties.deleteOne({ _id });
        throw new AppError("device_not_found");
      }
    }
    const p: Property = { property, value: JSON.parse(valueJson) as unknown, updated_ts: updatedTs };
    this.emit("change", { ...p, user, device, deleted: false, ...(origin ? { origin } : {}) });
    return p;
  }

  /** Deletes a property (404 property_not_found if there is none); emits `change` with `deleted: true`. */
  async delete(user: string, device: string, property: string, origin?: "device"): Promise<void> {
    if ((await this.repos.properties.deleteOne({ _id: key(user, device, property) })) === 0) {
      throw new AppError("property_not_found", `device has no property "${property}"`);
    }
    this.emit("change", { property, value: null, updated_ts: Date.now(), user, device, deleted: true, ...(origin ? { origin } : {}) });
  }
}

function key(user: string, device: string, property: string): string {
  return `${user}/${device}/${property}`;
}

function view(doc: PropertyDoc): Property {
  return { property: doc.property, value: JSON.parse(doc.valueJson) as unknown, updated_ts: doc.updatedTs };
}
