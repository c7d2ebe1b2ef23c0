/**
 * The interactive API reference at `GET /docs`: Swagger UI from the installed `swagger-ui-dist` package (no
 * CDN) plus a small initializer of ours. The page runs no inline script, so it works under the app's CSP.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export interface DocsAsset {
  type: string;
  /** Absolute path of a file to stream, or the text to send. */
  file?: string;
  text?: string;
}

/** Swagger UI's settings: validatorUrl null keeps the page from calling validator.swagger.io. */
const INIT_JS = `"use strict";
// thingrelay API reference: Swagger UI initializer (served as a file: the CSP forbids inline scripts).
// Streams never end, and try-it-out waits for the whole response: it would spin for ever on
// text/event-stream. The page shows a copy of the document without that media type; each streaming
// operation's description says to read it with EventSource or curl -N instead.
function withoutStreams(spec) {
  Object.values(spec.paths || {}).forEach(function (item) {
    Object.values(item).forEach(function (op) {
      Object.values((op && op.responses) || {}).forEach(function (r) {
        if (r && r.content) delete r.content["text/event-stream"];
      });
    });
  });
  return spec;
}
window.addEventListener("DOMContentLoaded", function () {
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (spec) { start(withoutStreams(spec)); });
});
function start(spec) {
  window.ui = SwaggerUIBundle({
    spec: spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    tryItOutEnabled: false,
    persistAuthorization: false,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
  });
}
`;

const PAGE_CSS = `body { margin: 0; background: #fafafa; }
.thingrelay-bar { font: 14px/1.4 sans-serif; padding: 10px 20px; background: #1b1f23; color: #eee; }
.thingrelay-bar a { color: #9cf; margin-left: 16px; }
`;

export const DOCS_HTML = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>thingrelay API reference</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="stylesheet" href="/docs/thingrelay.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div class="thingrelay-bar">thingrelay API reference
    <a href="/openapi.json">openapi.json</a><a href="/dashboard">dashboard</a></div>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
`;

function swaggerUiDir(): string {
  return dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
}

/**
 * The page's files by name. An allowlist, not a directory: a request can only ever name one of these, so
 * no path (`..`, encoded slashes, symlinks) can reach another file.
 */
export function docsAssets(): ReadonlyMap<string, DocsAsset> {
  const dir = swaggerUiDir();
  return new Map<string, DocsAsset>([
    ["swagger-ui.css", { type: "text/css; charset=utf-8", file: join(dir, "swagger-ui.css") }],
    ["swagger-ui-bundle.js", { type: "text/javascript; charset=utf-8", file: join(dir, "swagger-ui-bundle.js") }],
    ["favicon-32x32.png", { type: "image/png", file: join(dir, "favicon-32x32.png") }],
    ["favicon-16x16.png", { type: "image/png", file: join(dir, "favicon-16x16.png") }],
    ["init.js", { type: "text/javascript; charset=utf-8", text: INIT_JS }],
    ["thingrelay.css", { type: "text/css; charset=utf-8", text: PAGE_CSS }],
  ]);
}
