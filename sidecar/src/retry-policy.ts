/**
 * Retry decisions, as pure functions of a route's `RetryPolicy` and what happened to one attempt.
 * `forward-http.ts` and `forward-h2.ts` (through retry-run.ts) ask `decideRetry` after every failed attempt; everything stateful (the budget,
 * the counters) is passed in, so the rules here are testable without sockets or timers.
 *
 * The rules, in order (docs/configuration.md, "Retries"):
 *   1. the failure must match the policy's `retryOn` (Envoy's meaning of each condition);
 *   2. retries left (`numRetries`);
 *   3. the upstream may have seen the request (anything but a connect failure or, on HTTP/2, a
 *      refused stream): only idempotent methods, unless the policy opts in (FIELD-NOTES 6);
 *   4. the request body was kept for replay (within `bufferLimitBytes`, FIELD-NOTES 9);
 *   5. the backoff ends before the route timeout (FIELD-NOTES 7);
 *   6. the retry budget has room (FIELD-NOTES 8).
 * A failure of rule 1 is not a skipped retry; every later refusal is counted by its reason.
 */
import type { RetryCondition, RetryPolicy } from './config';

/** Envoy's defaults: 25 ms base backoff, ten times that as the cap; Linkerd's 64 KiB replay buffer. */
export const DEFAULT_BACKOFF_BASE_MS = 25;
export const DEFAULT_BUFFER_LIMIT_BYTES = 64 * 1024;
/** FIELD-NOTES 8: a budget is on by default, 20% of requests plus 10 retries per second. */
export const DEFAULT_BUDGET = { percent: 20, minRetriesPerSecond: 10 } as const;

/** gRPC conditions of `retryOn` and the status codes they match. */
export const GRPC_CONDITIONS: Readonly<Record<string, number>> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

export const RETRY_CONDITIONS: ReadonlySet<RetryCondition> = new Set<RetryCondition>([
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'refused-stream',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

/** RFC 9110 §9.2.2: repeating these has the effect of sending them once. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string | undefined): boolean {
  return IDEMPOTENT.has(method ?? 'GET');
}

/** How one attempt failed. */
export type AttemptFailure =
  /** The connection was never established: nothing of the request was sent. */
  | { readonly kind: 'connect-failure' }
  /** Connected, then reset before response headers. */
  | { readonly kind: 'reset' }
  /**
   * HTTP/2: the upstream refused the stream (RST_STREAM REFUSED_STREAM, or a GOAWAY whose last
   * stream id is below this stream's, which nghttp2 reports the same way): it never processed it.
   */
  | { readonly kind: 'refused-stream' }
  /** The attempt's per-try timeout elapsed before response headers. */
  | { readonly kind: 'per-try-timeout' }
  /** Response headers arrived with this status (and `grpc-status`, when present). */
  | { readonly kind: 'status'; readonly status: number; readonly grpcStatus?: number };

/** Whether `failure` matches the policy's `retryOn`, with Envoy's meaning of each condition. */
export function matchesRetryOn(policy: RetryPolicy, failure: AttemptFailure): boolean {
  const on = policy.retryOn;
  switch (failure.kind) {
    // Envoy: 5xx, gateway-error and reset all include a request that got no response at all.
    case 'connect-failure':
      return on.has('connect-failure') || on.has('5xx') || on.has('gateway-error') || on.has('reset');
    // Envoy: `5xx` includes refused streams; a refused stream is a kind of reset.
    case 'refused-stream':
      return on.has('refused-stream') || on.has('5xx') || on.has('gateway-error') || on.has('reset');
    case 'reset':
    case 'per-try-timeout':
      return on.has('5xx') || on.has('gateway-error') || on.has('reset');
    case 'status': {
      const s = failure.status;
      if (s >= 500 && on.has('5xx')) return true;
      if ((s === 502 || s === 503 || s === 504) && on.has('gateway-error')) return true;
      if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(s)) return true;
      return failure.grpcStatus !== undefined && policy.grpcStatuses.has(failure.grpcStatus);
    }
  }
}

/**
 * The upstream provably did not process the request (FIELD-NOTES 6): the connection never came up,
 * or an HTTP/2 upstream refused the stream. Safe to retry whatever the method.
 */
export function neverProcessed(failure: AttemptFailure): boolean {
  return failure.kind === 'connect-failure' || failure.kind === 'refused-stream';
}

/**
 * Whether a failure reported later, once response headers are in (a status, or a `grpc-status`
 * in trailers), could still be retried: the policy has retries left, the method (or the policy's
 * opt-in) allows retrying after the upstream read the request, and the body is still replayable.
 * The budget and the deadline are not consulted: they are checked when the failure is known.
 * HTTP/2 holds response headers only while this is true (forward-h2.ts).
 */
export function mayRetryResponse(policy: RetryPolicy | undefined, method: string | undefined, retriesDone: number, bodyReplayable: boolean): boolean {
  if (!policy || retriesDone >= policy.numRetries || !bodyReplayable) return false;
  return policy.retryNonIdempotent || isIdempotent(method);
}

/** Why a retry the policy asked for was not made (bounded: a metric label). */
export type SkipReason = 'limit' | 'non-idempotent' | 'body-too-large' | 'deadline' | 'budget';

export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number }
  | { readonly retry: false; readonly skipped?: SkipReason };

export interface RetryContext {
  readonly policy: RetryPolicy;
  readonly method: string | undefined;
  /** Retries already made for this request. */
  readonly retriesDone: number;
  /** False once the request body outgrew the replay buffer. */
  readonly bodyReplayable: boolean;
  /** Milliseconds left of the route timeout; `Infinity` without one. */
  readonly remainingMs: number;
  /** Takes one retry from the budget, or says there is none (called last, only when all else allows). */
  readonly withdraw: () => boolean;
  readonly random?: () => number;
}

/** The decision after a failed attempt. Withdraws from the budget only when the answer is yes. */
export function decideRetry(ctx: RetryContext, failure: AttemptFailure): RetryDecision {
  const { policy } = ctx;
  if (!matchesRetryOn(policy, failure)) return { retry: false };
  if (ctx.retriesDone >= policy.numRetries) return { retry: false, skipped: 'limit' };
  if (!neverProcessed(failure) && !policy.retryNonIdempotent && !isIdempotent(ctx.method)) {
    return { retry: false, skipped: 'non-idempotent' };
  }
  if (!ctx.bodyReplayable) return { retry: false, skipped: 'body-too-large' };
  const delayMs = backoffMs(policy, ctx.retriesDone + 1, ctx.random);
  // A retry that cannot even start before the route timeout would only delay the 504.
  if (delayMs >= ctx.remainingMs) return { retry: false, skipped: 'deadline' };
  if (!ctx.withdraw()) return { retry: false, skipped: 'budget' };
  return { retry: true, delayMs };
}

/**
 * Fully jittered exponential backoff (Envoy's): before retry `n` (1-based) wait a uniformly random
 * time in [0, min(base × 2^(n-1), max)).
 */
export function backoffMs(policy: RetryPolicy, n: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.backoff.baseMs * 2 ** Math.min(n - 1, 30), policy.backoff.maxMs);
  return Math.floor(random() * ceiling);
}

/** `grpc-status` from response headers (a trailers-only gRPC response) or trailers, when it is a number. */
export function grpcStatusOf(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || !/^\d{1,2}$/.test(v.trim())) return undefined;
  return Number(v.trim());
}
