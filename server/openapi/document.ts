/**
 * The OpenAPI 3.1 document of every route, served at `GET /openapi.json`. Operations are listed in one
 * table below; error responses are generated from the error registry (server/errors.ts), so a code cannot
 * be documented with the wrong status. test/openapi.test.ts checks the table against the live router in
 * both directions and validates real responses against these schemas.
 */
import { ERROR_CODES, type ErrorCode } from "../errors.js";
import { componentSchemas, type Schema } from "./schemas.js";
import { packageVersion } from "../version.js";
import type { Method, Operation } from "./operation.js";
import { PARAMETERS } from "./parameters.js";
import { operationObject } from "./responses.js";
import { ACCOUNT_OPERATIONS } from "./operations/accounts.js";
import { DEVICE_OPERATIONS } from "./operations/devices.js";
import { TOKEN_OPERATIONS } from "./operations/tokens.js";
import { RELAY_OPERATIONS } from "./operations/relay.js";
import { AWAY_OPERATIONS } from "./operations/away.js";
import { OPS_OPERATIONS } from "./operations/ops.js";
import { DASHBOARD_OPERATIONS } from "./operations/dashboards.js";

/**
 * Codes any request can get, not tied to one operation (listed in the document's introduction): no such
 * route, wrong method, and the HTTP server's own answers to slow or oversized request headers.
 */
export const GLOBAL_ERROR_CODES: readonly ErrorCode[] = ["not_found", "method_not_allowed", "request_timeout", "headers_too_large"];

/** Every operation, one table per feature under operations/ (the order is the document's). */
const OPERATIONS: Operation[] = [
  ...ACCOUNT_OPERATIONS, ...DEVICE_OPERATIONS, ...TOKEN_OPERATIONS, ...RELAY_OPERATIONS, ...AWAY_OPERATIONS, ...DASHBOARD_OPERATIONS, ...OPS_OPERATIONS,
];

const INTRO = `A self-hosted, Thinger-compatible relay of REST calls to IoT devices over WebSocket sessions.

**Authentication.** Every \`/v1\` and \`/v2\` route takes a token as \`Authorization: Bearer <token>\` or as
the case-sensitive query parameter \`?authorization=<token>\` (for EventSource, which cannot send headers).
Get one with \`POST /oauth/token\` — or press **Authorize** and sign in with the password flow.

**Errors.** Every error answers \`{"error":{"code":"<code>","message":"<text>"}}\`; the codes are listed
in the \`ErrorCode\` schema. Any request may also get
${GLOBAL_ERROR_CODES.map((c) => `\`${c}\` (${ERROR_CODES[c].status}, ${ERROR_CODES[c].message})`).join(", ")}.`;

/** Builds the document. Pure: the same input gives the same document. */
export function buildOpenApiDocument(): Schema {
  const paths: Record<string, Record<string, Schema>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  return {
    openapi: "3.1.0",
    info: {
      title: "thingrelay API",
      version: packageVersion("0.0.0"),
      description: INTRO,
      license: { name: "MIT", identifier: "MIT" },
    },
    // Relative: calls go to the server that served the document (so "Try it out" hits this server).
    servers: [{ url: "/" }],
    security: [{ bearerAuth: [] }, { queryAuth: [] }, { passwordGrant: [] }],
    tags: [
      { name: "oauth", description: "Tokens: password and refresh-token grants, revocation" },
      { name: "users", description: "Accounts" },
      { name: "devices", description: "Device registry, live sessions and statistics" },
      { name: "tokens", description: "Device tokens and user access tokens" },
      { name: "relay", description: "Calls relayed to a device's resources" },
      { name: "properties", description: "Device properties kept server-side (Thinger v3)" },
      { name: "dashboards", description: "Console dashboards kept per account" },
      { name: "operations", description: "Health, readiness, metrics and this document" },
      { name: "pages", description: "Browser pages: the dashboard and this reference" },
    ],
    paths,
    components: {
      schemas: componentSchemas(),
      parameters: PARAMETERS,
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "`Authorization: Bearer <token>`" },
        queryAuth: {
          type: "apiKey", in: "query", name: "authorization",
          description: "`?authorization=<token>` (RFC 6750 §2.3), for EventSource and links. Redacted from logs.",
        },
        passwordGrant: {
          type: "oauth2",
          description: "Sign in with a username and password (RFC 6749 password grant); the access token is then sent as a bearer token.",
          flows: { password: { tokenUrl: "/oauth/token", refreshUrl: "/oauth/token", scopes: {} } },
        },
      },
    },
  };
}

/** Operations as (method, OpenAPI path) pairs, for the router cross-check in the tests. */
export function documentedOperations(): Array<{ method: Method; path: string; operationId: string }> {
  return OPERATIONS.map(({ method, path, operationId }) => ({ method, path, operationId }));
}
