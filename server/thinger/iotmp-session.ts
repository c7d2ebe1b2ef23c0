import { AppError } from "../errors.js";
import type { ResourceKind } from "../gateway/protocol.js";
import type { Frame } from "./frame-reader.js";
import { decodeIotmpFrame, encodeIotmpMessage, IOTMP_KEEPALIVE, IOTMP_SERVER_RUN, IOTMP_TYPE, type IotmpDialect, type IotmpMessage } from "./iotmp-frame.js";
import type { PsonValue } from "./pson-value.js";
import { type Reply, ThingerSession, type ThingerSessionOptions } from "./session-base.js";
import { isObject, kindOfFn } from "./values.js";
import type { DeviceLink } from "./link.js";
import type { DeviceAnswer, DeviceRequest } from "./requests.js";


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
        // Device → server requests (properties, buckets, endpoints, event subscriptions). A request without a
        // stream id gets no answer (a reply with id 0 would be dropped by the device) but is still served.
        const streamId = m.streamId === 0 ? undefined : m.streamId;
        const request = frame.type === IOTMP_TYPE.RUN ? serverRun(m) : { op: "unsupported" as const, kind: `iotmp:${frame.type}` };
        this.answerDeviceRequest(request, streamId === undefined ? undefined : (answer) => this.answer(streamId, answer));
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

  /** OK with the payload, or ERROR with `{"error": reason}` (as a device's own handler error looks). */
  private answer(streamId: number, answer: DeviceAnswer): void {
    if (answer.ok) {
      try {
        this.write(encodeIotmpMessage({ type: IOTMP_TYPE.OK, streamId, ...(answer.payload !== undefined ? { payload: answer.payload } : {}) }, this.dialect));
        return;
      } catch {
        // A stored value this protocol cannot carry (deeper than PSON allows): the device gets an error.
        answer = { ok: false, error: "value cannot be sent in this protocol" };
      }
    }
    this.send({ type: IOTMP_TYPE.ERROR, streamId, ...(answer.error !== undefined ? { payload: { error: answer.error } } : {}) });
  }

  private send(m: IotmpMessage): void {
    this.write(encodeIotmpMessage(m, this.dialect));
  }
}

/**
 * A device → server RUN (THINGER-PROTOCOL §3.8). IOTMP-Linux puts the code in RESOURCE and the property name in
 * PARAMETERS; IOTMP-Embedded and IOTMP-Arduino put the code in PARAMETERS and the name in RESOURCE: both are read.
 */
function serverRun(m: IotmpMessage): DeviceRequest {
  const [code, name] = typeof m.resource === "number" ? [m.resource, m.params] : typeof m.params === "number" ? [m.params, m.resource] : [undefined, undefined];
  if (code === IOTMP_SERVER_RUN.READ_PROPERTY) return { op: "get_property", name };
  if (code === IOTMP_SERVER_RUN.SET_PROPERTY) return { op: "set_property", name, value: m.payload };
  return { op: "unsupported", kind: `iotmp:run:${String(code)}` };
}
