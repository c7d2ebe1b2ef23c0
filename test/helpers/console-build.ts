// Mocha global setup: the console bundle (public/dashboard/app.js, app.css) is built before any test serves it.
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildConsole } from "../../scripts/build-console.mjs";

export async function mochaGlobalSetup(): Promise<void> {
  await buildConsole({ quiet: true });
}
