/** OpenAPI component schemas: errors, sign-in and the caller (`/oauth/*`, `/v1/me`). */
import { ERROR_CODES } from "../../errors.js";
import { type Schema, nullableInt, ref } from "./helpers.js";

export function authSchemas(): Record<string, Schema> {
  return {
    ErrorCode: {
      type: "string",
      enum: Object.keys(ERROR_CODES),
      description: "Stable machine-readable error code. Default HTTP status of each code:\n\n"
        + Object.entries(ERROR_CODES).map(([code, e]) => `- \`${code}\` (${e.status}): ${e.message}`).join("\n"),
    },
    Error: {
      type: "object",
      description: "The one error shape of every route (Thinger's shape plus a stable code).",
      required: ["error"],
      additionalProperties: false,
      properties: {
        error: {
          type: "object",
          required: ["code", "message"],
          additionalProperties: false,
          properties: { code: ref("ErrorCode"), message: { type: "string" } },
        },
      },
    },
    Empty: { type: "object", additionalProperties: false, maxProperties: 0, description: "An empty JSON object `{}`." },
    TokenRequest: {
      type: "object",
      required: ["grant_type"],
      description: "RFC 6749 password (§4.3) or refresh-token (§6) grant. Form-urlencoded; JSON also accepted.",
      properties: {
        grant_type: { type: "string", enum: ["password", "refresh_token"] },
        username: { type: "string", maxLength: 64, description: "password grant" },
        password: { type: "string", maxLength: 1024, format: "password", description: "password grant" },
        refresh_token: { type: "string", description: "refresh_token grant; rotates on every use" },
      },
    },
    TokenResponse: {
      type: "object",
      required: ["access_token", "expires_in", "refresh_token", "scope", "token_type"],
      additionalProperties: false,
      properties: {
        access_token: { type: "string", description: "JWT (HS256), payload `{usr,iat,exp}`" },
        expires_in: { type: "integer", description: "seconds (7200)" },
        refresh_token: { type: "string", description: "opaque; lasts about 60 days and rotates on every use" },
        scope: { type: "null" },
        token_type: { type: "string", const: "bearer" },
      },
    },
    RevokeRequest: {
      type: "object",
      required: ["token"],
      description: "RFC 7009: revoke a refresh token (and its family). Unknown tokens also answer 200.",
      properties: { token: { type: "string" } },
    },
    Me: {
      type: "object",
      required: ["user", "token_kind", "admin", "expires_at"],
      additionalProperties: false,
      properties: {
        user: { type: "string" },
        token_kind: { type: "string", enum: ["session", "device_token", "user_token"] },
        admin: { type: "boolean" },
        expires_at: nullableInt("expiry of the presented token, ms since the epoch"),
      },
    },
  };
}
