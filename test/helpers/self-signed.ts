/** A throwaway self-signed certificate for `localhost`/127.0.0.1 (openssl), for TLS tests. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SelfSigned {
  cert: string;
  key: string;
}

let cached: SelfSigned | undefined;

/** Generated once per process (an EC P-256 key, valid one day). */
export function selfSigned(): SelfSigned {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "thingrelay-cert-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
      { stdio: "ignore" },
    );
    cached = { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
