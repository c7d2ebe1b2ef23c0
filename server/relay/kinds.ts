import { AppError } from "../errors.js";
import type { ResourceKind } from "../gateway/protocol.js";
import type { CallResult } from "../gateway/session.js";

/** The HTTP method a REST caller used on a device resource. */
export type CallVerb = "GET" | "POST";

/**
 * What a device session offers the relay about its resources, whatever protocol it speaks (the JSON protocol
 * of docs/protocol.md, Thinger's binary ones): the kinds it described, and a way to read an input's state.
 */
export interface ResourceHolder {
  /** Resources and kinds the device described; null until it described them (then nothing is checked). */
  readonly resources: ReadonlyMap<string, ResourceKind> | null;
  /** True when the device can report this resource's current input state (see {@link ResourceHolder.state}). */
  reportsState(resource: string): boolean;
  call(resource: string, input: unknown, hasInput: boolean, timeoutMs: number): Promise<CallResult>;
  /** The current input state of a resource, read without running its handler. */
  state(resource: string, timeoutMs: number): Promise<unknown>;
  /** Sessions whose kinds can be asked for again (Thinger): describes when still unknown; never rejects. */
  describeIfUnknown?(waitMs: number): Promise<void>;
}

/**
 * Makes sure the kinds are known before a kind check, where the session can ask the device again (a Thinger
 * device whose first describe was lost): checks are never skipped just because the list was missing.
 */
export async function knownKinds(holder: Pick<ResourceHolder, "resources" | "describeIfUnknown">, waitMs: number): Promise<void> {
  if (holder.resources === null && holder.describeIfUnknown) await holder.describeIfUnknown(waitMs);
}

/** `GET …/{resource}/api`: the kind and, where the device can give it, the current state (Thinger's `{"in"}`/`{"out"}`). */
export interface ResourceApi {
  kind: ResourceKind;
  in?: unknown;
  out?: unknown;
}

/**
 * Which methods may run a resource of each kind (DESIGN §4). An input needs its input (GET would run its handler
 * with none); an output takes none (a POST body would be dropped silently). io and run take either.
 */
export const ALLOWED_VERBS: Readonly<Record<ResourceKind, readonly CallVerb[]>> = Object.freeze({
  output: ["GET"],
  input: ["POST"],
  io: ["GET", "POST"],
  run: ["GET", "POST"],
});

/**
 * The one place that decides whether a call may reach the device: when the device described `resource`, a
 * method its kind does not take answers 405 `method_not_allowed` with `Allow`, and the handler never runs.
 * Undescribed devices and resources are not checked here (the session answers `resource_not_found`).
 */
export function checkVerb(holder: Pick<ResourceHolder, "resources">, resource: string, verb: CallVerb | undefined): void {
  const kind = holder.resources?.get(resource);
  if (kind === undefined || verb === undefined) return;
  const allowed = ALLOWED_VERBS[kind];
  if (!allowed.includes(verb)) {
    throw new AppError("method_not_allowed", `"${resource}" is an ${kind} resource: use ${allowed.join(" or ")}`, { headers: { Allow: allowed.join(", ") } });
  }
}

/**
 * The one place that answers a resource's `/api`: its kind, plus `out` for an output (Thinger runs it in
 * describe mode too) and `in` for an input or io resource whose device reports its state. Run resources and
 * states the device cannot give answer the kind alone.
 */
export async function resourceApi(holder: ResourceHolder, resource: string, timeoutMs: number): Promise<ResourceApi> {
  await knownKinds(holder, timeoutMs);
  if (holder.resources === null) throw new AppError("resource_not_found", "the device has not described its resources");
  const kind = holder.resources.get(resource);
  if (kind === undefined) throw new AppError("resource_not_found", `device has no resource "${resource}"`);
  if (kind === "output") {
    const r = await holder.call(resource, undefined, false, timeoutMs);
    return { kind, out: r.hasOut ? (r.out ?? null) : null };
  }
  if ((kind === "input" || kind === "io") && holder.reportsState(resource)) {
    const state = await holder.state(resource, timeoutMs);
    return { kind, in: state === undefined ? null : state };
  }
  return { kind };
}
