/**
 * The one registry of error codes. Every failure the API reports is an {@link AppError} with one of these
 * codes; the error middleware renders it as `{"error":{"code","message"}}`. README.md and the OpenAPI
 * document list every code (a test keeps them in step with this table).
 */
export const ERROR_CODES = {
  invalid_request: { status: 400, message: "invalid request" },
  invalid_json: { status: 400, message: "request body is not valid JSON" },
  unsupported_grant_type: { status: 400, message: "unsupported grant type" },
  device_exists: { status: 400, message: "device already exists" },
  device_connected: { status: 400, message: "device is connected; close its session first" },
  invalid_grant: { status: 401, message: "invalid username or password" },
  unauthorized: { status: 401, message: "missing, invalid, expired or revoked token" },
  forbidden: { status: 403, message: "token does not allow this action" },
  quota_exceeded: { status: 403, message: "account quota exceeded" },
  not_found: { status: 404, message: "not found" },
  user_not_found: { status: 404, message: "user not found" },
  device_not_found: { status: 404, message: "device not found" },
  device_offline: { status: 404, message: "device is not connected" },
  resource_not_found: { status: 404, message: "device has no such resource" },
  token_not_found: { status: 404, message: "token not found" },
  method_not_allowed: { status: 405, message: "method not allowed" },
  not_acceptable: { status: 406, message: "not acceptable" },
  request_timeout: { status: 408, message: "request headers not received in time" },
  conflict: { status: 409, message: "already exists" },
  payload_too_large: { status: 413, message: "request body too large" },
  unsupported_media_type: { status: 415, message: "unsupported content type" },
  headers_too_large: { status: 431, message: "request headers too large" },
  too_many_requests: { status: 429, message: "too many requests" },
  device_busy: { status: 429, message: "too many calls in flight for this device" },
  too_many_streams: { status: 429, message: "too many open streams for this account" },
  device_error: { status: 500, message: "device handler failed" },
  internal_error: { status: 500, message: "internal server error" },
  device_disconnected: { status: 502, message: "device disconnected while the call was in flight" },
  service_unavailable: { status: 503, message: "service unavailable" },
  device_timeout: { status: 504, message: "device did not answer in time" },
  // Issue 18: device properties, queued calls, idempotency keys (README "Error codes", docs/protocol.md).
  property_not_found: { status: 404, message: "device has no such property" },
  property_too_large: { status: 413, message: "property value too large" },
  too_many_properties: { status: 400, message: "too many properties on this device" },
  call_not_found: { status: 404, message: "no such queued call" },
  call_not_queued: { status: 409, message: "the call is no longer queued" },
  queue_full: { status: 429, message: "too many queued calls" },
  call_interrupted: { status: 502, message: "the server stopped while the call was running; it was not sent again" },
  idempotency_key_reused: { status: 422, message: "this Idempotency-Key was used with another request" },
  idempotency_key_in_flight: { status: 409, message: "the first request with this Idempotency-Key is still running" },
  too_many_idempotency_keys: { status: 429, message: "too many live Idempotency-Keys for this account" },
  // Issue 19: console dashboards (README "Dashboards").
  dashboard_not_found: { status: 404, message: "no such dashboard" },
  dashboard_exists: { status: 409, message: "a dashboard with this id already exists" },
  too_many_dashboards: { status: 400, message: "too many dashboards in this account" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AppErrorOptions {
  cause?: unknown;
  /** HTTP status overriding the code's default (device_error carries the device's status). */
  status?: number;
  /** Extra response headers, e.g. Retry-After. */
  headers?: Record<string, string>;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string>;
  /** Marks errors whose message is safe to send to the client. */
  readonly expose = true;

  constructor(code: ErrorCode, message?: string, options: AppErrorOptions = {}) {
    super(message ?? ERROR_CODES[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = options.status ?? ERROR_CODES[code].status;
    this.headers = options.headers ?? {};
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

export function errorBody(code: ErrorCode, message?: string): { error: { code: ErrorCode; message: string } } {
  return { error: { code, message: message ?? ERROR_CODES[code].message } };
}

/** 413 that states the limit the body broke, so a client knows how far to cut it (issue 12). */
export function payloadTooLarge(limitBytes: number): AppError {
  return new AppError("payload_too_large", `request body larger than the limit of ${limitBytes} bytes`);
}
