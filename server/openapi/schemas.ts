/**
 * JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12) of every request and response body, one file per feature
 * under schemas/. Enumerations and patterns come from the code that enforces them (error registry, actions,
 * id patterns), so the document cannot drift from the server.
 */
import { awaySchemas } from "./away-schemas.js";
import { dashboardsSchemas } from "./dashboards-schemas.js";
import { authSchemas } from "./schemas/auth.js";
import { userSchemas } from "./schemas/users.js";
import { deviceSchemas } from "./schemas/devices.js";
import { tokenSchemas } from "./schemas/tokens.js";
import { relaySchemas } from "./schemas/relay.js";
import type { Schema } from "./schemas/helpers.js";

export { ref, type Schema, TOKEN_ID_PATTERN } from "./schemas/helpers.js";

/** Component schemas, by name (the order is the document's). */
export function componentSchemas(): Record<string, Schema> {
  return { ...authSchemas(), ...userSchemas(), ...deviceSchemas(), ...tokenSchemas(), ...relaySchemas(), ...awaySchemas(), ...dashboardsSchemas() };
}
