#!/usr/bin/env bash
# Installs the JavaScript runtimes the conformance suite (test/conformance.test.ts) runs the device on,
# besides Node and Debian's chromium: Bun and Deno, from their npm packages, outside the project's
# dependencies (node_modules/.cache/js-runtimes). Fails if either cannot be installed or does not run.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=node_modules/.cache/js-runtimes
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name":"js-runtimes","private":true}' > "$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --no-save bun@1.4.5 deno@2.9.6
"$dir/node_modules/.bin/bun" --version
"$dir/node_modules/.bin/deno" --version
