import type { Router } from "@koa/router";
import type { Services } from "../services.js";

/** GET /openapi.json and GET /docs. Filled in by the developer-experience work. */
export function openapiRoutes(_router: Router, _s: Services): void {}
