import { readFileSync } from "node:fs";

/**
 * The CLI's version: the `version` of the thingrelay package.json beside cli/ (source) or two levels up
 * (dist/cli/). Read here rather than imported from the server: the CLI is an API client and shares only
 * types with server/ (test/cli-imports.test.ts holds it to that).
 */
export function packageVersion(fallback: string): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "thingrelay" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return fallback;
}
