import { createReadStream } from "node:fs";
import type { Router } from "@koa/router";
import { AppError } from "../errors.js";
import type { Services } from "../services.js";
import { buildOpenApiDocument } from "./document.js";
import { DOCS_HTML, docsAssets } from "./docs-page.js";

/** `GET /openapi.json` (the OpenAPI 3.1 document) and `GET /docs` (interactive reference, local assets). */
export function openapiRoutes(router: Router, _s: Services): void {
  const json = JSON.stringify(buildOpenApiDocument());
  const assets = docsAssets();

  router.get("/openapi.json", (ctx) => {
    ctx.type = "application/json";
    ctx.set("Cache-Control", "no-cache");
    ctx.body = json;
  });

  router.get("/docs", (ctx) => {
    ctx.type = "text/html; charset=utf-8";
    ctx.set("Cache-Control", "no-cache");
    ctx.body = DOCS_HTML;
  });

  router.get("/docs/:asset", (ctx) => {
    const asset = assets.get(ctx.params.asset ?? "");
    if (!asset) throw new AppError("not_found", "no such file");
    ctx.type = asset.type;
    ctx.set("Cache-Control", "public, max-age=3600");
    ctx.body = asset.file !== undefined ? createReadStream(asset.file) : asset.text;
  });
}
