/** Path, query and header parameters the operations refer to by name (`params`). */
import { USERNAME_RE } from "../users/service.js";
import { DEVICE_ID_RE } from "../devices/service.js";
import { MAX_RESOURCE_LENGTH, RESOURCE_RE } from "../gateway/protocol.js";
import { FIELD_NAME } from "../http/list.js";
import { TOKEN_ID_PATTERN, type Schema } from "./schemas.js";

/** One name of `?fields=` (server/http/list.ts), blanks around it trimmed. */
const FIELD = `\\s*${FIELD_NAME}\\s*`;
/** An `Idempotency-Key` (server/calls/idempotency.ts): printable ASCII without `"` and `\`, not blank at either end. */
const IDEMPOTENCY_KEY = "[\\x21\\x23-\\x5b\\x5d-\\x7e](?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]{0,253}[\\x21\\x23-\\x5b\\x5d-\\x7e])?";

export const PARAMETERS: Record<string, Schema> = {
  user: { name: "user", in: "path", required: true, description: "account name", schema: { type: "string", pattern: USERNAME_RE.source }, example: "alice" },
  device: { name: "device", in: "path", required: true, description: "device id", schema: { type: "string", pattern: DEVICE_ID_RE.source }, example: "nodemcu" },
  tokenId: { name: "id", in: "path", required: true, description: "token id", schema: { type: "string", pattern: TOKEN_ID_PATTERN } },
  resource: {
    name: "resource", in: "path", required: true,
    description: `resource name (at most ${MAX_RESOURCE_LENGTH} characters). Names may be nested (\`$ota/begin\`): `
      + "send the slashes unencoded in the path; an encoded `%2F`, `.` or `..` segment answers 400. "
      + "Try-it-out on /docs percent-encodes path parameters, so it cannot call a nested name: use curl or the CLI for those.",
    schema: { type: "string" }, example: "temperature",
  },
  timeout: {
    name: "timeout", in: "query", required: false,
    description: "seconds to wait for the device (decimals allowed); default 10, at most the server's maximum (60)",
    // Not zero: the server answers 400 for it (schemathesis).
    schema: { type: "string", pattern: "^(?!0+(\\.0+)?$)\\d+(\\.\\d+)?$" },
  },
  interval: {
    name: "interval", in: "query", required: false,
    description: "resource streams only: seconds between samples (at most one decimal, 0.1 to 86400); 0 or absent = only values the device pushes",
    schema: { type: "string", pattern: "^\\d{1,6}(\\.\\d)?$" },
  },
  lastEventId: {
    name: "Last-Event-ID", in: "header", required: false,
    description: "SSE resume point (sent by EventSource when it reconnects)", schema: { type: "string" },
  },
  deviceFilter: { name: "device", in: "query", required: false, description: "only this device's events (once, as `?device=`: `?device[]=` is 400)", schema: { type: "string", pattern: DEVICE_ID_RE.source } },
  idFilter: { name: "id", in: "query", required: false, description: "only this device", schema: { type: "string", pattern: DEVICE_ID_RE.source } },
  force: { name: "force", in: "query", required: false, description: "delete even while connected", schema: { type: "string", enum: ["true", "false"] } },
  page: { name: "page", in: "query", required: false, description: "list routes: page number, from 1 (default page size 100)", schema: { type: "string", pattern: "^[1-9]\\d{0,6}$" } },
  limit: { name: "limit", in: "query", required: false, description: "list routes: items per page, 1 to 1000", schema: { type: "string", pattern: "^[1-9]\\d{0,3}$" } },
  fields: { name: "fields", in: "query", required: false, description: "list routes: comma-separated keys to keep in each item, e.g. `device,connection` (one parameter: the array form `fields[]=` is 400)", schema: { type: "string", pattern: `^${FIELD}(,${FIELD}){0,63}$` } },
  asset: { name: "asset", in: "path", required: true, description: "file name", schema: { type: "string" } },
  property: { name: "property", in: "path", required: true, description: "property name (resource-name rules; may be nested)", schema: { type: "string", maxLength: MAX_RESOURCE_LENGTH, pattern: RESOURCE_RE.source }, example: "setpoint" },
  callId: { name: "id", in: "path", required: true, description: "queued call id", schema: { type: "string", pattern: "^[A-Za-z0-9_-]{16}$" } },
  dashboard: { name: "id", in: "path", required: true, description: "dashboard id", schema: { type: "string", pattern: "^[a-zA-Z0-9_-]{1,32}$" } },
  prefer: { name: "Prefer", in: "header", required: false, description: "`respond-async` queues the call (RFC 7240)", schema: { type: "string" } },
  ttl: { name: "ttl", in: "query", required: false, description: "queued calls: seconds to wait for the device (default 3600, at most 604800)", schema: { type: "string", pattern: "^\\d{1,7}$" } },
  idempotencyKey: {
    name: "Idempotency-Key", in: "header", required: false,
    description: "1 to 255 printable ASCII characters (bare or quoted); the first outcome is kept 24 h per account and key",
    schema: { type: "string", maxLength: 257, pattern: `^(${IDEMPOTENCY_KEY}|"${IDEMPOTENCY_KEY}")$` },
  },
  file: { name: "file", in: "path", required: true, description: "file name", schema: { type: "string" } },
};
