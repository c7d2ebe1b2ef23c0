/** Turns one {@link Operation} entry into an OpenAPI operation object; error responses come from the registry. */
import { ERROR_CODES, type ErrorCode } from "../errors.js";
import { ref, type Schema } from "./schemas.js";
import type { Operation, Success } from "./operation.js";

const RETRY_AFTER = { "Retry-After": { description: "seconds to wait", schema: { type: "string" } } };
const CHALLENGE = { "WWW-Authenticate": { description: "RFC 6750 challenge", schema: { type: "string" } } };

function errorResponses(codes: readonly ErrorCode[], deviceError: boolean): Record<string, Schema> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  // A device error usually carries the device's own 4xx/5xx status: listed with every status it may share,
  // and as the default response for the others.
  if (deviceError) for (const [status, list] of byStatus) if (status >= 400 && !list.includes("device_error")) list.push("device_error");
  const out: Record<string, Schema> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b)) {
    const list = byStatus.get(status)!;
    out[String(status)] = errorResponse(list, status === 429 || status === 503 ? RETRY_AFTER : status === 401 ? CHALLENGE : undefined);
  }
  if (deviceError) {
    out.default = errorResponse(["device_error"], undefined, "`device_error` with the status the device's handler gave.");
  }
  return out;
}

/**
 * Codes a status's examples show first, when an operation shares the status among several: the one a caller
 * most likely meets there (a 404 on a device route is usually `device_not_found`, a 429 `device_busy`).
 */
const EXAMPLE_FIRST: readonly ErrorCode[] = [
  "invalid_request", "unauthorized", "forbidden", "device_not_found", "device_busy", "internal_error", "service_unavailable",
];

/**
 * One example per code, the likeliest first. Without them Swagger UI derives a single example from the
 * schema, and that shows the ErrorCode enum's first value (`invalid_request`) under every status.
 */
function errorExamples(codes: readonly ErrorCode[]): Record<string, Schema> {
  const rank = (c: ErrorCode) => (EXAMPLE_FIRST.includes(c) ? EXAMPLE_FIRST.indexOf(c) : EXAMPLE_FIRST.length);
  const ordered = [...codes].sort((a, b) => rank(a) - rank(b));
  return Object.fromEntries(ordered.map((code) => [code, {
    summary: code,
    value: { error: { code, message: ERROR_CODES[code].message } },
  }]));
}

function errorResponse(codes: ErrorCode[], headers?: Record<string, Schema>, description?: string): Schema {
  const r: Schema = {
    description: description ?? codes.map((c) => `\`${c}\``).join(", "),
    content: {
      "application/json": {
        schema: {
          allOf: [ref("Error")],
          properties: { error: { properties: { code: { enum: codes } } } },
        },
        examples: errorExamples(codes),
      },
    },
  };
  if (headers) r.headers = headers;
  return r;
}

function successResponse(s: Success): Schema {
  const content: Record<string, Schema> = {};
  if (s.json) content["application/json"] = { schema: s.json };
  if (s.sse) {
    content["text/event-stream"] = {
      schema: { type: "string", description: s.sse.description },
      "x-sse-events": Object.fromEntries(Object.entries(s.sse.events).map(([name, schema]) => [name, ref(schema)])),
    };
  }
  for (const [type, schema] of Object.entries(s.other ?? {})) content[type] = { schema };
  const r: Schema = { description: s.description };
  if (Object.keys(content).length > 0) r.content = content;
  if (s.headers) r.headers = Object.fromEntries(Object.entries(s.headers).map(([k, schema]) => [k, { schema }]));
  return r;
}

export function operationObject(op: Operation): Schema {
  const o: Schema = { operationId: op.operationId, summary: op.summary, tags: [op.tag] };
  if (op.description) o.description = op.description;
  if (op.auth === false) o.security = [];
  if (op.params) o.parameters = op.params.map((p) => ({ $ref: `#/components/parameters/${p}` }));
  if (op.body) {
    const types = op.body.form ? ["application/x-www-form-urlencoded", "application/json"] : ["application/json"];
    o.requestBody = {
      required: op.body.required ?? true,
      content: Object.fromEntries(types.map((t) => [t, { schema: op.body!.schema }])),
    };
  }
  o.responses = {
    ...Object.fromEntries(op.ok.map((s) => [String(s.status), successResponse(s)])),
    ...errorResponses(op.errors, op.deviceError ?? false),
  };
  return o;
}
