/**
 * The connect stage: forwards one HTTP/1.1 request to one chosen endpoint and streams the response
 * back. Owns the request's timers (cluster connect timeout, route timeout) and classifies failures
 * into `HttpProxyError`s; it never writes an error response itself — the listener does, in one
 * place.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { downstreamResponseHeaders } from './headers-http';
import { HttpProxyError, UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';

export interface ForwardTarget {
  readonly address: string;
  readonly port: number;
  /** The endpoint's pooled agent (`UpstreamPool.agentFor`). */
  readonly agent: http.Agent;
  /** Request target sent upstream (path and query). */
  readonly path: string;
  /** Already rewritten for the upstream (`upstreamRequestHeaders`). */
  readonly headers: OutgoingHttpHeaders;
  /** Cluster connect timeout; 0 means none. */
  readonly connectTimeoutMs: number;
  /** Route timeout, from the start of forwarding to the end of the response body; 0 means none. */
  readonly timeoutMs: number;
}

export type ForwardOutcome =
  /** The upstream response was fully written to the client. */
  | { readonly kind: 'response'; readonly status: number }
  /** Forwarding failed. `res.headersSent` tells whether the client already got a status. */
  | { readonly kind: 'error'; readonly error: HttpProxyError }
  /** The client went away first; the upstream request was aborted. */
  | { readonly kind: 'downstream-closed' };

const RETRYABLE_ON_REUSED = new Set(['ECONNRESET', 'EPIPE']);

/**
 * Forwards `req` to `target`, piping bodies both ways, and calls `done` exactly once. Returns at
 * once; all work is asynchronous. On an error outcome before the response started, nothing has been
 * written to `res`; after, `res` is still open and the caller must destroy it.
 *
 * A request without a body whose pooled keep-alive connection turns out to be closed by the
 * upstream (`ECONNRESET`/`EPIPE` on a reused socket before any response byte) is retried once on
 * another connection: the upstream never saw it, and this race is inherent to HTTP/1.1 pooling.
 *
 * A request with a body is started on the next turn of the event loop, and not at all if the
 * server has answered it meanwhile (a framing error in the bytes received with the headers).
 */
export function forwardHttp(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, done: (outcome: ForwardOutcome) => void): void {
  let settled = false;
  let upstream: http.ClientRequest | undefined;
  let routeTimer: NodeJS.Timeout | undefined;

  const settle = (outcome: ForwardOutcome): void => {
    if (settled) return;
    settled = true;
    if (routeTimer) clearTimeout(routeTimer);
    if (outcome.kind !== 'response') upstream?.destroy();
    done(outcome);
  };

  if (target.timeoutMs > 0) routeTimer = setTimeout(() => settle({ kind: 'error', error: new UpstreamTimeoutError() }), target.timeoutMs);

  res.on('close', () => {
    if (!res.writableFinished) settle({ kind: 'downstream-closed' });
  });

  const bodyless = hasNoBody(req);
  if (bodyless) req.resume();

  const attempt = (retriesLeft: number): void => {
    let connected = false;
    let responded = false;
    const up = http.request({
      host: target.address,
      port: target.port,
      method: req.method,
      path: target.path,
      headers: target.headers,
      agent: target.agent,
    });
    upstream = up;

    up.on('socket', (socket: Socket) => {
      if (!socket.connecting) {
        connected = true;
        return;
      }
      const timer =
        target.connectTimeoutMs > 0
          ? setTimeout(() => up.destroy(new UpstreamConnectError({ cause: new Error(`connect timeout after ${target.connectTimeoutMs} ms`) })), target.connectTimeoutMs)
          : undefined;
      socket.once('connect', () => {
        connected = true;
        if (timer) clearTimeout(timer);
      });
      socket.once('close', () => timer && clearTimeout(timer));
    });

    up.on('error', (err: NodeJS.ErrnoException) => {
      if (settled || responded) return;
      if (retriesLeft > 0 && bodyless && up.reusedSocket && RETRYABLE_ON_REUSED.has(err.code ?? '')) {
        attempt(retriesLeft - 1);
        return;
      }
      const error = err instanceof HttpProxyError ? err : connected ? new UpstreamResetError({ cause: err }) : new UpstreamConnectError({ cause: err });
      settle({ kind: 'error', error });
    });

    up.on('response', (ures: IncomingMessage) => {
      responded = true;
      if (settled || res.headersSent) {
        // Already answered on this side (the server refused the rest of the request, e.g. a
        // framing error or a timeout mid-body): nothing of this response can be sent.
        ures.resume();
        settle({ kind: 'downstream-closed' });
        return;
      }
      const status = ures.statusCode ?? 502;
      const headers = downstreamResponseHeaders(ures.headers);
      if (ures.statusMessage) res.writeHead(status, ures.statusMessage, headers);
      else res.writeHead(status, headers);
      ures.on('close', () => {
        // A body cut short by the upstream cannot be reported with a status any more.
        if (!ures.complete) settle({ kind: 'error', error: new UpstreamResetError() });
      });
      ures.on('error', () => undefined); // reported through 'close' above
      res.once('finish', () => settle({ kind: 'response', status }));
      ures.pipe(res);
    });

    if (bodyless) up.end();
    else req.pipe(up);
  };

  if (bodyless) {
    attempt(1);
    return;
  }
  // A body follows: start from the next turn of the event loop. llhttp parses everything already
  // received before then, so a framing error right behind the headers (an invalid first chunk) is
  // answered (400, by the server's clientError handler) before any upstream connection opens. A
  // later error aborts the upstream request mid-body, as with any streaming proxy; the upstream
  // never sees a complete request (docs/http-safety.md).
  setImmediate(() => {
    if (settled) return;
    if (req.socket.destroyed || req.socket.writableEnded || res.writableEnded) settle({ kind: 'downstream-closed' });
    else attempt(1);
  });
}

/** No body follows the headers: no `transfer-encoding` and no (or a zero) `content-length`. */
function hasNoBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  return length === undefined || Number(length) === 0;
}
