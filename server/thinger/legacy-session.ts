import { AppError } from "../errors.js";
import type { ResourceKind } from "../gateway/protocol.js";
import type { Frame } from "./frame-reader.js";
import { decodeLegacyFrame, encodeLegacyMessage, LEGACY_FLAG, LEGACY_KEEPALIVE, type LegacyMessage } from "./legacy-frame.js";
import type { PsonValue } from "./pson-value.js";
import type { DeviceRequest } from "./requests.js";
import { type Reply, ThingerSession } from "./session-base.js";
import { isObject, kindOfFn } from "./values.js";

/** Deepest `"/"` nesting followed when flattening a legacy resource tree. */
const MAX_TREE_DEPTH = 8;

/**
 * A device speaking the legacy Thinger protocol (the "thinger.io" Arduino library): THINGER-PROTOCOL §2.
 * Resources travel as arrays of path segments, `api` as the last segment describes, errors carry no detail,
 * stream samples come wrapped as `{"out": v}` with flags 6/7, and a resource has one stream id.
 */
export class LegacySession extends ThingerSession {
  handleFrame(frame: Frame): void {
    const f = decodeLegacyFrame(frame);
    if (f.kind === "keepalive") {
      this.write(LEGACY_KEEPALIVE);
      return;
    }
    const m = f.message;
    switch (m.flag) {
      case LEGACY_FLAG.REQUEST_OK:
      case LEGACY_FLAG.REQUEST_ERROR:
        this.settle(m.streamId, { ok: m.flag === LEGACY_FLAG.REQUEST_OK, payload: m.payload });
        return;
      case LEGACY_FLAG.STREAM_EVENT:
      case LEGACY_FLAG.STREAM_SAMPLE:
        this.sample(m.streamId, unwrap(m.payload));
        return;
      case LEGACY_FLAG.CALL_ENDPOINT:
      case LEGACY_FLAG.CALL_DEVICE:
      case LEGACY_FLAG.BUCKET_DATA:
      case LEGACY_FLAG.GET_PROPERTY:
      case LEGACY_FLAG.SET_PROPERTY: {
        // Only a request with a stream id waits for an answer (the device blocks until it gets one); one without
        // is still served (a SET_PROPERTY is stored).
        const streamId = m.streamId;
        const request: DeviceRequest = m.flag === LEGACY_FLAG.GET_PROPERTY
          ? { op: "get_property", name: m.identifier }
          : m.flag === LEGACY_FLAG.SET_PROPERTY
            ? { op: "set_property", name: m.identifier, value: m.payload }
            : { op: "unsupported", kind: flagName(m.flag) };
        this.answerDeviceRequest(request, streamId === undefined ? undefined : (answer) => this.answer(streamId, answer.ok, answer.payload));
        return;
      }
      default:
        // Anything else a device sends (a second AUTH, server-only flags) gets an error if it waits for one.
        if (m.streamId !== undefined && m.flag !== undefined && m.flag !== LEGACY_FLAG.AUTH) this.send({ streamId: m.streamId, flag: LEGACY_FLAG.REQUEST_ERROR });
        return;
    }
  }

  protected sendRun(id: number, resource: string, input: { value: PsonValue } | undefined): void {
    this.send({ streamId: id, resource: resource.split("/"), ...(input ? { payload: input.value } : {}) });
  }

  protected sendDescribe(id: number, resource: string | undefined): void {
    this.send({ streamId: id, resource: resource === undefined ? ["api"] : [...resource.split("/"), "api"] });
  }

  protected sendStartStream(id: number, resource: string, intervalMs: number): void {
    this.send({ streamId: id, flag: LEGACY_FLAG.START_STREAM, resource: resource.split("/"), ...(intervalMs > 0 ? { payload: intervalMs } : {}) });
  }

  protected sendStopStream(id: number, resource: string): void {
    this.send({ streamId: id, flag: LEGACY_FLAG.STOP_STREAM, resource: resource.split("/") });
  }

  /** One stream id per resource: a new START_STREAM with the same id replaces the running one. */
  protected restartStream(current: number | undefined): number | undefined {
    return current ?? this.allocateId();
  }

  /** `{name: {"al","fn"}, parent: {"/": {child: {…}}}}` → `[["name", kind], ["parent/child", kind]]`. */
  protected parseDescribe(payload: PsonValue | undefined): Array<[string, ResourceKind]> | null {
    if (!isObject(payload)) return null;
    const out: Array<[string, ResourceKind]> = [];
    const walk = (tree: Record<string, PsonValue>, prefix: string, depth: number): void => {
      for (const [name, desc] of Object.entries(tree)) {
        if (!isObject(desc)) continue;
        const full = prefix + name;
        const kind = kindOfFn(desc.fn);
        if (kind) out.push([full, kind]);
        const children = desc["/"];
        if (isObject(children) && depth < MAX_TREE_DEPTH) walk(children, `${full}/`, depth + 1);
      }
    };
    walk(payload, "", 1);
    return out;
  }

  protected replyError(_reply: Reply): AppError {
    // The legacy protocol has no error detail at all.
    return new AppError("device_error", "the device reported an error");
  }

  /** REQUEST_OK (with the payload, raw) or REQUEST_ERROR (never with detail: the legacy error has none). */
  private answer(streamId: number, ok: boolean, payload: PsonValue | undefined): void {
    if (ok && payload !== undefined) {
      try {
        this.write(encodeLegacyMessage({ streamId, flag: LEGACY_FLAG.REQUEST_OK, payload }));
        return;
      } catch {
        // A stored value this protocol cannot carry (deeper than PSON allows): the device gets an error.
        ok = false;
      }
    }
    this.send({ streamId, flag: ok ? LEGACY_FLAG.REQUEST_OK : LEGACY_FLAG.REQUEST_ERROR });
  }

  private send(m: LegacyMessage): void {
    this.write(encodeLegacyMessage(m));
  }
}

/** Legacy stream payloads are wrapped: `{"out": v}` (or `{"in": v}`, or both) → the value. */
function unwrap(p: PsonValue | undefined): unknown {
  if (isObject(p)) {
    if ("out" in p) return p.out;
    if ("in" in p) return p.in;
  }
  return p ?? null;
}

function flagName(flag: number): string {
  return Object.entries(LEGACY_FLAG).find(([, v]) => v === flag)?.[0] ?? String(flag);
}
