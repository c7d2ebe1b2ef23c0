import { resourceNameProblem, type ResourceKind } from "./protocol.js";
import { check } from "./options.js";

export type { ResourceKind };

/** Throw this (or any error with a numeric `status`) from a handler to answer with that HTTP status. */
export class DeviceError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "DeviceError";
  }
}

/** Options of an input or io resource. */
export interface InputOptions {
  /**
   * Returns the resource's current state (may be async), served by `GET …/{resource}/api` as `{"in": state}`
   * without running the handler. Without it, the resource's `/api` answers its kind only.
   */
  state?: () => unknown;
}

export type Handler = (input: any) => unknown;
export interface Resource {
  kind: ResourceKind;
  handler: Handler;
  state?: () => unknown;
}
/** The device's resources by name. */
export type Resources = Map<string, Resource>;

/** Output and io resources produce a value: a call answers it and they stream. */
export const hasOutput = (kind: ResourceKind | undefined) => kind === "output" || kind === "io";

/** Declares (or replaces) a resource; throws a TypeError saying why when the server would not accept it. */
export function declare(resources: Resources, name: string, kind: ResourceKind, handler: Handler, state?: () => unknown): void {
  const problem = resourceNameProblem(name);
  check(problem === undefined, `invalid resource name ${JSON.stringify(name)}: ${problem}`);
  check(typeof handler === "function", "handler must be a function");
  check(state === undefined || typeof state === "function", '"state" must be a function');
  resources.set(name, { kind, handler, state });
}

/** The `describe` frame: every resource with its kind, and `state: true` where it reports a state. */
export function describeFrame(resources: Resources): object {
  const list: Record<string, { kind: ResourceKind; state: true | undefined }> = {};
  for (const [name, r] of resources) list[name] = { kind: r.kind, state: r.state && true }; // JSON drops state: undefined
  return { type: "describe", resources: list };
}

/**
 * Runs a handler (or, for a `state` frame, the resource's state function; the handler never runs) and
 * returns the answer frame: a result, or an error with the handler's status (404 for no such resource).
 */
export async function answer(resources: Resources, id: number, name: string, input: unknown, state: boolean): Promise<object> {
  const r = resources.get(name);
  const run = state ? r?.state : r?.handler;
  if (!r || !run) return { type: "error", id, status: 404, code: "resource_not_found", message: `no ${state ? "state for" : "resource"} "${name}"` };
  try {
    const out = await run(input);
    return state ? { type: "result", id, in: out ?? null } : hasOutput(r.kind) ? { type: "result", id, out: out ?? null } : { type: "result", id };
  } catch (err) {
    const status = (err as { status?: unknown } | null)?.status;
    return { type: "error", id, status: !state && typeof status === "number" ? status : 500, message: err instanceof Error ? err.message : String(err) };
  }
}
