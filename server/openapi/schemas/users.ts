/** OpenAPI component schemas: accounts (`/v1/users`). */
import { PASSWORD_MAX, PASSWORD_MIN, USERNAME_RE } from "../../users/service.js";
import { type Schema } from "./helpers.js";

export function userSchemas(): Record<string, Schema> {
  return {
    NewUser: {
      type: "object",
      required: ["username", "password"],
      additionalProperties: false,
      properties: {
        username: { type: "string", pattern: USERNAME_RE.source },
        password: { type: "string", format: "password", minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX },
        revoke_tokens: { type: "boolean", default: false, description: "Also delete every device and user token of the account." },
      },
    },
    UserEnabled: {
      type: "object", required: ["enabled"], additionalProperties: false, properties: { enabled: { type: "boolean" } },
    },
    UserState: {
      type: "object", required: ["username", "enabled"], additionalProperties: false,
      properties: { username: { type: "string" }, enabled: { type: "boolean" } },
    },
    UserCreated: {
      type: "object", required: ["username"], additionalProperties: false, properties: { username: { type: "string" } },
    },
    PasswordChange: {
      type: "object",
      required: ["current_password", "password"],
      additionalProperties: false,
      properties: {
        current_password: { type: "string", format: "password" },
        password: { type: "string", format: "password", minLength: PASSWORD_MIN, maxLength: PASSWORD_MAX },
      },
    },
  };
}
