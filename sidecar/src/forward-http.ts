/**
 * The connect stage: forwards one HTTP/1.1 request to an endpoint and streams the response back,
 * retrying by the route's `RetryPolicy` (retry-policy.ts decides, retry-run.ts counts,
 * retry-budget.ts caps, body-buffer.ts replays the body). Owns the request's timers — cluster connect timeout, per-try
 * timeout, backoff, and the route timeout that bounds all of them — and classifies failures into
 * `HttpProxyError`s; it never writes an error response itself — the listener does, in one place.
 */
import type { RetryPolicy } from './config';
import { ReplayableBody, type BodySink } from './body-buffer';
import { downstreamRawHeaders, requestHead, type UpstreamHead } from './headers-http';
import type { DownstreamRequest, DownstreamResponse } from './http1-message';
import type { Http1Endpoint, Http1Exchange } from './upstream-http1';
import { HttpProxyError, UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';
import { SHARED_RETRY_BUDGETS, type RetryBudgets } from './retry-budget';
import { grpcStatusOf, type AttemptFailure } from './retry-policy';
import { RetryRun } from './retry-run';

export type { AttemptFailure } from './retry-policy';

/** Where one attempt goes. */
export interface ForwardEndpoint {
  /** The endpoint's pooled connections (`UpstreamPool.endpointFor`). */
  readonly upstream: Http1Endpoint;
  /** Sent as `x-weft-target-port` (outbound, when the endpoint is a peer sidecar). */
  readonly targetPort?: number | undefined;
}

export interface ForwardTarget extends ForwardEndpoint {
  /** Request target sent upstream (path and query). */
  readonly path: string;
  /** The request's upstream head without Host and target port (`upstreamHead`). */
  readonly head: UpstreamHead;
  /** Cluster connect timeout; 0 means none. */
  readonly connectTimeoutMs: number;
  /** Route timeout, from the start of forwarding to the end of the response body, retries and backoff included; 0 means none. */
  readonly timeoutMs: number;
  /** The route's retry policy; absent: one attempt (plus the stale-connection replay below). */
  readonly retry?: RetryPolicy;
  /** Picks the endpoint of each retry (the balancer again); absent: retries go to this target. */
  readonly repick?: () => ForwardEndpoint | HttpProxyError;
  /** Budgets and counters; default `SHARED_RETRY_BUDGETS`. */
  readonly budgets?: RetryBudgets;
  /**
   * Called, synchronously, when an attempt has failed and will be retried, with how it failed (so
   * a balancer or outlier detector can complete that attempt's pick at once, before the backoff).
   * The last attempt's outcome is the one given to `done`.
   */
  readonly onRetry?: (failure: AttemptFailure) => void;
  /**
   * Called once the whole request body has arrived (at once for a request without one), with the
   * body, or `undefined` when it outgrew `keepBodyBytes` (mirroring replays it from here). Not
   * called when the request settles first.
   */
  readonly onBody?: (body: readonly Buffer[] | undefined) => void;
  /** With `onBody`: keep at least this much of the body (the retry buffer is kept anyway). */
  readonly keepBodyBytes?: number;
}

export type ForwardOutcome =
  /** The upstream response was fully written to the client. */
  | { readonly kind: 'response'; readonly status: number; readonly retries?: number }
  /** Forwarding failed. `res.headersSent` tells whether the client already got a status. */
  | { readonly kind: 'error'; readonly error: HttpProxyError; readonly retries?: number }
  /** The client went away first; the upstream request was aborted. */
  | { readonly kind: 'downstream-closed'; readonly retries?: number };

// Errors that mean the request never reached a live upstream (the pooled connection was already closing).
const RETRYABLE_ON_REUSED = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_WRITE_AFTER_END', 'ERR_STREAM_DESTROYED']);

/**
 * Forwards `req` to `target`, piping bodies both ways, and calls `done` exactly once. Returns at
 * once; all work is asynchronous. On an error outcome before the response started, nothing has been
 * written to `res`; after, `res` is still open and the caller must destroy it.
 *
 * With a retry policy, a failed attempt (connect failure, reset, per-try timeout, or a response
 * whose status the policy retries) is retried after a jittered backoff on a freshly picked
 * endpoint, as `decideRetry` allows; a response that is not retried is passed through as it is.
 * Nothing is retried once response headers reached the client. The route timeout bounds the whole.
 *
 * Independently of any policy, a request without a body whose pooled keep-alive connection turns
 * out to be closed by the upstream (`ECONNRESET`/`EPIPE` on a reused socket before any response
 * byte) is replayed once on another connection: the upstream never saw it, and this race is
 * inherent to HTTP/1.1 pooling. It is not a retry (no budget, not counted).
 *
 * A request with a body is started on the next turn of the event loop, and not at all if the
 * server has answered it meanwhile (a framing error in the bytes received with the headers).
 */
export function forwardHttp(req: DownstreamRequest, res: DownstreamResponse, target: ForwardTarget, done: (outcome: ForwardOutcome) => void): void {
  const policy = target.retry;
  // Counts the request in its retry budget now (its first attempt).
  const run = new RetryRun(policy, target.budgets ?? SHARED_RETRY_BUDGETS, req.method, target.timeoutMs);
  let settled = false;
  let upstream: Http1Exchange | undefined;
  let routeTimer: NodeJS.Timeout | undefined;
  let backoffTimer: NodeJS.Timeout | undefined;

  // The head already read the framing from the raw headers: no second look (nor a headers object).
  const bodyless = target.head.framing === 'none';
  const keep = Math.max(policy ? policy.bufferLimitBytes : 0, target.onBody ? target.keepBodyBytes ?? 0 : 0);
  const body = bodyless ? undefined : new ReplayableBody(req, keep);
  if (target.onBody) {
    if (body) body.whenComplete(target.onBody);
    else target.onBody([]);
  }

  const settle = (outcome: ForwardOutcome): void => {
    if (settled) return;
    settled = true;
    if (routeTimer) clearTimeout(routeTimer);
    if (backoffTimer) clearTimeout(backoffTimer);
    if (outcome.kind !== 'response') upstream?.abort();
    body?.release();
    done(run.retries ? { ...outcome, retries: run.retries } : outcome);
  };

  if (target.timeoutMs > 0) routeTimer = setTimeout(() => settle({ kind: 'error', error: new UpstreamTimeoutError() }), target.timeoutMs);

  // The response is over and this request has not settled: the client went away, or the server
  // answered it itself (a refusal of its body). Either way the upstream attempt is abandoned.
  res.on('close', () => settle({ kind: 'downstream-closed' }));

  if (bodyless) req.resume();

  /** After a failed attempt: schedules the retry and returns true, or returns false. */
  const retried = (failure: AttemptFailure): boolean => {
    if (settled) return false;
    const delayMs = run.next(failure, body?.replayable ?? true);
    if (delayMs === undefined) return false;
    target.onRetry?.(failure);
    body?.detach();
    upstream = undefined;
    backoffTimer = setTimeout(() => {
      backoffTimer = undefined;
      if (settled) return;
      const next = target.repick ? target.repick() : target;
      if (next instanceof HttpProxyError) settle({ kind: 'error', error: next });
      else attempt(next, 1);
    }, delayMs);
    return true;
  };

  const method = req.method ?? 'GET';
  const skipBody = method === 'HEAD';

  const attempt = (endpoint: ForwardEndpoint, staleReplays: number): void => {
    let connected = false;
    let responded = false;
    let discarding = false; // a response being retried: its body is dropped, its connection kept
    let over = false; // this attempt failed or was replaced: ignore its late events
    let tryTimer: NodeJS.Timeout | undefined;
    let exchange: Http1Exchange | undefined;

    const endAttempt = (): void => {
      over = true;
      if (tryTimer) clearTimeout(tryTimer);
    };
    /** A failure before response headers: retry, or settle with `error`. */
    const failed = (failure: AttemptFailure, error: HttpProxyError): void => {
      if (over || settled) return;
      endAttempt();
      exchange?.abort();
      if (!retried(failure)) settle({ kind: 'error', error });
    };
    const resume = (): void => {
      exchange?.socket?.resume();
    };

    exchange = endpoint.upstream.request(
      requestHead(method, target.path, target.head, endpoint.targetPort),
      {
        onConnect: () => {
          connected = true;
        },
        onError: (err, info) => {
          if (settled || over) return;
          if (responded) {
            // A body cut short by the upstream cannot be reported with a status any more.
            endAttempt();
            settle({ kind: 'error', error: new UpstreamResetError({ cause: err }) });
            return;
          }
          if (staleReplays > 0 && bodyless && info.reused && RETRYABLE_ON_REUSED.has(err.code ?? '')) {
            endAttempt();
            attempt(endpoint, staleReplays - 1);
            return;
          }
          if (info.connected || connected) failed({ kind: 'reset' }, new UpstreamResetError({ cause: err }));
          else failed({ kind: 'connect-failure' }, new UpstreamConnectError({ cause: err }));
        },
        onResponse: (status, message, raw) => {
          responded = true;
          if (settled || over || res.headersSent) {
            // Already answered on this side (the server refused the rest of the request, e.g. a
            // framing error or a timeout mid-body): nothing of this response can be sent.
            discarding = true;
            if (!over) {
              endAttempt();
              settle({ kind: 'downstream-closed' });
            }
            return;
          }
          if (policy) {
            const grpc = rawHeader(raw, 'grpc-status');
            if (status >= 500 || policy.retriableStatusCodes.has(status) || grpc !== undefined) {
              const grpcStatus = grpcStatusOf(grpc);
              if (retried({ kind: 'status', status, ...(grpcStatus !== undefined ? { grpcStatus } : {}) })) {
                endAttempt();
                // A request still being sent cannot leave its connection reusable; a complete one can.
                if (exchange!.requestFinished) discarding = true;
                else exchange!.abort();
                return;
              }
            }
          }
          const headers = downstreamRawHeaders(raw);
          if (message) res.writeHead(status, message, headers);
          else res.writeHead(status, headers);
          res.once('finish', () => {
            endAttempt();
            settle({ kind: 'response', status });
          });
        },
        onData: (chunk) => {
          if (discarding || over) return;
          if (!res.write(chunk)) {
            exchange!.socket?.pause();
            res.once('drain', resume);
          }
        },
        onEnd: () => {
          if (discarding || over) return;
          res.end();
        },
      },
      target.head.framing,
      skipBody,
      target.connectTimeoutMs,
    );
    upstream = exchange;

    if (policy && policy.perTryTimeoutMs > 0) {
      tryTimer = setTimeout(() => {
        // Before headers: a failed attempt. After: the response is cut short (the client sees a reset).
        if (!responded) failed({ kind: 'per-try-timeout' }, new UpstreamTimeoutError());
        else if (!over) settle({ kind: 'error', error: new UpstreamTimeoutError() });
      }, policy.perTryTimeoutMs);
    }

    if (body) body.attach(sinkOf(exchange));
    else exchange.end();
  };

  if (bodyless) {
    attempt(target, 1);
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
    else attempt(target, 0);
  });
}

/** The first value of header `name` (lower case) in raw `[name, value, ...]`. */
function rawHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) return raw[i + 1];
  }
  return undefined;
}

/** An exchange as the body's sink: writes and ends it, and relays its socket's 'drain'. */
function sinkOf(exchange: Http1Exchange): BodySink {
  // The socket as it is now: once the exchange is over it lets go of it, and a pooled socket
  // must not keep this request's 'drain' listener.
  const socket = exchange.socket;
  return {
    write: (chunk) => exchange.write(chunk),
    end: () => exchange.end(),
    on: (_event, fn) => socket?.on('drain', fn),
    off: (_event, fn) => socket?.off('drain', fn),
  };
}
