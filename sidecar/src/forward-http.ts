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
import type { ExchangeHandler, Http1Endpoint, Http1Exchange } from './upstream-http1';
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
  const f = new HttpForward(req, res, target, done);
  if (f.bodyless) {
    f.attempt(target, 1);
    return;
  }
  // A body follows: start from the next turn of the event loop. llhttp parses everything already
  // received before then, so a framing error right behind the headers (an invalid first chunk) is
  // answered (400, by the server's clientError handler) before any upstream connection opens. A
  // later error aborts the upstream request mid-body, as with any streaming proxy; the upstream
  // never sees a complete request (docs/http-safety.md).
  setImmediate(() => {
    if (f.settled) return;
    if (req.socket.destroyed || req.socket.writableEnded || res.writableEnded) f.settle(DOWNSTREAM_CLOSED);
    else f.attempt(target, 0);
  });
}

const DOWNSTREAM_CLOSED: ForwardOutcome = { kind: 'downstream-closed' };

/**
 * One request's forwarding: its state lives in fields, its steps are methods (not a closure per
 * step: this runs once per proxied request; docs/performance.md, "per-request diet").
 */
class HttpForward {
  settled = false;
  /** The current attempt's exchange (undefined during a backoff). */
  upstream: Http1Exchange | undefined;
  private routeTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  /** Retry state; only with a policy (without one, nothing is counted or retried). */
  private readonly run: RetryRun | undefined;
  // The head already read the framing from the raw headers: no second look (nor a headers object).
  readonly bodyless: boolean;
  readonly body: ReplayableBody | undefined;
  readonly policy: RetryPolicy | undefined;
  readonly method: string;
  readonly skipBody: boolean;

  constructor(
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    readonly target: ForwardTarget,
    private readonly done: (outcome: ForwardOutcome) => void,
  ) {
    const policy = (this.policy = target.retry);
    const method = (this.method = req.method ?? 'GET');
    this.skipBody = method === 'HEAD';
    // Counts the request in its retry budget now (its first attempt).
    this.run = policy ? new RetryRun(policy, target.budgets ?? SHARED_RETRY_BUDGETS, req.method, target.timeoutMs) : undefined;
    const bodyless = (this.bodyless = target.head.framing === 'none');
    const keep = Math.max(policy ? policy.bufferLimitBytes : 0, target.onBody ? target.keepBodyBytes ?? 0 : 0);
    const body = (this.body = bodyless ? undefined : new ReplayableBody(req, keep));
    if (target.onBody) {
      if (body) body.whenComplete(target.onBody);
      else target.onBody([]);
    }
    if (target.timeoutMs > 0) this.routeTimer = setTimeout(() => this.settle({ kind: 'error', error: new UpstreamTimeoutError() }), target.timeoutMs);
    // The response is over and this request has not settled: the client went away, or the server
    // answered it itself (a refusal of its body). Either way the upstream attempt is abandoned.
    res.on('close', () => this.settle(DOWNSTREAM_CLOSED));
    if (bodyless) req.resume();
  }

  settle(outcome: ForwardOutcome): void {
    if (this.settled) return;
    this.settled = true;
    if (this.routeTimer) clearTimeout(this.routeTimer);
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    if (outcome.kind !== 'response') this.upstream?.abort();
    this.body?.release();
    const retries = this.run ? this.run.retries : 0;
    this.done(retries ? { ...outcome, retries } : outcome);
  }

  /** After a failed attempt: schedules the retry and returns true, or returns false. */
  retried(failure: AttemptFailure): boolean {
    if (this.settled || !this.run) return false;
    const delayMs = this.run.next(failure, this.body?.replayable ?? true);
    if (delayMs === undefined) return false;
    this.target.onRetry?.(failure);
    this.body?.detach();
    this.upstream = undefined;
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      if (this.settled) return;
      const next = this.target.repick ? this.target.repick() : this.target;
      if (next instanceof HttpProxyError) this.settle({ kind: 'error', error: next });
      else this.attempt(next, 1);
    }, delayMs);
    return true;
  }

  /** Sends one attempt to `endpoint`; `staleReplays`: replays left for a stale pooled connection. */
  attempt(endpoint: ForwardEndpoint, staleReplays: number): void {
    const a = new Attempt(this, endpoint, staleReplays);
    const target = this.target;
    const exchange = (a.exchange = endpoint.upstream.request(
      requestHead(this.method, target.path, target.head, endpoint.targetPort),
      a,
      target.head.framing,
      this.skipBody,
      target.connectTimeoutMs,
    ));
    this.upstream = exchange;
    const policy = this.policy;
    if (policy && policy.perTryTimeoutMs > 0) a.startTryTimer(policy.perTryTimeoutMs);
    if (this.body) this.body.attach(sinkOf(exchange));
    else exchange.end();
  }
}

/** One attempt: the exchange's handler. Events of an attempt that is over (failed, replaced) are ignored. */
class Attempt implements ExchangeHandler {
  connected = false;
  responded = false;
  /** A response being retried: its body is dropped, its connection kept. */
  discarding = false;
  /** This attempt failed or was replaced: ignore its late events. */
  over = false;
  tryTimer: NodeJS.Timeout | undefined;
  exchange: Http1Exchange | undefined;
  private resumer: (() => void) | undefined;

  constructor(
    private readonly f: HttpForward,
    private readonly endpoint: ForwardEndpoint,
    private readonly staleReplays: number,
  ) {}

  startTryTimer(ms: number): void {
    this.tryTimer = setTimeout(() => {
      // Before headers: a failed attempt. After: the response is cut short (the client sees a reset).
      if (!this.responded) this.failed({ kind: 'per-try-timeout' }, new UpstreamTimeoutError());
      else if (!this.over) this.f.settle({ kind: 'error', error: new UpstreamTimeoutError() });
    }, ms);
  }

  private endAttempt(): void {
    this.over = true;
    if (this.tryTimer) clearTimeout(this.tryTimer);
  }

  /** A failure before response headers: retry, or settle with `error`. */
  private failed(failure: AttemptFailure, error: HttpProxyError): void {
    if (this.over || this.f.settled) return;
    this.endAttempt();
    this.exchange?.abort();
    if (!this.f.retried(failure)) this.f.settle({ kind: 'error', error });
  }

  onConnect(): void {
    this.connected = true;
  }

  onError(err: NodeJS.ErrnoException, info: { readonly connected: boolean; readonly reused: boolean }): void {
    const f = this.f;
    if (f.settled || this.over) return;
    if (this.responded) {
      // A body cut short by the upstream cannot be reported with a status any more.
      this.endAttempt();
      f.settle({ kind: 'error', error: new UpstreamResetError({ cause: err }) });
      return;
    }
    if (this.staleReplays > 0 && f.bodyless && info.reused && RETRYABLE_ON_REUSED.has(err.code ?? '')) {
      this.endAttempt();
      f.attempt(this.endpoint, this.staleReplays - 1);
      return;
    }
    if (info.connected || this.connected) this.failed({ kind: 'reset' }, new UpstreamResetError({ cause: err }));
    else this.failed({ kind: 'connect-failure' }, new UpstreamConnectError({ cause: err }));
  }

  onResponse(status: number, message: string, raw: readonly string[]): void {
    this.responded = true;
    const f = this.f;
    const res = f.res;
    if (f.settled || this.over || res.headersSent) {
      // Already answered on this side (the server refused the rest of the request, e.g. a
      // framing error or a timeout mid-body): nothing of this response can be sent.
      this.discarding = true;
      if (!this.over) {
        this.endAttempt();
        f.settle(DOWNSTREAM_CLOSED);
      }
      return;
    }
    const policy = f.policy;
    if (policy) {
      const grpc = rawHeader(raw, 'grpc-status');
      if (status >= 500 || policy.retriableStatusCodes.has(status) || grpc !== undefined) {
        const grpcStatus = grpcStatusOf(grpc);
        if (f.retried({ kind: 'status', status, ...(grpcStatus !== undefined ? { grpcStatus } : {}) })) {
          this.endAttempt();
          // A request still being sent cannot leave its connection reusable; a complete one can.
          if (this.exchange!.requestFinished) this.discarding = true;
          else this.exchange!.abort();
          return;
        }
      }
    }
    const headers = downstreamRawHeaders(raw);
    if (message) res.writeHead(status, message, headers);
    else res.writeHead(status, headers);
    res.once('finish', () => {
      this.endAttempt();
      f.settle({ kind: 'response', status });
    });
  }

  onData(chunk: Buffer): void {
    if (this.discarding || this.over) return;
    if (!this.f.res.write(chunk)) {
      this.exchange!.socket?.pause();
      this.f.res.once('drain', (this.resumer ??= () => this.exchange?.socket?.resume()));
    }
  }

  onEnd(): void {
    if (this.discarding || this.over) return;
    this.f.res.end();
  }
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
