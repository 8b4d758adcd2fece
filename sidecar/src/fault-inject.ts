/**
 * The fault stage (Envoy's fault filter, `HTTPFault`): per request, a route's delay and then its
 * abort, each drawn independently by its fraction. It runs after the route is chosen and before a
 * backend or endpoint is picked, so an aborted request never reaches (or connects to) an upstream.
 * The delay counts against the route timeout: a delay that would outlast it ends at the timeout
 * with `504 upstream request timeout`, and what is left of the timeout bounds the forwarding.
 */
import type { H2ServerStream } from './h2-streams';
import type { DownstreamResponse } from './http1-message';
import type { FaultPolicy } from './config';
import { HttpProxyError, UpstreamTimeoutError } from './proxy-errors';

/** The request was aborted by the fault filter (Envoy's FI flag); answered with the configured status. */
export class FaultAbortError extends HttpProxyError {
  readonly code = 'FAULT_ABORT';
  constructor(readonly status: number) {
    super('fault filter abort');
  }
}

/** What the fault filter does to one request. */
export interface FaultDecision {
  /** 0: no delay. */
  readonly delayMs: number;
  /** Absent: no abort. */
  readonly abortStatus?: number;
}

const NONE: FaultDecision = { delayMs: 0 };

/** Draws the delay and the abort, independently. Pure but for `random`. */
export function decideFault(fault: FaultPolicy | undefined, random: () => number = Math.random): FaultDecision {
  if (!fault) return NONE;
  const delayMs = fault.delay && random() < fault.delay.fraction ? fault.delay.fixedDelayMs : 0;
  const abort = fault.abort && random() < fault.abort.fraction ? fault.abort.httpStatus : undefined;
  return delayMs === 0 && abort === undefined ? NONE : { delayMs, ...(abort !== undefined ? { abortStatus: abort } : {}) };
}

export type FaultOutcome =
  /** Go on forwarding, with `timeoutMs` left of the route timeout (0: none). */
  | { readonly kind: 'continue'; readonly timeoutMs: number }
  /** Answer with `error` (an abort, or the route timeout spent in the delay). */
  | { readonly kind: 'error'; readonly error: HttpProxyError }
  /** The client went away during the delay. */
  | { readonly kind: 'downstream-closed' };

/** What the fault stage watches for the client leaving: an HTTP/1 response or an HTTP/2 stream (both emit `close`). */
export type ClosingExchange = Pick<DownstreamResponse, 'once' | 'off'> | Pick<H2ServerStream, 'once' | 'off'>;

/**
 * Applies `decision` to a request whose route timeout is `timeoutMs` (0: none) and calls `next`
 * exactly once: synchronously without a delay, else when the delay (or the timeout, or the client
 * closing `res`) ends.
 */
export function applyFault(decision: FaultDecision, timeoutMs: number, res: ClosingExchange, next: (outcome: FaultOutcome) => void): void {
  const after = (): FaultOutcome =>
    decision.abortStatus !== undefined
      ? { kind: 'error', error: new FaultAbortError(decision.abortStatus) }
      : { kind: 'continue', timeoutMs: timeoutMs > 0 ? timeoutMs - decision.delayMs : 0 };
  if (decision.delayMs <= 0) return next(after());
  const timesOut = timeoutMs > 0 && decision.delayMs >= timeoutMs;
  const onClose = (): void => {
    clearTimeout(timer);
    next({ kind: 'downstream-closed' });
  };
  const timer = setTimeout(
    () => {
      (res as Pick<DownstreamResponse, 'once' | 'off'>).off('close', onClose);
      next(timesOut ? { kind: 'error', error: new UpstreamTimeoutError() } : after());
    },
    timesOut ? timeoutMs : decision.delayMs,
  );
  (res as Pick<DownstreamResponse, 'once' | 'off'>).once('close', onClose);
}

/** Whether the fault filter does anything to this request (a decision with neither delay nor abort does not). */
export function isNoFault(decision: FaultDecision | undefined): boolean {
  return !decision || (decision.delayMs === 0 && decision.abortStatus === undefined);
}
