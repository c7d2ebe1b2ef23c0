import type { Router } from "@koa/router";
import type { Services } from "../services.js";

/** The dashboard (static files under public/dashboard). Filled in by the real-time work. */
export function dashboardRoutes(_router: Router, _s: Services): void {}
