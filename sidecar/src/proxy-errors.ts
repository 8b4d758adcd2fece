/**
 * The data path's failures (STYLE.md, "Errors"): one base class, one subclass per failure, each
 * with a stable `code`. `HttpProxyError`s carry the status and body a client sees; they are turned
 * into a response in exactly one place, `HttpProxyListener`. Messages never name internal
 * addresses or clusters (those go to debug logs), so a body is safe to show to any caller.
 */

/** Base of every sidecar error. `code` is stable and safe to match on; `message` is for people. */
export abstract class SidecarError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A failure answered with an HTTP status; `message` is the response body. */
export abstract class HttpProxyError extends SidecarError {
  abstract readonly status: number;
}

/** No virtual host or no route matched the request (Envoy's NR flag). */
export class NoRouteError extends HttpProxyError {
  readonly code = 'NO_ROUTE';
  readonly status = 404;
  constructor(host: string) {
    super(`no route for host ${host}`);
  }
}

/** The route names a cluster this config does not have (Envoy's NC flag). */
export class ClusterNotFoundError extends HttpProxyError {
  readonly code = 'CLUSTER_NOT_FOUND';
  readonly status = 503;
  constructor(readonly cluster: string) {
    super('cluster not found');
  }
}

/** The cluster has no healthy endpoint (Envoy's UH flag). */
export class NoHealthyUpstreamError extends HttpProxyError {
  readonly code = 'NO_HEALTHY_UPSTREAM';
  readonly status = 503;
  constructor(readonly cluster: string) {
    super('no healthy upstream');
  }
}

/** The upstream connection could not be established, or not within the cluster's connect timeout (UF). */
export class UpstreamConnectError extends HttpProxyError {
  readonly code = 'UPSTREAM_CONNECT';
  readonly status = 503;
  constructor(options?: { cause?: unknown }) {
    super('upstream connect error', options);
  }
}

/** The upstream connection was reset after it was established but before response headers (UR). */
export class UpstreamResetError extends HttpProxyError {
  readonly code = 'UPSTREAM_RESET';
  readonly status = 503;
  constructor(options?: { cause?: unknown }) {
    super('upstream reset before response headers', options);
  }
}

/**
 * The cluster's connection-pool limits are full: every connection busy and the pending queue full
 * (Envoy's UO flag, `upstream_rq_pending_overflow`).
 */
export class UpstreamOverflowError extends HttpProxyError {
  readonly code = 'UPSTREAM_OVERFLOW';
  readonly status = 503;
  constructor(readonly cluster: string) {
    super('upstream overflow');
  }
}

/** The route's whole-request timeout elapsed (UT). */
export class UpstreamTimeoutError extends HttpProxyError {
  readonly code = 'UPSTREAM_TIMEOUT';
  readonly status = 504;
  constructor() {
    super('upstream request timeout');
  }
}

/** A listening socket could not be bound (port taken, address not local, ...). */
export class ListenError extends SidecarError {
  readonly code = 'LISTEN_FAILED';
  constructor(what: string, address: string, port: number, cause: unknown) {
    const reason = (cause as NodeJS.ErrnoException | undefined)?.code ?? (cause as Error | undefined)?.message ?? String(cause);
    const human = reason === 'EADDRINUSE' ? 'address already in use' : reason === 'EADDRNOTAVAIL' ? 'address not available' : reason;
    super(`${what}: cannot bind ${address}:${port}: ${human}${human === reason ? '' : ` (${reason})`}`, { cause });
  }
}

/**
 * A request this sidecar refuses to interpret (docs/http-safety.md): framing that two parsers could
 * read differently (request smuggling), characters or shapes the HTTP grammar forbids, a path that
 * could bypass route or policy matching, or a request beyond a limit. Always answered with
 * `Connection: close`, because after a framing error the rest of the connection cannot be trusted.
 * `reason` is one of a fixed set (bounded, safe as a metric label); the message is the response body.
 */
export abstract class DownstreamProtocolError extends HttpProxyError {
  constructor(
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Ambiguous or invalid message framing: Content-Length / Transfer-Encoding conflicts, bad chunks. */
export class RequestFramingError extends DownstreamProtocolError {
  readonly code = 'REQUEST_FRAMING';
  readonly status = 400;
  constructor(reason: string, detail: string, options?: { cause?: unknown }) {
    super(reason, `bad request: ${detail}`, options);
  }
}

/** A request line or header the HTTP/1.1 grammar forbids (invalid characters, obs-fold, bare LF). */
export class MalformedRequestError extends DownstreamProtocolError {
  readonly code = 'MALFORMED_REQUEST';
  readonly status = 400;
  constructor(reason: string, detail: string, options?: { cause?: unknown }) {
    super(reason, `bad request: ${detail}`, options);
  }
}

/** A request path that normalization refuses (escaped slash, fragment, not origin-form, ...). */
export class InvalidPathError extends DownstreamProtocolError {
  readonly code = 'INVALID_PATH';
  readonly status = 400;
  constructor(reason: string, detail: string) {
    super(reason, `bad request: ${detail}`);
  }
}

/** Request line and headers larger than the listener's limit, or more header fields than allowed. */
export class HeadersTooLargeError extends DownstreamProtocolError {
  readonly code = 'HEADERS_TOO_LARGE';
  readonly status = 431;
  constructor(reason: string, detail: string) {
    super(reason, `request header fields too large: ${detail}`);
  }
}

/** The client did not send a complete request in time (headers timeout, request timeout). */
export class RequestTimeoutError extends DownstreamProtocolError {
  readonly code = 'REQUEST_TIMEOUT';
  readonly status = 408;
  constructor(reason: string, detail: string) {
    super(reason, `request timeout: ${detail}`);
  }
}

/** An HTTP version other than 1.0 or 1.1 on the HTTP/1 parser. */
export class HttpVersionError extends DownstreamProtocolError {
  readonly code = 'HTTP_VERSION';
  readonly status = 505;
  constructor(version: string) {
    super('http-version', `http version not supported: ${version}`);
  }
}

/** A request method this sidecar does not proxy (`CONNECT`: docs/http-safety.md, "Upgrades and CONNECT"). */
export class MethodNotAllowedError extends DownstreamProtocolError {
  readonly code = 'METHOD_NOT_ALLOWED';
  readonly status = 405;
  constructor(reason: string, detail: string) {
    super(reason, `method not allowed: ${detail}`);
  }
}

/**
 * An `Expect` other than `100-continue` (RFC 9110 §10.1.1): answered 417 once the request passed
 * the framing and target checks, so it is well framed and the connection stays open.
 */
export class ExpectationFailedError extends HttpProxyError {
  readonly code = 'EXPECTATION_FAILED';
  readonly status = 417;
  constructor() {
    super('expectation failed: only 100-continue is supported');
  }
}
