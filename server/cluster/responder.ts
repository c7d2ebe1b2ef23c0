import type { EventEmitter } from "node:events";
import type { Msg } from "nats";
import { AppError } from "../errors.js";
import type { Hub } from "../gateway/hub.js";
import type { Logger } from "../log.js";
import { checkVerb, knownKinds, resourceApi } from "../relay/kinds.js";
import type { ClusterLink } from "./link.js";
import type { ClusterEventMap, DeviceOp, Reply } from "./messages.js";

/** What answering another node's request for a device held here needs. */
export interface ResponderDeps {
  link: ClusterLink;
  hub: Hub;
  logger: Logger;
  /** Re-emits notes and stream wishes to this node's parts (the bridge's typed events). */
  events: Pick<EventEmitter<ClusterEventMap>, "emit">;
  /** Stops answering for a device this node no longer holds. */
  dropDevice(key: string): void;
}

/** Answers one request another node sent on `<prefix>.dev.<user>.<device>` for a device held here. */
export async function answerDeviceOp(deps: ResponderDeps, user: string, device: string, op: DeviceOp, msg: Msg): Promise<void> {
  const { link, hub } = deps;
  const respond = (r: Reply) => {
    if (msg.reply && !link.closed) msg.respond(link.codec.encode(r));
  };
  try {
    switch (op.op) {
      case "call": {
        // Only a session held here answers: never forward again (hub.call would send it back over NATS).
        const session = hub.get(user, device);
        if (!session) {
          deps.dropDevice(`${user}/${device}`);
          throw new AppError("device_offline");
        }
        await knownKinds(session, op.timeoutMs);
        checkVerb(session, op.resource, op.verb);
        const r = await session.call(op.resource, op.in, op.hasInput, op.timeoutMs);
        respond(r.hasOut ? { ok: true, hasOut: true, out: r.out ?? null } : { ok: true, hasOut: false });
        return;
      }
      case "stats":
        respond({ ok: true, stats: held(hub, user, device).stats() });
        return;
      case "api":
        respond({ ok: true, resources: await held(hub, user, device).resourceList() });
        return;
      case "resource_api":
        respond({ ok: true, api: await resourceApi(held(hub, user, device), op.resource, op.timeoutMs) });
        return;
      case "kick":
        hub.kickHere(user, device, op.code, op.reason.slice(0, 100));
        return;
      case "notify":
        deps.events.emit("notify", user, device, op.kind, op.payload);
        return;
      case "stream":
        if (op.node !== link.nodeId) deps.events.emit("stream", user, device, op.resource, op.node, op.interval);
        return;
    }
  } catch (err) {
    if (err instanceof AppError) respond({ ok: false, code: err.code, status: err.status, message: err.message, headers: err.headers });
    else {
      deps.logger.error({ err }, "cluster device op failed");
      respond({ ok: false, code: "internal_error", status: 500, message: "internal server error", headers: {} });
    }
  }
}

function held(hub: Hub, user: string, device: string) {
  const session = hub.get(user, device);
  if (!session) throw new AppError("device_offline");
  return session;
}
