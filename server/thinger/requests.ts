import { AppError } from "../errors.js";
import type { Logger } from "../log.js";
import { type Property, PropertiesService } from "../properties/service.js";
import type { PsonValue } from "./pson-value.js";
import { tidyNumbers } from "./values.js";

/**
 * What a device asked the server for, protocol-neutral: the sessions read it off their own frames (legacy flags
 * 11/12 with the name in `identifier`; IOTMP RUN with READ_PROPERTY/SET_PROPERTY, THINGER-PROTOCOL §2.8, §3.8).
 * `name` and `value` are as the device sent them (unchecked).
 */
export type DeviceRequest =
  | { op: "get_property"; name: PsonValue | undefined }
  | { op: "set_property"; name: PsonValue | undefined; value: PsonValue | undefined }
  /** Buckets, endpoints, device-to-device calls, locks, event subscriptions, anything unknown: not served. */
  | { op: "unsupported"; kind: string };

/** The answer to a device request: OK with an optional payload, or the protocol's error (with a reason IOTMP can carry). */
export interface DeviceAnswer {
  ok: boolean;
  payload?: PsonValue | undefined;
  /** Why it failed (IOTMP ERROR carries it as `{"error": message}`; the legacy error has no room for it). */
  error?: string | undefined;
}

/** Serves device requests for the Thinger sessions. Never rejects: every failure is an error answer. */
export interface DeviceRequestHandler {
  answer(user: string, device: string, request: DeviceRequest): Promise<DeviceAnswer>;
}

/** `get`/`set` of the {@link PropertiesService}, as far as device requests need them. */
export type PropertyStore = Pick<PropertiesService, "get" | "set">;

/**
 * Device properties for Thinger devices: GET_PROPERTY/READ_PROPERTY answer OK with the raw value as payload
 * (what the Arduino library's `get_property` and IOTMP-Linux copy into the caller's value), SET_PROPERTY stores
 * the payload with origin "device" (so the device is not told of its own change), as the API shows device
 * values (float32 narrowing undone, bytes as base64). A missing property, a bad name, a value over the limits,
 * or a failing store: the protocol's error.
 */
export class ThingerPropertyRequests implements DeviceRequestHandler {
  constructor(
    private readonly properties: PropertyStore,
    private readonly logger: Logger,
  ) {}

  async answer(user: string, device: string, request: DeviceRequest): Promise<DeviceAnswer> {
    if (request.op === "unsupported") return { ok: false, error: "not supported by this server" };
    try {
      const name = PropertiesService.checkName(request.name);
      if (request.op === "get_property") {
        const p: Property = await this.properties.get(user, device, name);
        return { ok: true, payload: p.value as PsonValue };
      }
      if (request.value === undefined) return { ok: false, error: "a property value is required" };
      await this.properties.set(user, device, name, tidyNumbers(request.value), "device");
      return { ok: true };
    } catch (err) {
      if (err instanceof AppError) return { ok: false, error: err.message };
      this.logger.error({ err, user, device }, "thinger device property request failed");
      return { ok: false, error: "server error" };
    }
  }
}
