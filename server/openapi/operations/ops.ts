/** OpenAPI operations: health, metrics, this document and the browser pages. */
import { ref } from "../schemas.js";
import { ok, type Operation } from "../operation.js";

export const OPS_OPERATIONS: Operation[] = [
  // ---- operations ----
  {
    method: "get", path: "/health", operationId: "health", tag: "operations", auth: false,
    summary: "Liveness", ok: [ok("The process is up.", ref("Health"))], errors: [],
  },
  {
    method: "get", path: "/ready", operationId: "ready", tag: "operations", auth: false,
    summary: "Readiness (store reachable)", ok: [ok("Ready.", ref("Ready"))], errors: ["service_unavailable"],
  },
  {
    method: "get", path: "/metrics", operationId: "metrics", tag: "operations", auth: false,
    summary: "Prometheus metrics",
    description: "Open unless `THINGRELAY_METRICS_TOKEN` is set; then `Authorization: Bearer <that token>` is required.",
    ok: [ok("Prometheus text exposition format.", undefined, { other: { "text/plain": { type: "string" } } })],
    errors: ["unauthorized", "internal_error"],
  },
  {
    method: "get", path: "/openapi.json", operationId: "getOpenApi", tag: "operations", auth: false,
    summary: "This document", ok: [ok("OpenAPI 3.1 document.", { type: "object" })], errors: [],
  },
  // ---- browser pages ----
  {
    method: "get", path: "/", operationId: "home", tag: "pages", auth: false,
    summary: "Redirect to the dashboard",
    ok: [{
      status: 302, description: "Redirect to /dashboard/ (with koa's small HTML note).",
      headers: { Location: { type: "string", const: "/dashboard/" } }, other: { "text/html": { type: "string" } },
    }],
    errors: [],
  },
  {
    method: "get", path: "/dashboard", operationId: "getDashboard", tag: "pages", auth: false,
    summary: "The console (devices, tokens, users, dashboards; README \"The console and dashboards\")",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/dashboard/", operationId: "getDashboardSlash", tag: "pages", auth: false,
    summary: "The dashboard (same page as /dashboard)",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/dashboard/{file}", operationId: "getDashboardFile", tag: "pages", auth: false, params: ["file"],
    summary: "Static files of the dashboard",
    ok: [ok("The file.", undefined, { other: { "*/*": { type: "string" } } })], errors: ["not_found"],
  },
  {
    method: "get", path: "/docs", operationId: "getDocs", tag: "pages", auth: false,
    summary: "Interactive API reference (this page)",
    ok: [ok("HTML page.", undefined, { other: { "text/html": { type: "string" } } })], errors: [],
  },
  {
    method: "get", path: "/docs/{asset}", operationId: "getDocsAsset", tag: "pages", auth: false, params: ["asset"],
    summary: "Static files of the API reference page",
    ok: [ok("The file.", undefined, { other: { "*/*": { type: "string" } } })], errors: ["not_found"],
  },
];
