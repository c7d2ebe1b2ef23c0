import type { Context } from "koa";
import { AppError } from "../errors.js";
import type { Principal } from "../auth/principal.js";
import { MAX_INTERVAL_MS, MIN_INTERVAL_MS } from "./options.js";
import { SseConnection, type SseOptions } from "./sse.js";

/**
 * What a stream service needs from the HTTP request, read once by the route: who asks (as requireAuth
 * found), where to resume, and how to open the SSE response. The services never see a Koa context.
 */
export interface StreamRequest {
  principal: Principal;
  /** The bearer token as presented: re-authenticated on every revocation and heartbeat. */
  token: string;
  /**
   * The revocation-cache version read before the token was checked: a revocation since (while the route awaited
   * the store or a device) was told to the streams open then, not to this one, which re-checks when it opens.
   */
  authVersion: number | undefined;
  /** `Last-Event-ID` header ("" when absent). */
  lastEventId: string;
  requestId: string | undefined;
  /** Starts the `text/event-stream` response. */
  open(options: SseOptions): SseConnection;
}

/** Reads a {@link StreamRequest} from a request that passed requireAuth. */
export function streamRequest(ctx: Context): StreamRequest {
  const principal = ctx.state.principal as Principal | undefined;
  const token = ctx.state.token as string | undefined;
  if (!principal || token === undefined) throw new Error("stream opened without requireAuth");
  return {
    principal, token, authVersion: ctx.state.authVersion as number | undefined, lastEventId: ctx.get("Last-Event-ID"), requestId: ctx.state.requestId as string | undefined,
    open: (options) => new SseConnection(ctx, options),
  };
}

/** Parses `?interval=` (seconds, at most one decimal; 0 = only values the device pushes) into ms. */
export function parseInterval(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== "string" || !/^\d{1,6}(\.\d)?$/.test(value)) {
    throw new AppError("invalid_request", '"interval" must be a number of seconds with at most one decimal (0 = device-pushed values only)');
  }
  const ms = Math.round(Number(value) * 1000);
  if (ms !== 0 && (ms < MIN_INTERVAL_MS || ms > MAX_INTERVAL_MS)) {
    throw new AppError("invalid_request", `"interval" must be 0 or from ${MIN_INTERVAL_MS / 1000} to ${MAX_INTERVAL_MS / 1000} seconds`);
  }
  return ms;
}
