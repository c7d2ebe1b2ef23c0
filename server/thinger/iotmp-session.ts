import { AppError } from "../errors.js";
import type { ResourceKind } from "../gateway/protocol.js";
import type { Frame } from "./frame-reader.js";
import { decodeIotmpFrame, encodeIotmpMessage, IOTMP_KEEPALIVE, IOTMP_TYPE, type IotmpDialect, type IotmpMessage } from "./iotmp-frame.js";
import type { PsonValue } from "./pson-value.js";
import { isObject, kindOfFn, type Reply, ThingerSession, type ThingerSessionOptions } from "./session-base.js";
import type { DeviceLink } from "./link.js";


/**
 * A device speaking IOTMP (the Thinger Linux clients, IOTMP-Embedded): THINGER-PROTOCOL §3. Resources are
 * "a/b" strings (path templates such as `gpio/:pin` are matched against the describe cache), errors may carry
 * `{"error": message}` and a code, stream samples are raw `STREAM_DATA`, and each (re)start gets a fresh id.
 * The dialect (PSON v1 or v2) was read from CONNECT and is kept for the whole connection.
 */
export class IotmpSession extends ThingerSession {
  constructor(user: string, device: string, link: DeviceLink, options: ThingerSessionOptions, readonly dialect: IotmpDialect) {
    super(user, device, link, options);
  }

  handleFrame(frame: Frame): void {
    if (frame.type === IOTMP_TYPE.KEEP_ALIVE) {
      this.write(IOTMP_KEEPALIVE);
      return;
    }
    const m = decodeIotmpFrame(frame, this.dialect);
    switch (frame.type) {
      case IOTMP_TYPE.OK:
      case IOTMP_TYPE.ERROR:
        this.settle(m.streamId, { ok: frame.type === IOTMP_TYPE.OK, payload: m.payload, code: typeof m.params === "number" ? m.params : undefined });
        return;
      case IOTMP_TYPE.STREAM_DATA:
        this.sample(m.streamId, m.payload ?? null);
        return;
      case IOTMP_TYPE.RUN:
      case IOTMP_TYPE.DESCRIBE:
      case IOTMP_TYPE.START_STREAM:
      case IOTMP_TYPE.STOP_STREAM: {
        // Device → server requests (properties, buckets, endpoints, event subscriptions): answered at once.
        if (m.streamId === undefined || m.streamId === 0) return;
        const answer = this.answerDeviceRequest({ kind: `iotmp:${frame.type}`, identifier: m.params, resource: m.resource, payload: m.payload });
        this.send({ type: answer.ok ? IOTMP_TYPE.OK : IOTMP_TYPE.ERROR, streamId: m.streamId, ...(answer.payload !== undefined ? { payload: answer.payload } : {}) });
        return;
      }
      case IOTMP_TYPE.DISCONNECT:
        this.close();
        return;
      default:
        return;
    }
  }

  protected sendRun(id: number, resource: string, input: { value: PsonValue } | undefined): void {
    this.send({ type: IOTMP_TYPE.RUN, streamId: id, resource, ...(input ? { payload: input.value } : {}) });
  }

  protected sendDescribe(id: number, resource: string | undefined): void {
    this.send({ type: IOTMP_TYPE.DESCRIBE, streamId: id, ...(resource !== undefined ? { resource } : {}) });
  }

  protected sendStartStream(id: number, resource: string, intervalMs: number): void {
    this.send({ type: IOTMP_TYPE.START_STREAM, streamId: id, resource, ...(intervalMs > 0 ? { params: { interval: intervalMs } } : {}) });
  }

  protected sendStopStream(id: number): void {
    this.send({ type: IOTMP_TYPE.STOP_STREAM, streamId: id });
  }

  /** Streams are held per id on the device: stop the running one, start under a fresh id. */
  protected restartStream(current: number | undefined): number | undefined {
    if (current !== undefined) this.sendStopStream(current);
    return this.allocateId();
  }

  /** `{path: {"fn": n}}`, flat, keyed by full path (templates included). */
  protected parseDescribe(payload: PsonValue | undefined): Array<[string, ResourceKind]> | null {
    if (!isObject(payload)) return null;
    const out: Array<[string, ResourceKind]> = [];
    for (const [name, desc] of Object.entries(payload)) {
      const kind = isObject(desc) ? kindOfFn(desc.fn) : undefined;
      if (kind) out.push([name, kind]);
    }
    return out;
  }

  protected replyError(reply: Reply): AppError {
    const p = reply.payload;
    const message = isObject(p) && typeof p.error === "string" ? p.error.slice(0, 500) : "the device reported an error";
    const status = reply.code !== undefined && Number.isInteger(reply.code) && reply.code >= 400 && reply.code <= 599 ? reply.code : 500;
    return new AppError("device_error", message, { status });
  }

  private send(m: IotmpMessage): void {
    this.write(encodeIotmpMessage(m, this.dialect));
  }
}
