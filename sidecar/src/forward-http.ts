/**
 * The connect stage: forwards one HTTP/1.1 request to an endpoint and streams the response back,
 * retrying by the route's `RetryPolicy` (retry-policy.ts decides, retry-budget.ts caps,
 * body-buffer.ts replays the body). Owns the request's timers — cluster connect timeout, per-try
 * timeout, backoff, and the route timeout that bounds all of them — and classifies failures into
 * `HttpProxyError`s; it never writes an error response itself — the listener does, in one place.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RetryPolicy } from './config';
import { ReplayableBody } from './body-buffer';
import { downstreamResponseHeaders } from './headers-http';
import { HttpProxyError, UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';
import { SHARED_RETRY_BUDGETS, type RetryBudget, type RetryBudgets } from './retry-budget';
import { decideRetry, grpcStatusOf, type AttemptFailure } from './retry-policy';

export type { AttemptFailure } from './retry-policy';

/** Where one attempt goes. */
export interface ForwardEndpoint {
  readonly address: string;
  readonly port: number;
  /** The endpoint's pooled agent (`UpstreamPool.agentFor`). */
  readonly agent: http.Agent;
  /** Already rewritten for the upstream (`upstreamRequestHeaders`). */
  readonly headers: OutgoingHttpHeaders;
}

export interface ForwardTarget extends ForwardEndpoint {
  /** Request target sent upstream (path and query). */
  readonly path: string;
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

const RETRYABLE_ON_REUSED = new Set(['ECONNRESET', 'EPIPE']);

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
export function forwardHttp(req: IncomingMessage, res: ServerResponse, target: ForwardTarget, done: (outcome: ForwardOutcome) => void): void {
  const policy = target.retry;
  const budgets = target.budgets ?? SHARED_RETRY_BUDGETS;
  const started = performance.now();
  let settled = false;
  let upstream: http.ClientRequest | undefined;
  let routeTimer: NodeJS.Timeout | undefined;
  let backoffTimer: NodeJS.Timeout | undefined;
  let retries = 0;
  let budget: RetryBudget | undefined;

  const bodyless = hasNoBody(req);
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
    if (outcome.kind !== 'response') upstream?.destroy();
    body?.release();
    done(retries ? { ...outcome, retries } : outcome);
  };

  if (target.timeoutMs > 0) routeTimer = setTimeout(() => settle({ kind: 'error', error: new UpstreamTimeoutError() }), target.timeoutMs);

  res.on('close', () => {
    if (!res.writableFinished) settle({ kind: 'downstream-closed' });
  });

  if (bodyless) req.resume();
  if (policy) {
    budget = budgets.get(policy.budget);
    budget.deposit();
  }

  /** After a failed attempt: schedules the retry and returns true, or returns false. */
  const retried = (failure: AttemptFailure): boolean => {
    if (!policy || settled) return false;
    const decision = decideRetry(
      {
        policy,
        method: req.method,
        retriesDone: retries,
        bodyReplayable: body?.replayable ?? true,
        remainingMs: target.timeoutMs > 0 ? target.timeoutMs - (performance.now() - started) : Infinity,
        withdraw: () => budget!.withdraw(),
      },
      failure,
    );
    if (!decision.retry) {
      if (decision.skipped) budgets.stats.skipped[decision.skipped]++;
      return false;
    }
    retries++;
    budgets.stats.retries++;
    target.onRetry?.(failure);
    body?.detach();
    upstream = undefined;
    backoffTimer = setTimeout(() => {
      backoffTimer = undefined;
      if (settled) return;
      const next = target.repick ? target.repick() : target;
      if (next instanceof HttpProxyError) settle({ kind: 'error', error: next });
      else attempt(next, 1);
    }, decision.delayMs);
    return true;
  };

  const attempt = (endpoint: ForwardEndpoint, staleReplays: number): void => {
    let connected = false;
    let responded = false;
    let over = false; // this attempt failed or was replaced: ignore its late events
    let tryTimer: NodeJS.Timeout | undefined;
    const up = http.request({
      host: endpoint.address,
      port: endpoint.port,
      method: req.method,
      path: target.path,
      headers: endpoint.headers,
      agent: endpoint.agent,
    });
    upstream = up;

    const endAttempt = (): void => {
      over = true;
      if (tryTimer) clearTimeout(tryTimer);
    };
    /** A failure before response headers: retry, or settle with `error`. */
    const failed = (failure: AttemptFailure, error: HttpProxyError): void => {
      if (over || settled) return;
      endAttempt();
      up.destroy();
      if (!retried(failure)) settle({ kind: 'error', error });
    };

    if (policy && policy.perTryTimeoutMs > 0) {
      tryTimer = setTimeout(() => {
        // Before headers: a failed attempt. After: the response is cut short (the client sees a reset).
        if (!responded) failed({ kind: 'per-try-timeout' }, new UpstreamTimeoutError());
        else if (!over) settle({ kind: 'error', error: new UpstreamTimeoutError() });
      }, policy.perTryTimeoutMs);
    }

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
      if (settled || over || responded) return;
      if (staleReplays > 0 && bodyless && up.reusedSocket && RETRYABLE_ON_REUSED.has(err.code ?? '')) {
        endAttempt();
        attempt(endpoint, staleReplays - 1);
        return;
      }
      if (err instanceof HttpProxyError) failed({ kind: 'connect-failure' }, err);
      else if (connected) failed({ kind: 'reset' }, new UpstreamResetError({ cause: err }));
      else failed({ kind: 'connect-failure' }, new UpstreamConnectError({ cause: err }));
    });

    up.on('response', (ures: IncomingMessage) => {
      responded = true;
      if (settled || over || res.headersSent) {
        // Already answered on this side (the server refused the rest of the request, e.g. a
        // framing error or a timeout mid-body): nothing of this response can be sent.
        ures.resume();
        if (!over) settle({ kind: 'downstream-closed' });
        return;
      }
      const status = ures.statusCode ?? 502;
      if (policy && (status >= 500 || policy.retriableStatusCodes.has(status) || ures.headers['grpc-status'] !== undefined)) {
        const grpcStatus = grpcStatusOf(ures.headers['grpc-status']);
        if (retried({ kind: 'status', status, ...(grpcStatus !== undefined ? { grpcStatus } : {}) })) {
          endAttempt();
          // A request still being sent cannot leave its connection reusable; a complete one can.
          if (up.writableFinished) ures.resume();
          else up.destroy();
          return;
        }
      }
      const headers = downstreamResponseHeaders(ures.headers);
      if (ures.statusMessage) res.writeHead(status, ures.statusMessage, headers);
      else res.writeHead(status, headers);
      ures.on('close', () => {
        // A body cut short by the upstream cannot be reported with a status any more.
        if (!ures.complete) settle({ kind: 'error', error: new UpstreamResetError() });
      });
      ures.on('error', () => undefined); // reported through 'close' above
      res.once('finish', () => {
        endAttempt();
        settle({ kind: 'response', status });
      });
      ures.pipe(res);
    });

    if (body) body.attach(up);
    else up.end();
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

/** No body follows the headers: no `transfer-encoding` and no (or a zero) `content-length`. */
function hasNoBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  return length === undefined || Number(length) === 0;
}
