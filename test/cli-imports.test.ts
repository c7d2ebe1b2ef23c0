import { expect } from "chai";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const CLI = join(ROOT, "cli");

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);
}

/** Every module specifier a file loads at run time: `import … from`, `export … from`, `import("…")`; not `import type`. */
function runtimeImports(source: string): string[] {
  const found: string[] = [];
  for (const m of source.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?\sfrom\s+["']([^"']+)["']/gm)) {
    if (!m[2]) found.push(m[3]!);
  }
  for (const m of source.matchAll(/^\s*import\s+["']([^"']+)["']/gm)) found.push(m[1]!);
  for (const m of source.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) found.push(m[1]!);
  return found;
}

describe("cli/ is an API client (issue 13.8)", () => {
  it("the scan sees runtime imports and skips type-only ones", () => {
    const src = 'import type { A } from "../server/a.js";\nimport { B } from "../server/b.js";\nexport { C } from "./c.js";\nconst d = await import("../server/d.js");\n';
    expect(runtimeImports(src)).to.deep.equal(["../server/b.js", "./c.js", "../server/d.js"]);
  });

  it("loads nothing from server/ at run time: it shares only types with the server", () => {
    const files = tsFiles(CLI);
    expect(files.length).to.be.greaterThan(5);
    const offending: string[] = [];
    for (const file of files) {
      for (const spec of runtimeImports(readFileSync(file, "utf8"))) {
        if (!spec.startsWith(".")) continue;
        const target = relative(ROOT, resolve(dirname(file), spec));
        if (!target.startsWith("cli/")) offending.push(`${relative(ROOT, file)} → ${spec}`);
      }
    }
    expect(offending).to.deep.equal([]);
  });
});
