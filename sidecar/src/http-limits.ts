/**
 * Size limits and timeouts of every sidecar HTTP/1.1 server (proxy listeners, admin, health), in one
 * place with their defaults. docs/http-safety.md documents each number and how it compares with
 * Envoy's and Istio's. Not part of the xDS schema: a listener takes them at construction.
 */
import type http from 'node:http';

export interface HttpLimits {
  /**
   * Request line plus all header lines, in bytes (Node's `maxHeaderSize`, which counts both).
   * Beyond it: 431 Request Header Fields Too Large.
   */
  readonly maxHeaderBytes: number;
  /** Header fields per request. Beyond it: 431. (Node would silently truncate; we refuse.) */
  readonly maxHeaderCount: number;
  /**
   * From the first byte of a request to the end of its headers. Beyond it: 408 and the connection
   * closes. The defence against slowloris (headers trickled a byte at a time). 0: none.
   */
  readonly headersTimeoutMs: number;
  /**
   * From the first byte of a request to the end of its body. 0: none (the default: a proxied upload
   * may stream for a long time; `idleTimeoutMs` still bounds a stalled one). When set, it must be at
   * least `headersTimeoutMs`.
   */
  readonly requestTimeoutMs: number;
  /** How long a keep-alive connection may sit between requests before the server closes it. */
  readonly keepAliveTimeoutMs: number;
  /**
   * No byte read or written on a connection for this long, request in flight or not: the connection
   * is destroyed (Envoy's `stream_idle_timeout`). Bounds a body trickled slowly. 0: none.
   */
  readonly idleTimeoutMs: number;
  /** How often Node checks the headers and request timeouts; the timeouts' precision. */
  readonly timeoutCheckIntervalMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  maxHeaderCount: 100,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 0,
  keepAliveTimeoutMs: 60_000,
  idleTimeoutMs: 300_000,
  timeoutCheckIntervalMs: 1_000,
});

/**
 * `DEFAULT_HTTP_LIMITS` overridden by `overrides`. Throws a plain `Error` naming the field when a
 * value is not a non-negative integer (positive for the sizes and the check interval), or when a
 * request timeout shorter than the headers timeout is asked for — programming errors, not input.
 */
export function resolveHttpLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    const positive = name === 'maxHeaderBytes' || name === 'maxHeaderCount' || name === 'timeoutCheckIntervalMs';
    if (!Number.isInteger(value) || value < (positive ? 1 : 0)) throw new Error(`http limits: ${name} must be a ${positive ? 'positive' : 'non-negative'} integer, got ${String(value)}`);
  }
  if (limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new Error(`http limits: requestTimeoutMs (${limits.requestTimeoutMs}) must be at least headersTimeoutMs (${limits.headersTimeoutMs})`);
  }
  return Object.freeze(limits);
}

/** `http.createServer` options for `limits`, with the strict parser pinned on. */
export function serverOptions(limits: HttpLimits): http.ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
    // Explicit, so neither NODE_OPTIONS=--insecure-http-parser nor a future default relaxes it.
    insecureHTTPParser: false,
    // Checked (and counted) by `checkRequest` instead: Node's own check answers silently.
    requireHostHeader: false,
    joinDuplicateHeaders: false,
  };
}

/** The limits `http.Server` takes as properties rather than constructor options. */
export function applyServerLimits(server: http.Server, limits: HttpLimits): void {
  // One more than the limit, so a request over it is seen (Node truncates beyond this count).
  server.maxHeadersCount = limits.maxHeaderCount + 1;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.timeout = limits.idleTimeoutMs;
}
