import { randomUUID } from "node:crypto";
import { ErrorCode, JSONCodec, NatsError, type Msg, type NatsConnection, type Subscription } from "nats";
import { AppError, ERROR_CODES } from "../errors.js";
import type { Logger } from "../log.js";
import type { DeviceOp, Reply } from "./messages.js";

/**
 * This node's NATS connection as the cluster parts use it: its node id, the subject names under the prefix,
 * JSON publish/subscribe that never throw into listeners, and device requests mapped to the API's errors.
 */
export class ClusterLink {
  readonly nodeId = randomUUID();
  readonly codec = JSONCodec<unknown>();
  /** False while the NATS connection is down: remote calls then answer 503 at once instead of waiting. */
  connected = true;

  /** `prefix`: subject prefix (tests use their own so runs never mix). */
  constructor(readonly nc: NatsConnection, private readonly logger: Logger, readonly prefix = "thingrelay") {}

  get closed(): boolean {
    return this.nc.isClosed();
  }

  subject(name: string): string {
    return `${this.prefix}.${name}`;
  }

  deviceSubject(user: string, device: string): string {
    return `${this.prefix}.dev.${user}.${device}`;
  }

  /** Subscribes with a decoded payload; messages that are not JSON are dropped. */
  subscribe<T>(subject: string, fn: (payload: T, msg: Msg) => void): Subscription {
    return this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let payload: T;
        try {
          payload = this.codec.decode(msg.data) as T;
        } catch {
          return;
        }
        fn(payload, msg);
      },
    });
  }

  /**
   * Publishes unless the NATS connection is closed (node shutting down): never throws into hub listeners.
   * `reply`: the subject receivers answer on (acknowledgements).
   */
  publish(subject: string, payload: unknown, reply?: string): boolean {
    if (this.nc.isClosed()) return false;
    try {
      this.nc.publish(subject, this.codec.encode(payload), reply === undefined ? undefined : { reply });
      return true;
    } catch (err) {
      this.logger.warn({ err, subject }, "cluster publish failed");
      return false;
    }
  }

  /** Asks the node holding the device; no holder → device_offline, no answer in time → device_timeout. */
  async request(user: string, device: string, op: DeviceOp, timeout: number): Promise<Extract<Reply, { ok: true }>> {
    // While NATS is down a request would wait for the reconnect or its timeout: fail fast instead.
    if (!this.connected || this.nc.isClosed()) {
      throw new AppError("service_unavailable", "cluster messaging unavailable", { headers: { "Retry-After": "1" } });
    }
    let msg: Msg;
    try {
      msg = await this.nc.request(this.deviceSubject(user, device), this.codec.encode(op), { timeout });
    } catch (err) {
      if (err instanceof NatsError && err.code === ErrorCode.NoResponders) throw new AppError("device_offline");
      if (err instanceof NatsError && err.code === ErrorCode.Timeout) {
        throw new AppError("device_timeout", "the node holding the device did not answer in time", { cause: err });
      }
      throw new AppError("service_unavailable", "cluster messaging unavailable", { cause: err, headers: { "Retry-After": "1" } });
    }
    const reply = this.codec.decode(msg.data) as Reply;
    if (!reply.ok) {
      const code = reply.code in ERROR_CODES ? reply.code : "internal_error";
      throw new AppError(code, reply.message, { status: reply.status, headers: reply.headers });
    }
    return reply;
  }
}
