import { readFileSync } from "node:fs";

/**
 * thingrelay's version from its package.json. Source (server/…) and build (dist/server/…) files sit at
 * different depths below it, so look upwards. `fallback` when none is found.
 */
export function packageVersion(fallback: string): string {
  for (let dir = new URL(".", import.meta.url); dir.pathname !== "/"; dir = new URL("..", dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL("package.json", dir), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "thingrelay" && pkg.version) return pkg.version;
    } catch {
      // not here; keep looking
    }
  }
  return fallback;
}
