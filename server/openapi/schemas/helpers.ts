import { MAX_PERMISSIONS } from "../../tokens/service.js";

/** A JSON Schema (OpenAPI 3.1 = JSON Schema 2020-12) or any OpenAPI object. */
export type Schema = Record<string, unknown>;

export const TOKEN_ID_PATTERN = "^[a-f0-9]{32}$";

export const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
export const int = (description?: string): Schema => (description ? { type: "integer", description } : { type: "integer" });
export const nullableInt = (description: string): Schema => ({ type: ["integer", "null"], description });

/** `allow`/`deny` on input: Thinger's shape, or our earlier array shape (still accepted). */
export const permissionsInput: Schema = {
  oneOf: [ref("Permissions"), { type: "array", maxItems: MAX_PERMISSIONS, items: ref("Permission"), description: "earlier form, still accepted" }],
};
