import type { Duplex } from "node:stream";
import { errorBody, type ErrorCode, ERROR_CODES } from "../errors.js";
import type { Logger } from "../log.js";
import { SECURITY_HEADERS } from "./middleware.js";

/** Node's parser error codes mapped to our error registry; anything else is a malformed request (400). */
const BY_NODE_CODE: Readonly<Record<string, ErrorCode>> = {
  HPE_HEADER_OVERFLOW: "headers_too_large",
  HPE_CHUNK_EXTENSIONS_OVERFLOW: "payload_too_large",
  ERR_HTTP_REQUEST_TIMEOUT: "request_timeout",
};

/**
 * `clientError` handler for the http.Server: requests node cannot parse (bad bytes in the target, header
 * overflow > maxHeaderSize, headers not complete within headersTimeout) get the same JSON error shape and
 * security headers as every other answer, instead of node's bare `400 Bad Request`. Mirrors node's own
 * handler (lib/_http_server.js socketOnError): write only when no response has started on the socket.
 */
export function clientErrorHandler(logger: Logger) {
  return function onClientError(err: Error & { code?: string }, socket: Duplex): void {
    const s = socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null };
    if (err.code === "ECONNRESET" || !s.writable || (s._httpMessage && s._httpMessage.headersSent)) {
      s.destroy();
      return;
    }
    const code: ErrorCode = (err.code && BY_NODE_CODE[err.code]) || "invalid_request";
    const message = code === "invalid_request" ? "malformed HTTP request" : ERROR_CODES[code].message;
    const body = JSON.stringify(errorBody(code, message));
    const head = [
      `HTTP/1.1 ${ERROR_CODES[code].status} ${REASONS[ERROR_CODES[code].status] ?? "Bad Request"}`,
      "Connection: close",
      "Content-Type: application/json; charset=utf-8",
      `Content-Length: ${Buffer.byteLength(body)}`,
      "Cache-Control: no-store",
      ...Object.entries(SECURITY_HEADERS).map(([k, v]) => `${k}: ${v}`),
    ];
    logger.debug({ code: err.code, status: ERROR_CODES[code].status }, "client error");
    s.end(`${head.join("\r\n")}\r\n\r\n${body}`);
    // A peer that never reads must not keep the socket: node's default handler destroys at once too.
    setTimeout(() => s.destroy(), 1000).unref();
  };
}

const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request", 408: "Request Timeout", 413: "Payload Too Large", 431: "Request Header Fields Too Large",
};
