/**
 * HTTP/2 (h2c) and gRPC on a proxy listener. Streams arrive from the h2c server behind protocol
 * detection (detect-protocol.ts, server-lifecycle.ts; abuse and header limits in h2-limits.ts) and
 * run the same stages as HTTP/1 (listener-http.ts), with `:authority` as the Host:
 *
 *   target (normalize `:path` and `:authority`) → snapshot → route → authz (authz-enforce.ts) → fault (delay, then abort;
 *     fault-inject.ts) → backend → pool limits → endpoint → connect (forward-h2.ts: a stream on the
 *     endpoint's shared session, retries; copies to mirror clusters, mirror-h2.ts)
 *
 * The upstream is spoken to in the protocol the client used (Envoy's USE_DOWNSTREAM_PROTOCOL):
 * HTTP/2 in, HTTP/2 out. Bodies stream both ways; response trailers (`grpc-status`,
 * `grpc-message`) pass through, and a trailers-only response stays trailers-only.
 *
 * Deadlines: `grpc-timeout` is forwarded unchanged and is also this hop's request timeout when
 * shorter than the route's. On expiry the upstream stream is reset (CANCEL) and the client gets
 * `grpc-status: 4` (DEADLINE_EXCEEDED) — trailers-only if no response headers went out yet.
 *
 * Not on this path yet (docs/protocols.md): request trailers.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { H2ServerStream } from './h2-streams';
import { H2_INTERNAL_ERROR } from './h2wire-errors';
import type { Socket } from 'node:net';
import type { Logger } from '@weft/api';
import { TARGET_PORT_HEADER, type HttpListener, type MirrorPolicy, type ProxyConfig, type Route } from './config';
import { applyFault, decideFault, isNoFault } from './fault-inject';
import { forwardH2 } from './forward-h2';
import { upstreamH2Fields, upstreamH2Headers } from './headers-http';
import type { H2Fields } from './h2wire-stream';
import { traceH2, type ProxySpan } from './trace-span';
import { resetStream } from './h2-limits';
import { DEFAULT_MIRROR_TIMEOUT_MS, SHARED_MIRRORS, type RequestMirrors } from './mirror-http';
import { mirrorH2 } from './mirror-h2';
import { requestTarget, type RequestTarget } from './path-normalize';
import { HttpProxyError, MethodNotAllowedError, UpstreamOverflowError, UpstreamTimeoutError } from './proxy-errors';
import { snapshotOf, type ProxySnapshot, type UpstreamPick } from './proxy-snapshot';
import { backendStage, endpointStage, routeStage } from './listener-http';
import { DEFAULT_BUFFER_LIMIT_BYTES } from './retry-policy';
import { SHARED_RETRY_BUDGETS, type RetryBudgets } from './retry-budget';
import type { Http2StreamHandler } from './server-lifecycle';
import { authorizeHttp, defaultDenials, inboundPort, routeClusterPort, type AuthzDenials } from './authz-enforce';
import { h2SessionsOf } from './upstream-h2';
import { endpointKey, type UpstreamPool } from './upstream-pool';
import { RequestRecord, type RequestMetrics } from './metrics-requests';

/** What an HTTP/2 stream handler reads from its listener. */
export interface H2ListenerContext {
  /** The spec in force (read once per stream). */
  readonly spec: () => HttpListener;
  readonly current: () => ProxyConfig;
  readonly pool: UpstreamPool;
  readonly log: Logger;
  readonly originalDestination?: ((socket: Socket) => { readonly port: number } | undefined) | undefined;
  /** Retry budgets and counters; default the process-wide `SHARED_RETRY_BUDGETS`, as HTTP/1's. */
  readonly retryBudgets?: RetryBudgets | undefined;
  /** Mirror copies in flight and their counters; default the process-wide `SHARED_MIRRORS`. */
  readonly mirrors?: RequestMirrors | undefined;
  /** Where authorization denials are counted and logged (the HTTP/1 listener's). */
  readonly authzDenials?: AuthzDenials | undefined;
  /** Request metrics (metrics-requests.ts); absent: not recorded. */
  readonly requestMetrics?: RequestMetrics | undefined;
}

/** Denials of handlers built without a counter (tests): one per logger. */
const FALLBACK_DENIALS = new WeakMap<Logger, AuthzDenials>();
function fallbackDenials(log: Logger): AuthzDenials {
  let d = FALLBACK_DENIALS.get(log);
  if (!d) FALLBACK_DENIALS.set(log, (d = defaultDenials(log)));
  return d;
}

const NO_COPIES: readonly MirrorPolicy[] = [];

/** gRPC status codes used here. */
const GRPC = { DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNKNOWN: 2 } as const;

/** The handler for one listener's HTTP/2 streams. */
export function h2StreamHandler(ctx: H2ListenerContext): Http2StreamHandler {
  return (stream, headers) => serveStream(ctx, stream, headers);
}

type Finish = (status: number, error?: HttpProxyError) => void;
const NO_FINISH: Finish = () => undefined;

/** One stream's request, as the stages after the route see it. */
interface H2Request {
  readonly stream: H2ServerStream;
  readonly spec: HttpListener;
  readonly snap: ProxySnapshot;
  readonly route: Route;
  readonly target: RequestTarget;
  readonly method: string;
  readonly authority: string | undefined;
  /** The received headers, with the inbound target port applied. */
  readonly headers: IncomingHttpHeaders;
  readonly grpc: boolean;
  /** The per-stream debug line's fields; only when debug logging is on. */
  readonly logged: Record<string, unknown> | undefined;
  readonly finish: Finish;
  readonly rec: RequestRecord | undefined;
  readonly fail: (error: HttpProxyError, done?: Finish) => void;
  /** This hop's span, when the listener traces (trace-span.ts). */
  readonly span?: ProxySpan;
}

function serveStream(ctx: H2ListenerContext, stream: H2ServerStream, received: IncomingHttpHeaders): void {
  const spec = ctx.spec();
  const method = String(received[':method'] ?? 'GET');
  const grpc = isGrpc(received['content-type']);
  const authority = received[':authority'] ?? received.host;
  // The per-stream debug line, built only when debug logging is on (the hot path skips it).
  const logged: Record<string, unknown> | undefined = ctx.log.enabled?.('debug') !== false ? { protocol: 'h2', method, host: authority, path: received[':path'] } : undefined;
  const started = logged ? performance.now() : 0;
  const debug: Finish = logged ? (status, error) => ctx.log.debug('request', { ...logged, status, code: error?.code, ms: Math.round(performance.now() - started) }) : NO_FINISH;
  const rec = ctx.requestMetrics && new RequestRecord(ctx.requestMetrics, spec.direction, stream.session!.socket);
  let finish: Finish = rec ? rec.wrap(debug, { stream, grpc }) : debug;
  const fail = (error: HttpProxyError, done: Finish = finish): void => failStream(stream, error, grpc, done);

  if (method === 'CONNECT') return fail(new MethodNotAllowedError('connect-method', 'CONNECT is not supported'));
  const target = requestTarget(String(received[':path'] ?? ''), authority, method, spec.direction);
  if (target instanceof HttpProxyError) return fail(target);
  // Tracing (trace-span.ts): this hop's span, ended with the stream's life.
  const traced = spec.tracing ? traceH2(spec, stream, { method, target, headers: received, grpc }, finish) : undefined;
  if (traced) finish = traced.finish;
  if (logged) {
    logged.host = target.host;
    logged.path = target.path;
  }

  // Inbound, a copy: the target port is set on it as on an HTTP/1 request's headers.
  let headers = received;
  if (spec.direction === 'inbound' && ctx.originalDestination) {
    headers = { ...received };
    const d = ctx.originalDestination(stream.session!.socket as Socket);
    if (d) headers[TARGET_PORT_HEADER] = String(d.port);
    else delete headers[TARGET_PORT_HEADER];
  }
  const snap = snapshotOf(ctx.current(), ctx.pool);
  const route = routeStage(spec, snap, target, { method, headers });
  if (route instanceof HttpProxyError) return fail(route);
  if (logged) logged.route = route.name;
  if (spec.authz) {
    // Authorization stage (authz-enforce.ts); a denied gRPC call gets PERMISSION_DENIED trailers-only.
    const socket = stream.session!.socket;
    const port = spec.direction === 'inbound' ? inboundPort(routeClusterPort(route, snap), headers[TARGET_PORT_HEADER]) : spec.port;
    const denials = ctx.authzDenials ?? fallbackDenials(ctx.log);
    const denied = authorizeHttp(spec.authz, denials, { socket, remoteAddress: socket.remoteAddress, method, headers, target, port }, spec.name);
    if (denied) return fail(denied);
  }
  if (route.action.kind === 'direct-response') {
    stream.respond({ ':status': route.action.status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(route.action.body) });
    stream.end(route.action.body);
    return finish(route.action.status);
  }
  const req: H2Request = { stream, spec, snap, route, target, method, authority, headers, grpc, logged, finish, rec, fail, ...(traced ? { span: traced.span } : {}) };

  // The request lifetime: the route timeout, or the gRPC deadline when that is shorter.
  const deadlineMs = grpc ? grpcTimeoutMs(headers['grpc-timeout']) : undefined;
  const routeMs = route.timeoutMs ?? 0;
  const deadline = deadlineMs !== undefined && (routeMs === 0 || deadlineMs < routeMs);
  const timeoutMs = deadline ? deadlineMs : routeMs;

  // Fault stage: delay, then abort, before any upstream is chosen (fault-inject.ts). An abort of a
  // gRPC request is answered trailers-only, its HTTP status mapped to a gRPC status (`failStream`).
  const fault = spec.faultFilter ? decideFault(route.fault) : undefined;
  if (isNoFault(fault)) return forwardStage(ctx, req, timeoutMs, deadline);
  if (logged) logged.fault = fault;
  applyFault(fault!, timeoutMs, stream, (outcome) => {
    if (outcome.kind === 'downstream-closed') finish(499);
    else if (outcome.kind === 'continue') forwardStage(ctx, req, outcome.timeoutMs, deadline);
    else fail(outcome.error);
  });
}

/** Backend → pool limits → endpoint → connect (forward-h2.ts) and mirror; `timeoutMs` is what is left of the lifetime. */
function forwardStage(ctx: H2ListenerContext, req: H2Request, timeoutMs: number, deadline: boolean): void {
  const { stream, spec, snap, route, target, method, headers, logged, fail } = req;
  const backend = backendStage(snap, route);
  if (backend instanceof HttpProxyError) return fail(backend);
  req.rec?.to(backend.cluster);
  if (logged) logged.cluster = backend.cluster.name;

  let release: (() => void) | undefined;
  const done: Finish = (status, error) => {
    release?.();
    req.finish(status, error);
  };
  const withdraw = backend.limits.enter((r) => {
    release = r;
    if (stream.closed || stream.destroyed) return done(499);
    const pick = endpointStage(backend);
    if (pick instanceof HttpProxyError) return fail(pick, done);
    req.rec?.to(backend.cluster, pick.endpoint);
    if (logged) logged.upstream = endpointKey(pick.endpoint);
    const copies = route.mirrors?.filter((m) => Math.random() < m.fraction) ?? NO_COPIES;
    // Without tracing or mirroring (neither reads them as an object) the upstream fields are built
    // straight from the received ones (headers-http.ts `upstreamH2Fields`).
    const flat = req.span === undefined && copies.length === 0;
    const fieldsFor = (p: UpstreamPick): H2Fields =>
      upstreamH2Fields(stream.fields, headers, { direction: spec.direction, clientAddress: stream.session.socket.remoteAddress, targetPort: p.endpoint.targetPort }, method, String(req.authority ?? target.host), target.path);
    const headersFor = (p: UpstreamPick): OutgoingHttpHeaders => {
      const out = upstreamH2Headers(
        headers,
        { direction: spec.direction, clientAddress: stream.session?.socket?.remoteAddress, targetPort: p.endpoint.targetPort },
        { ':method': method, ':scheme': 'http', ':authority': String(req.authority ?? target.host), ':path': target.path },
      );
      // Tracing: this hop's trace context; each attempt's endpoint (the last one stays on the span).
      req.span?.upstream(route, backend.cluster.name, endpointKey(p.endpoint));
      return req.span ? req.span.h2Headers(out) : out;
    };
    const sessions = h2SessionsOf(ctx.pool);
    const first = flat ? fieldsFor(pick) : headersFor(pick);
    forwardH2(
      stream,
      {
        sessions,
        connectTimeoutMs: backend.cluster.connectTimeoutMs,
        pick,
        // Retries pick their endpoint again, through the same balancer.
        repick: () => endpointStage(backend),
        headersFor: (p) => (p === pick ? first : flat ? fieldsFor(p) : headersFor(p)),
        method,
        timeoutMs,
        deadline,
        grpc: req.grpc,
        retry: route.retry,
        budgets: ctx.retryBudgets ?? SHARED_RETRY_BUDGETS,
        ...(copies.length
          ? {
              onBody: (body) =>
                mirrorH2(
                  { mirrors: ctx.mirrors ?? SHARED_MIRRORS, sessions, snap, direction: spec.direction, timeoutMs: route.timeoutMs || DEFAULT_MIRROR_TIMEOUT_MS },
                  copies,
                  first as OutgoingHttpHeaders,
                  body,
                ),
              keepBodyBytes: route.retry?.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES,
            }
          : {}),
      },
      (status, error, retries) => {
        req.rec?.retried(retries);
        if (retries && logged) logged.retries = retries;
        if (retries) req.span?.retried(retries);
        if (error) fail(error, done);
        else done(status);
      },
    );
  });
  if (!withdraw) return fail(new UpstreamOverflowError(backend.cluster.name));
  if (!release) {
    stream.once('close', () => {
      if (release) return;
      withdraw();
      req.finish(499);
    });
  }
}

/** The one place an error becomes an HTTP/2 answer: a gRPC status for gRPC requests, else a status and text. */
function failStream(stream: H2ServerStream, error: HttpProxyError, grpc: boolean, finish: Finish): void {
  if (stream.closed || stream.destroyed) return finish(499, error);
  if (stream.headersSent) {
    resetStream(stream, H2_INTERNAL_ERROR);
    return finish(0, error);
  }
  if (grpc) {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusOf(error)), 'grpc-message': grpcMessage(error.message) },
      { endStream: true },
    );
  } else {
    stream.respond({ ':status': error.status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(error.message) });
    stream.end(error.message);
  }
  finish(error.status, error);
}

/** HTTP status → gRPC status, as gRPC's own mapping (doc/http-grpc-status-mapping.md) and Envoy's local replies. */
export function grpcStatusOf(error: HttpProxyError): number {
  if (error instanceof UpstreamTimeoutError) return GRPC.DEADLINE_EXCEEDED;
  switch (error.status) {
    case 400:
      return GRPC.INTERNAL;
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
    case 405:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return GRPC.UNKNOWN;
  }
}

/** `grpc-message` is percent-encoded outside printable ASCII, and `%` itself (gRPC over HTTP/2 spec). */
function grpcMessage(text: string): string {
  return Array.from(Buffer.from(text, 'utf8'), (b) => (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

/**
 * `grpc-timeout` (`1..8 digits` + unit `H M S m u n`) in milliseconds, at least 1; `undefined`
 * when absent or malformed (the header is still forwarded as received).
 */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  const m = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  if (!m) return undefined;
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H'];
  return Math.max(1, Math.ceil(Number(m[1]) * unitMs));
}

function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/grpc(\+|;|$)/i.test(contentType);
}

