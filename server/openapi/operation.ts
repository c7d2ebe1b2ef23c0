/** The table format of the OpenAPI operations (operations/*.ts) and the helpers their entries share. */
import type { ErrorCode } from "../errors.js";
import { ref, type Schema } from "./schemas.js";

export type Method = "get" | "post" | "put" | "delete";

export interface Success {
  status: number;
  description: string;
  /** JSON body schema; omitted = no body. */
  json?: Schema;
  /**
   * The route also answers `text/event-stream` (with `Accept: text/event-stream`): a description and the
   * schema of each event's data by event name, published as the `x-sse-events` extension.
   */
  sse?: { description: string; events: Record<string, string> };
  /** Other media types, e.g. `text/html`, with a schema each. */
  other?: Record<string, Schema>;
  headers?: Record<string, Schema>;
}

export interface Operation {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** Default true: bearer header or `?authorization=`. */
  auth?: boolean;
  params?: string[];
  body?: { schema: Schema; form?: boolean; required?: boolean; description?: string };
  ok: Success[];
  errors: ErrorCode[];
  /** Device handler failures carry the device's own status: documented as the `default` response. */
  deviceError?: boolean;
}

export const AUTH: ErrorCode[] = ["invalid_request", "unauthorized", "too_many_requests", "internal_error", "service_unavailable"];
export const BODY: ErrorCode[] = ["invalid_json", "invalid_request", "payload_too_large", "unsupported_media_type"];
export const SSE: ErrorCode[] = ["not_acceptable", "too_many_streams"];

/**
 * Told on every streaming operation: a stream never ends, so Swagger UI's try-it-out (which waits for the
 * whole body) cannot show one. The /docs page leaves `text/event-stream` out of its copy of the document.
 */
export const STREAM_NOTE = "**Streams are read with `EventSource` (`new EventSource(url + '?authorization=' + token)"
  + ".onmessage`) or `curl -N -H 'Accept: text/event-stream'`**, not with try-it-out on /docs, which waits "
  + "for a response that never ends and so does not offer `text/event-stream`.";

export const arrayOf = (name: string): Schema => ({ type: "array", items: ref(name) });
export const ok = (description: string, json?: Schema, extra: Partial<Success> = {}): Success =>
  json ? { status: 200, description, json, ...extra } : { status: 200, description, ...extra };
export const EMPTY = ok("Done.", ref("Empty"));
/** Every list route: the body stays an array; paging and projection through server/http/list.ts. */
export const LIST_PARAMS = ["page", "limit", "fields"];
export const LIST_HEADERS: Record<string, Schema> = {
  "X-Total-Count": { type: "string", description: "number of items before paging" },
  Link: { type: "string", description: 'RFC 8288 links to the `first`, `prev`, `next` and `last` pages (only with `?page=` or `?limit=`)' },
};
export const list = (description: string, item: string): Success => ok(description, arrayOf(item), { headers: LIST_HEADERS });

export const devicePath = "/v1/users/{user}/devices/{device}";
export const v2 = "/v2/users/{user}/devices/{device}";
export const v3 = "/v3/users/{user}/devices/{device}";
