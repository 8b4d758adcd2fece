/**
 * HTTP/2 (h2c) and gRPC on a proxy listener. Streams arrive from the h2c server behind protocol
 * detection (detect-protocol.ts, server-lifecycle.ts) and run the same stages as HTTP/1
 * (listener-http.ts), with `:authority` as the Host:
 *
 *   target (normalize `:path` and `:authority`) → snapshot → route → backend → pool limits →
 *     endpoint → connect (an HTTP/2 stream on the endpoint's shared session, upstream-h2.ts)
 *
 * The upstream is spoken to in the protocol the client used (Envoy's USE_DOWNSTREAM_PROTOCOL):
 * HTTP/2 in, HTTP/2 out. Bodies stream both ways; response trailers (`grpc-status`,
 * `grpc-message`) pass through, and a trailers-only response stays trailers-only.
 *
 * Deadlines: `grpc-timeout` is forwarded unchanged and is also this hop's request timeout when
 * shorter than the route's. On expiry the upstream stream is reset (CANCEL) and the client gets
 * `grpc-status: 4` (DEADLINE_EXCEEDED) — trailers-only if no response headers went out yet.
 *
 * Not on this path yet (docs/protocols.md): retries, fault injection and mirroring; request
 * trailers; an idle timeout per stream.
 */
import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '@weft/api';
import type { CallResult } from './balancer';
import { TARGET_PORT_HEADER, type HttpListener, type ProxyConfig } from './config';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers-http';
import { requestTarget } from './path-normalize';
import { HttpProxyError, MethodNotAllowedError, UpstreamConnectError, UpstreamOverflowError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';
import { snapshotOf, type ClusterSnapshot, type UpstreamPick } from './proxy-snapshot';
import { backendStage, endpointStage, routeStage } from './listener-http';
import type { Http2StreamHandler } from './server-lifecycle';
import { h2SessionsOf } from './upstream-h2';
import { endpointKey, type UpstreamPool } from './upstream-pool';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** What an HTTP/2 stream handler reads from its listener. */
export interface H2ListenerContext {
  /** The spec in force (read once per stream). */
  readonly spec: () => HttpListener;
  readonly current: () => ProxyConfig;
  readonly pool: UpstreamPool;
  readonly log: Logger;
  readonly originalDestination?: ((socket: Socket) => { readonly port: number } | undefined) | undefined;
}

/** gRPC status codes used here. */
const GRPC = { DEADLINE_EXCEEDED: 4, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNKNOWN: 2 } as const;

/** The handler for one listener's HTTP/2 streams. */
export function h2StreamHandler(ctx: H2ListenerContext): Http2StreamHandler {
  return (stream, headers) => serveStream(ctx, stream, headers);
}

type Finish = (status: number, error?: HttpProxyError) => void;

function serveStream(ctx: H2ListenerContext, stream: ServerHttp2Stream, received: IncomingHttpHeaders): void {
  stream.on('error', () => undefined); // a reset from either side ends up in 'close'
  const started = performance.now();
  const spec = ctx.spec();
  const method = String(received[':method'] ?? 'GET');
  const grpc = isGrpc(received['content-type']);
  const authority = received[':authority'] ?? received.host;
  const logged: Record<string, unknown> = { protocol: 'h2', method, host: authority, path: received[':path'] };
  const finish: Finish = (status, error) => {
    ctx.log.debug('request', { ...logged, status, code: error?.code, ms: Math.round(performance.now() - started) });
  };
  const fail = (error: HttpProxyError, done: Finish = finish): void => failStream(stream, error, grpc, done);

  if (method === 'CONNECT') return fail(new MethodNotAllowedError('connect-method', 'CONNECT is not supported'));
  const target = requestTarget(String(received[':path'] ?? ''), authority, method, spec.direction);
  if (target instanceof HttpProxyError) return fail(target);
  logged.host = target.host;
  logged.path = target.path;

  // A copy: the inbound target port is set on it as on an HTTP/1 request's headers.
  const headers: IncomingHttpHeaders = { ...received };
  if (spec.direction === 'inbound' && ctx.originalDestination) {
    const d = ctx.originalDestination(stream.session!.socket as Socket);
    if (d) headers[TARGET_PORT_HEADER] = String(d.port);
    else delete headers[TARGET_PORT_HEADER];
  }
  const snap = snapshotOf(ctx.current(), ctx.pool);
  const route = routeStage(spec, snap, target, { method, headers });
  if (route instanceof HttpProxyError) return fail(route);
  logged.route = route.name;
  if (route.action.kind === 'direct-response') {
    stream.respond({ ':status': route.action.status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(route.action.body) });
    stream.end(route.action.body);
    return finish(route.action.status);
  }
  const backend = backendStage(snap, route);
  if (backend instanceof HttpProxyError) return fail(backend);
  logged.cluster = backend.cluster.name;

  // The request lifetime: the route timeout, or the gRPC deadline when that is shorter.
  const deadlineMs = grpc ? grpcTimeoutMs(headers['grpc-timeout']) : undefined;
  const routeMs = route.timeoutMs ?? 0;
  const deadlineFirst = deadlineMs !== undefined && (routeMs === 0 || deadlineMs < routeMs);
  const timeoutMs = deadlineFirst ? deadlineMs : routeMs;

  let release: (() => void) | undefined;
  const done: Finish = (status, error) => {
    release?.();
    finish(status, error);
  };
  const withdraw = backend.limits.enter((r) => {
    release = r;
    if (stream.closed || stream.destroyed) return done(499);
    const pick = endpointStage(backend);
    if (pick instanceof HttpProxyError) return fail(pick, done);
    logged.upstream = endpointKey(pick.endpoint);
    const upstreamHeaders: OutgoingHttpHeaders = {
      ...upstreamRequestHeaders(withoutPseudo(headers), {
        direction: spec.direction,
        clientAddress: stream.session?.socket?.remoteAddress,
        targetPort: pick.endpoint.targetPort,
      }),
      ':method': method,
      ':scheme': 'http',
      ':authority': String(authority ?? target.host),
      ':path': target.path,
    };
    // `te: trailers` is the one TE value HTTP/2 allows, and gRPC servers expect it.
    if (headers.te === 'trailers') upstreamHeaders.te = 'trailers';
    delete upstreamHeaders.host;
    forwardStream(ctx, stream, upstreamHeaders, backend, pick, { timeoutMs, deadline: deadlineFirst, grpc }, (status, error) => {
      if (error) fail(error, done);
      else done(status);
    });
  });
  if (!withdraw) return fail(new UpstreamOverflowError(backend.cluster.name));
  if (!release) {
    stream.once('close', () => {
      if (release) return;
      withdraw();
      finish(499);
    });
  }
}

/**
 * Connect stage: one stream on the endpoint's session, bodies piped both ways. Calls `onEnd` once:
 * with an error (nothing answered yet; the caller answers it) or the status that went out.
 */
function forwardStream(
  ctx: H2ListenerContext,
  stream: ServerHttp2Stream,
  headers: OutgoingHttpHeaders,
  backend: ClusterSnapshot,
  pick: UpstreamPick,
  opts: { readonly timeoutMs: number; readonly deadline: boolean; readonly grpc: boolean },
  onEnd: Finish,
): void {
  const upstream = h2SessionsOf(ctx.pool).sessionFor(pick.endpoint, backend.cluster.connectTimeoutMs);
  let ended = false;
  let status = 0;
  let trailers: OutgoingHttpHeaders | undefined;
  const end = (result: CallResult, error?: HttpProxyError): void => {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    if (result.kind !== 'response' || !stream.headersSent) pick.done(result);
    onEnd(status, error);
  };

  let up: http2.ClientHttp2Stream;
  try {
    up = upstream.session.request(headers, { endStream: false });
  } catch (err) {
    return end({ kind: 'connect-failure' }, new UpstreamConnectError({ cause: err }));
  }
  up.on('error', () => undefined); // seen as 'close' with an rstCode

  const timer =
    opts.timeoutMs > 0
      ? setTimeout(() => {
          stream.unpipe(up);
          up.unpipe(stream);
          up.close(NGHTTP2_CANCEL);
          if (!stream.headersSent) {
            if (opts.deadline) {
              status = 200;
              respondDeadline(stream);
              return end({ kind: 'timeout' });
            }
            return end({ kind: 'timeout' }, new UpstreamTimeoutError());
          }
          if (opts.grpc) {
            trailers = deadlineTrailers();
            stream.end(); // 'wantTrailers' sends them
          } else {
            stream.close(NGHTTP2_CANCEL);
          }
          end({ kind: 'timeout' });
        }, opts.timeoutMs)
      : undefined;

  stream.pipe(up);
  up.once('response', (responseHeaders, flags) => {
    if (ended || stream.closed || stream.destroyed) return;
    status = Number(responseHeaders[':status']);
    pick.done({ kind: 'response', status });
    const out: OutgoingHttpHeaders = { ...downstreamResponseHeaders(withoutPseudo(responseHeaders)), ':status': status };
    if ((flags & NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-only (a gRPC error without a message): forwarded as it came, one HEADERS frame.
      stream.respond(out, { endStream: true });
      up.resume();
      return;
    }
    stream.respond(out, { waitForTrailers: true });
    up.pipe(stream);
  });
  up.on('trailers', (t) => {
    trailers = downstreamResponseHeaders(withoutPseudo(t));
  });
  stream.on('wantTrailers', () => stream.sendTrailers(trailers ?? {}));
  up.once('close', () => {
    if (ended) return;
    if (!stream.headersSent) {
      const error = upstream.connected() ? new UpstreamResetError() : new UpstreamConnectError();
      return end(upstream.connected() ? { kind: 'reset' } : { kind: 'connect-failure' }, stream.closed ? undefined : error);
    }
    // Reset after the response began: pass the reset on rather than end the response cleanly.
    if (up.rstCode !== undefined && up.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !stream.closed) stream.close(up.rstCode);
  });
  stream.once('close', () => {
    if (!up.closed) up.close(NGHTTP2_CANCEL);
    if (!stream.headersSent) return end({ kind: 'cancelled' });
    end({ kind: 'response', status });
  });
}

/** The one place an error becomes an HTTP/2 answer: a gRPC status for gRPC requests, else a status and text. */
function failStream(stream: ServerHttp2Stream, error: HttpProxyError, grpc: boolean, finish: Finish): void {
  if (stream.closed || stream.destroyed) return finish(499, error);
  if (stream.headersSent) {
    stream.close(NGHTTP2_INTERNAL_ERROR);
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

function respondDeadline(stream: ServerHttp2Stream): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...deadlineTrailers() }, { endStream: true });
}

function deadlineTrailers(): OutgoingHttpHeaders {
  return { 'grpc-status': String(GRPC.DEADLINE_EXCEEDED), 'grpc-message': 'deadline exceeded' };
}

/** HTTP status → gRPC status, as gRPC's own mapping (doc/http-grpc-status-mapping.md) and Envoy's local replies. */
export function grpcStatusOf(error: HttpProxyError): number {
  if (error instanceof UpstreamTimeoutError) return GRPC.DEADLINE_EXCEEDED;
  switch (error.status) {
    case 400:
      return GRPC.INTERNAL;
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

/** A copy without HTTP/2 pseudo-headers (`:method`, `:path`, `:status`, ...). */
function withoutPseudo(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) out[name] = value;
  return out;
}
