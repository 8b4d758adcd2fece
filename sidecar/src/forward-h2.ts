/**
 * The connect stage for HTTP/2 and gRPC: forwards one downstream stream as a stream on the
 * endpoint's shared upstream session (upstream-h2.ts) and streams the response back, retrying by
 * the route's `RetryPolicy` with the same rules as HTTP/1 (retry-policy.ts decides, retry-run.ts
 * counts, retry-budget.ts caps, body-buffer.ts replays the request body). Owns the request's
 * timers — per-try timeout, backoff, and the request lifetime (route timeout or gRPC deadline) that
 * bounds them — and never writes an error response itself: the listener does, in one place.
 *
 * **Holding response headers** (docs/protocols.md, "Retries"). A gRPC failure usually arrives as
 * `:status 200`, then trailers with `grpc-status` — after the headers, so a proxy that forwards
 * the headers at once has committed the response before it knows the status. While a retry is
 * still possible for the request (a policy with gRPC conditions, retries left, a replayable body,
 * and the method or the policy's opt-in allowing a retry after the upstream read it), the response
 * headers are held until the first DATA frame or the end of the stream. Trailers that arrive first
 * (no message was sent) carry a status known before anything was committed, and it is retried
 * like one in headers. Once a DATA frame arrived, the response is committed and streamed; nothing
 * after that is retried.
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import type { CallResult } from './balancer';
import type { RetryPolicy } from './config';
import { ReplayableBody } from './body-buffer';
import { downstreamH2Headers } from './headers-http';
import { resetStream } from './h2-limits';
import { H2_FLAG_END_STREAM, type H2ClientStream, type H2ServerStream } from './h2-streams';
import { H2_CANCEL, H2_NO_ERROR, H2_REFUSED_STREAM } from './h2wire-errors';
import type { H2Fields } from './h2wire-stream';
import { HttpProxyError, UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';
import type { UpstreamPick } from './proxy-snapshot';
import type { RetryBudgets } from './retry-budget';
import { grpcStatusOf, type AttemptFailure } from './retry-policy';
import { RetryRun } from './retry-run';
import type { UpstreamH2Sessions } from './upstream-h2';

/** gRPC DEADLINE_EXCEEDED, as the sidecar answers an expired `grpc-timeout`. */
const DEADLINE_EXCEEDED = 4;

export interface H2ForwardTarget {
  readonly sessions: UpstreamH2Sessions;
  /** Cluster connect timeout; 0: none. */
  readonly connectTimeoutMs: number;
  /** The first attempt's endpoint. */
  readonly pick: UpstreamPick;
  /** Picks the endpoint of a retry (the balancer again). */
  readonly repick: () => UpstreamPick | HttpProxyError;
  /** The upstream request headers for an endpoint (pseudo-headers included), as an object or as fields. */
  readonly headersFor: (pick: UpstreamPick) => OutgoingHttpHeaders | H2Fields;
  readonly method: string;
  /** The request lifetime, retries and backoff included; 0: none. */
  readonly timeoutMs: number;
  /** The lifetime is the client's gRPC deadline: its expiry is answered DEADLINE_EXCEEDED. */
  readonly deadline: boolean;
  readonly grpc: boolean;
  readonly retry?: RetryPolicy | undefined;
  readonly budgets: RetryBudgets;
  /**
   * Called once the whole request body has arrived, with it, or `undefined` when it outgrew
   * `keepBodyBytes` (mirroring replays it from here). Not called when the request settles first.
   */
  readonly onBody?: ((body: readonly Buffer[] | undefined) => void) | undefined;
  readonly keepBodyBytes?: number | undefined;
}

/**
 * How the stream ended, given once: `error` when nothing was answered yet (the caller answers it);
 * otherwise the status that went out (499: the client left first). `retries` made.
 */
export type H2Done = (status: number, error?: HttpProxyError, retries?: number) => void;

/**
 * Forwards `stream` to `target`. Returns at once; calls `done` exactly once. Balancer picks are
 * completed here, one per attempt, with that attempt's outcome.
 */
export function forwardH2(stream: H2ServerStream, target: H2ForwardTarget, done: H2Done): void {
  const run = new RetryRun(target.retry, target.budgets, target.method, target.timeoutMs);
  const keep = Math.max(target.retry?.bufferLimitBytes ?? 0, target.onBody ? target.keepBodyBytes ?? 0 : 0);
  // A reset stream's readable side ends too: never pass that on as the end of the request.
  const body = new ReplayableBody(stream, keep, () => stream.aborted || (stream.rstCode ?? 0) !== 0);
  if (target.onBody) body.whenComplete(target.onBody);

  let settled = false;
  let status = 0;
  let trailers: OutgoingHttpHeaders | undefined;
  let backoffTimer: NodeJS.Timeout | undefined;
  /** Ends the attempt in flight (its upstream stream cancelled, its pick given `result`). */
  let cancelAttempt: ((result: CallResult) => void) | undefined;

  const settle = (error?: HttpProxyError, answered = status): void => {
    if (settled) return;
    settled = true;
    clearTimeout(routeTimer);
    clearTimeout(backoffTimer);
    body.release();
    done(answered, error, run.retries);
  };

  /** The request lifetime ran out: cancel the attempt, answer what can still be answered. */
  const onLifetime = (): void => {
    cancelAttempt?.({ kind: 'timeout' });
    if (!stream.headersSent) {
      if (!target.deadline) return settle(new UpstreamTimeoutError());
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...deadlineTrailers() }, { endStream: true });
      return settle(undefined, 200);
    }
    cutResponse();
    settle();
  };
  const routeTimer = target.timeoutMs > 0 ? setTimeout(onLifetime, target.timeoutMs) : undefined;

  /** After response headers went out: end a gRPC response with DEADLINE_EXCEEDED, reset anything else. */
  const cutResponse = (): void => {
    if (stream.closed) return;
    if (target.grpc) {
      trailers = deadlineTrailers();
      stream.end(); // 'wantTrailers' sends them
    } else {
      resetStream(stream, H2_CANCEL);
    }
  };

  stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}));
  stream.once('close', () => {
    if (settled) return;
    cancelAttempt?.({ kind: 'cancelled' });
    settle(undefined, stream.headersSent ? status : 499);
  });

  /**
   * After a failed attempt: when the policy allows a retry, drops the attempt (`drop`), schedules
   * the retry on a freshly picked endpoint and returns true; otherwise returns false.
   */
  const retried = (failure: AttemptFailure, drop: () => void): boolean => {
    if (settled) return false;
    const delayMs = run.next(failure, body.replayable);
    if (delayMs === undefined) return false;
    drop();
    body.detach();
    backoffTimer = setTimeout(() => {
      backoffTimer = undefined;
      if (settled) return;
      const next = target.repick();
      if (next instanceof HttpProxyError) settle(next);
      else attempt(next);
    }, delayMs);
    return true;
  };

  const attempt = (pick: UpstreamPick): void => {
    const upstream = target.sessions.sessionFor(pick.endpoint, target.connectTimeoutMs);
    let over = false; // this attempt failed, was cancelled, or its response ended
    let committed = false; // its response headers went downstream
    let held: OutgoingHttpHeaders | undefined; // response headers held back (see the module comment)
    let upEnded = false;
    let tryTimer: NodeJS.Timeout | undefined;

    const endAttempt = (result: CallResult): void => {
      over = true;
      clearTimeout(tryTimer);
      if (cancelAttempt === cancel) cancelAttempt = undefined;
      pick.done(result);
    };
    /** Ends this attempt now: its pick gets `result`, its upstream stream (if still going) a CANCEL. */
    const cancel = (result: CallResult): void => {
      if (over) return;
      endAttempt(result);
      // `up` is unset when the request could not even be made.
      if (up !== undefined && !upEnded) cancelUpstream(up);
    };
    /** A failure before anything was committed: retry, or settle with `error`. */
    const failed = (failure: AttemptFailure, error: HttpProxyError): void => {
      if (over || settled) return;
      const drop = (): void => cancel(callResultOf(failure));
      if (retried(failure, drop)) return;
      drop();
      settle(error);
    };
    cancelAttempt = cancel;

    let up: H2ClientStream;
    try {
      up = upstream.session.request(target.headersFor(pick), { endStream: false });
    } catch (err) {
      // A session already closing (GOAWAY) or destroyed: nothing was sent.
      return failed({ kind: 'connect-failure' }, new UpstreamConnectError({ cause: err }));
    }

    if (target.retry && target.retry.perTryTimeoutMs > 0) {
      tryTimer = setTimeout(() => {
        if (!committed) return failed({ kind: 'per-try-timeout' }, new UpstreamTimeoutError());
        // Mid-response: cut short, as HTTP/1 does.
        cancel({ kind: 'timeout' });
        cutResponse();
        settle();
      }, target.retry.perTryTimeoutMs);
    }

    /** Sends the response headers downstream, then the body as it comes. */
    const commit = (headers: OutgoingHttpHeaders, firstChunk?: Buffer): void => {
      if (stream.closed || stream.destroyed) return;
      committed = true;
      held = undefined;
      pick.done({ kind: 'response', status });
      stream.respond(headers, { waitForTrailers: true });
      if (firstChunk) stream.write(firstChunk);
      if (upEnded) stream.end();
      else up.pipe(stream);
    };
    const onHeldData = (chunk: Buffer): void => {
      up.off('data', onHeldData);
      up.pause();
      if (held && !over && !settled) commit(held, chunk);
    };
    /** A status the policy may retry: true when a retry was scheduled (this attempt is dropped). */
    const retriedStatus = (grpcStatus: number | undefined): boolean =>
      run.policy !== undefined && retried({ kind: 'status', status, ...(grpcStatus !== undefined ? { grpcStatus } : {}) }, () => cancel({ kind: 'response', status }));

    up.once('response', (responseHeaders, flags) => {
      if (over || settled || stream.closed) return;
      status = Number(responseHeaders[':status']);
      const out = downstreamH2Headers(responseHeaders, status);
      const grpcStatus = grpcStatusOf(responseHeaders['grpc-status']);
      const retriable = status >= 500 || run.policy?.retriableStatusCodes.has(status) === true || grpcStatus !== undefined;
      if (retriable && retriedStatus(grpcStatus)) return;
      if ((flags & H2_FLAG_END_STREAM) !== 0) {
        // Trailers-only (a gRPC error without a message): forwarded as it came, one HEADERS frame.
        endAttempt({ kind: 'response', status });
        committed = true;
        stream.respond(out, { endStream: true });
        up.resume();
        return;
      }
      if (target.grpc && run.policy && run.policy.grpcStatuses.size > 0 && run.mayRetryResponse(body.replayable)) {
        held = out;
        up.on('data', onHeldData);
        return;
      }
      commit(out);
    });
    up.on('trailers', (t) => {
      trailers = downstreamH2Headers(t);
      if (!held || over || settled) return;
      // Trailers before any DATA: the status is known and nothing was committed.
      if (retriedStatus(grpcStatusOf(t['grpc-status']))) return;
      up.off('data', onHeldData);
      commit(held);
    });
    up.once('end', () => {
      upEnded = true;
      if (held && !over && !settled) {
        up.off('data', onHeldData);
        commit(held);
      }
      clearTimeout(tryTimer);
    });
    up.once('close', () => {
      if (over || settled) return;
      if (!committed) {
        // No response reached the client yet (none came, or it was held): a failed attempt.
        if (!upstream.connected()) return failed({ kind: 'connect-failure' }, new UpstreamConnectError());
        if (up.rstCode === H2_REFUSED_STREAM) return failed({ kind: 'refused-stream' }, new UpstreamResetError());
        return failed({ kind: 'reset' }, new UpstreamResetError());
      }
      over = true;
      clearTimeout(tryTimer);
      // Reset after the response began: pass the reset on rather than end the response cleanly.
      if (up.rstCode !== undefined && up.rstCode !== H2_NO_ERROR) resetStream(stream, up.rstCode);
    });
    body.attach(up);
  };

  attempt(target.pick);
}

/**
 * Resets an upstream stream with RST_STREAM(CANCEL). A request still being sent is not ended first:
 * the upstream never sees a truncated request as complete.
 */
export function cancelUpstream(up: H2ClientStream): void {
  up.close(H2_CANCEL);
}

/** A failed attempt as balancers and outlier detection read it. */
function callResultOf(failure: AttemptFailure): CallResult {
  switch (failure.kind) {
    case 'connect-failure':
      return { kind: 'connect-failure' };
    case 'reset':
    case 'refused-stream':
      return { kind: 'reset' };
    case 'per-try-timeout':
      return { kind: 'timeout' };
    case 'status':
      return { kind: 'response', status: failure.status };
  }
}

export function deadlineTrailers(): OutgoingHttpHeaders {
  return { 'grpc-status': String(DEADLINE_EXCEEDED), 'grpc-message': 'deadline exceeded' };
}
