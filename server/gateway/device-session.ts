import type { CallCancel } from "./call-cancel.js";
import type { ResourceKind } from "./protocol.js";

/**
 * Call timeouts fire at most this late. A session keeps one timer for its earliest deadline instead of a
 * `setTimeout` and `clearTimeout` per call (issue 15); deadlines falling due within one slot are expired together.
 * Shared by the JSON and the Thinger sessions.
 */
export const CALL_TIMEOUT_SLACK_MS = 10;

export interface CallResult {
  /** True when the device's answer carried an `out` value. */
  hasOut: boolean;
  out?: unknown;
  /** An input's state, in the answer to a state request (JSON protocol: the `state` frame). */
  in?: unknown;
}

export interface SessionStats {
  connected: boolean;
  connected_ts: number | null;
  ip_address: string | null;
  rx_bytes: number;
  tx_bytes: number;
}

/** What a session reports to the hub. */
export interface SessionEvents {
  onDescribe(session: DeviceSession): void;
  onData(session: DeviceSession, resource: string, out: unknown): void;
  onTraffic(session: DeviceSession): void;
}

/** Limits every session kind enforces on calls. */
export interface SessionLimits {
  maxInflight: number;
  maxBufferedBytes: number;
}

/**
 * One authenticated device, whatever it speaks: the JSON WebSocket protocol (`gateway/session.ts`), the Thinger
 * legacy protocol or IOTMP (`thinger/`). The hub and everything above it see only this interface.
 */
export interface DeviceSession {
  readonly key: string;
  readonly user: string;
  readonly device: string;
  readonly ip: string;
  readonly connectedAt: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** Calls waiting for the device's answer. */
  readonly inflight: number;
  /** Bytes queued towards the device and not yet taken by its socket. */
  readonly bufferedBytes: number;
  readonly isClosed: boolean;
  /** The device's resources as last described; null while unknown (calls are then sent unchecked). */
  readonly resources: ReadonlyMap<string, ResourceKind> | null;
  /** Kind of a resource name (templates such as `gpio/:pin` match); null while unknown, undefined if absent. */
  resourceKind(name: string): ResourceKind | null | undefined;
  /** The resources as `/api` answers them: `{name: {kind}}` (a session may ask the device again first). */
  resourceList(): Promise<Record<string, { kind: ResourceKind }>>;
  /** Asks the device for its resource kinds when still unknown, waiting at most `waitMs`; never rejects. */
  describeIfUnknown?(waitMs: number): Promise<void>;
  /** True when the device can report this resource's current input state (`GET …/{resource}/api`). */
  reportsState(resource: string): boolean;
  /** The current input state of a resource, read without running its handler. Rejects with an AppError. */
  state(resource: string, timeoutMs: number): Promise<unknown>;
  /**
   * Sends one call and waits for the answer, at most `timeoutMs`. Rejects with an AppError, or with
   * `cancel.reason` once the caller cancels (it went away): the in-flight slot is freed at once and the
   * device's late answer is dropped.
   */
  call(resource: string, input: unknown, hasInput: boolean, timeoutMs: number, cancel?: CallCancel): Promise<CallResult>;
  /** Asks the device to push values of `resource` every `intervalMs` (0: only values it pushes itself). */
  stream(resource: string, intervalMs: number): void;
  /** Stops the stream of `resource`. */
  unstream(resource: string): void;
  stats(): SessionStats;
  /** One pass of the hub's keepalive sweep: false when the device stayed silent since the last pass. */
  sweep(): boolean;
  /** Marks the session closed and fails every pending call with device_disconnected. Idempotent. */
  markClosed(): void;
  /** Closes the connection (`code`/`reason` where the protocol has them). */
  close(code?: number, reason?: string): void;
  /** Drops the connection without a closing handshake. */
  terminate(): void;
}
