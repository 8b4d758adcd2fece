/**
 * Spans at the proxy hop (docs/tracing.md): the calls the listeners make. One client span per
 * request at the caller's sidecar (outbound listener), one server span at the callee's (inbound),
 * with OpenTelemetry HTTP and RPC semantic-convention attributes and Weft's mesh attributes.
 *
 * Propagation: the request's W3C `traceparent`/`tracestate` (else B3, single or multi) is the
 * parent; what goes on to the next hop is replaced by this hop's span context, as W3C and B3
 * multi-header (and the B3 single header when the request used it). `x-request-id` is kept (set
 * when absent, as without tracing) and recorded on the span.
 *
 * Cost: a listener without `tracing` never calls in here (`startProxySpan` is behind
 * `spec.tracing`), so neither this module's work nor the OpenTelemetry SDK (trace-tracer.ts,
 * required on first use) touch an untraced sidecar. An unsampled request gets a non-recording span:
 * its context is propagated, no attribute is built, nothing is exported.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Attributes, Span } from '@opentelemetry/api';
import type { HttpListener, Route } from './config';
import { peerSpiffeId } from './identity';
import type { RequestTarget } from './path-normalize';
import type { HttpProxyError } from './proxy-errors';
import { TRACE_STATS } from './trace-stats';
import type * as TracerModule from './trace-tracer';

let otel: typeof TracerModule | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (): typeof TracerModule => (otel ??= require('./trace-tracer') as typeof TracerModule);

/**
 * Config time (a listener started or updated with `tracing`): loads the SDK and makes the tracer
 * now, so the first traced request does not pay for it (~100 ms of module loading). No-op without
 * tracing: an untraced sidecar never loads the SDK.
 */
export function prepareTracing(spec: HttpListener): void {
  if (spec.tracing) load().meshTracer(spec.tracing, TRACE_STATS.local);
}

/** Trace-context headers this hop replaces with its own span's (never passed through as received). */
export const PROPAGATION_HEADERS: ReadonlySet<string> = new Set([
  'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
]);

/** What a listener knows of a request when it starts the span. */
export interface RequestFacts {
  readonly method: string;
  readonly target: RequestTarget;
  readonly headers: IncomingHttpHeaders;
  /** The downstream connection (its peer certificate names an inbound caller). */
  readonly socket: Socket | undefined;
  readonly protocol: '1.1' | '2';
  readonly grpc: boolean;
}

// gRPC status codes a server span reports as errors (OTel RPC semantic conventions).
const GRPC_SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

/** One request's span at this hop. Methods are cheap no-ops on a non-recording (unsampled) span. */
export class ProxySpan {
  private ended = false;
  private retries = 0;

  constructor(
    private readonly span: Span,
    /** The headers for the next hop (this span's context). */
    private readonly propagate: Readonly<Record<string, string>>,
    private readonly client: boolean,
  ) {}

  /**
   * HTTP/1.1: the client's raw headers with the trace context replaced by this span's, and an
   * `x-request-id` when the client sent none (recorded on the span).
   */
  rawHeaders(raw: readonly string[]): string[] {
    const out: string[] = [];
    let requestId: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (PROPAGATION_HEADERS.has(lower)) continue;
      if (lower === 'x-request-id') requestId ??= raw[i + 1];
      out.push(raw[i]!, raw[i + 1]!);
    }
    for (const name in this.propagate) out.push(name, this.propagate[name]!);
    if (requestId === undefined) out.push('x-request-id', (requestId = randomUUID()));
    if (this.span.isRecording()) this.span.setAttribute('weft.request_id', requestId);
    return out;
  }

  /** HTTP/2: the upstream headers (`upstreamH2Headers`) with the trace context replaced, in place. */
  h2Headers(out: OutgoingHttpHeaders): OutgoingHttpHeaders {
    for (const name of PROPAGATION_HEADERS) delete out[name];
    Object.assign(out, this.propagate);
    if (this.span.isRecording() && typeof out['x-request-id'] === 'string') this.span.setAttribute('weft.request_id', out['x-request-id']);
    return out;
  }

  /** The route chosen, the endpoint of the (last) attempt, and how many retries were made. */
  upstream(route: Route, cluster: string, endpoint: string, retries?: number): void {
    if (retries !== undefined) this.retries = retries;
    if (!this.span.isRecording()) return;
    const colon = endpoint.lastIndexOf(':');
    const attrs: Attributes = {
      'weft.route.name': route.name,
      'weft.cluster': cluster,
      'weft.upstream.address': endpoint,
      'network.peer.address': endpoint.slice(0, colon),
      'network.peer.port': Number(endpoint.slice(colon + 1)),
    };
    if (this.client) {
      const service = clusterHost(cluster);
      if (service) {
        attrs['weft.destination.service'] = service;
        attrs['weft.destination.namespace'] = hostNamespace(service);
      }
    }
    this.span.setAttributes(attrs);
  }

  /** How many retries the request took (HTTP/2 reports it apart from the endpoint). */
  retried(retries: number): void {
    this.retries = retries;
  }

  /**
   * Ends the span with the status the client got (499: it went away first), the error that
   * decided it, and the gRPC status when there is one. Idempotent.
   */
  end(status: number, error?: HttpProxyError, grpcStatus?: number): void {
    if (this.ended) return;
    this.ended = true;
    const span = this.span;
    if (span.isRecording()) {
      const attrs: Attributes = { 'weft.retry.count': this.retries };
      if (status > 0 && status !== 499) attrs['http.response.status_code'] = status;
      let failed = status >= 500 || (this.client && status >= 400 && status !== 499);
      if (grpcStatus !== undefined) {
        attrs['rpc.grpc.status_code'] = grpcStatus;
        if (this.client ? grpcStatus !== 0 : GRPC_SERVER_ERRORS.has(grpcStatus)) failed = true;
      }
      if (error) attrs['error.type'] = error.code;
      else if (status === 499) attrs['error.type'] = 'client_closed';
      else if (failed) attrs['error.type'] = String(status);
      span.setAttributes(attrs);
      if (failed || error) span.setStatus({ code: 2 /* SpanStatusCode.ERROR */, ...(error ? { message: error.message } : {}) });
    }
    span.end();
  }
}

/** `outbound|80|v1|reviews.shop.svc.cluster.local` → the Service host; `undefined` for other names. */
function clusterHost(cluster: string): string | undefined {
  if (!cluster.startsWith('outbound|')) return undefined;
  return cluster.slice(cluster.lastIndexOf('|') + 1) || undefined;
}

/** `reviews.shop.svc.cluster.local` → `shop`; `unknown` for other hosts. */
function hostNamespace(host: string): string {
  const parts = host.split('.');
  return parts.length >= 3 && parts[2] === 'svc' ? parts[1]! : 'unknown';
}

/** The SPIFFE ID's namespace and service account (`unknown` for plaintext or another form). */
function spiffeParts(id: string | undefined): { namespace: string; account: string } {
  const m = id ? /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id) : null;
  return m ? { namespace: m[1]!, account: m[2]! } : { namespace: 'unknown', account: 'unknown' };
}

const byRequest = new WeakMap<object, ProxySpan>();

/**
 * Starts this hop's span for a request on a listener with tracing (`spec.tracing` must be set;
 * callers check it, so untraced listeners pay nothing). `key` (the request object) lets later
 * stages find the span again with `traceOf`.
 */
export function startProxySpan(spec: HttpListener, r: RequestFacts, key?: object): ProxySpan {
  const config = spec.tracing!;
  const tracer = load().meshTracer(config, TRACE_STATS.local);
  const client = spec.direction === 'outbound';
  const host = r.target.host;
  const colon = host.lastIndexOf(':');
  const hostname = colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host;
  const rpc = r.grpc ? /^\/([^/]+)\/([^/?]+)/.exec(r.target.path) : null;
  const name = rpc ? `${rpc[1]}/${rpc[2]}` : `${r.method} ${hostname}`;
  const span = tracer.start(name, client ? load().SpanKind.CLIENT : load().SpanKind.SERVER, tracer.extract(r.headers), () => {
    const local = TRACE_STATS.local;
    const q = r.target.path.indexOf('?');
    const attrs: Attributes = {
      'http.request.method': r.method,
      'url.path': q < 0 ? r.target.path : r.target.path.slice(0, q),
      'url.scheme': 'http',
      'server.address': hostname,
      'network.protocol.name': 'http',
      'network.protocol.version': r.protocol,
      'weft.direction': spec.direction,
      'weft.listener': spec.name,
    };
    if (colon > 0 && hostname !== host) attrs['server.port'] = Number(host.slice(colon + 1));
    const ua = r.headers['user-agent'];
    if (typeof ua === 'string') attrs['user_agent.original'] = ua;
    const requestId = r.headers['x-request-id'];
    if (typeof requestId === 'string') attrs['weft.request_id'] = requestId;
    if (rpc) {
      attrs['rpc.system'] = 'grpc';
      attrs['rpc.service'] = rpc[1];
      attrs['rpc.method'] = rpc[2];
    }
    if (client) {
      attrs['weft.source.workload'] = config.serviceName;
      attrs['weft.source.namespace'] = local.namespace;
      if (local.spiffeId) attrs['weft.source.identity'] = local.spiffeId;
      attrs['weft.destination.service'] = hostname;
      attrs['weft.destination.namespace'] = hostNamespace(hostname);
    } else {
      const peer = r.socket ? peerSpiffeId(r.socket) : undefined;
      const { namespace, account } = spiffeParts(peer);
      attrs['client.address'] = r.socket?.remoteAddress ?? '';
      attrs['weft.source.workload'] = account; // the caller's service account: the best name mTLS gives
      attrs['weft.source.namespace'] = namespace;
      if (peer) attrs['weft.source.identity'] = peer;
      attrs['weft.destination.workload'] = config.serviceName;
      attrs['weft.destination.namespace'] = local.namespace;
      if (local.spiffeId) attrs['weft.destination.identity'] = local.spiffeId;
    }
    return attrs;
  });
  const s = new ProxySpan(span, tracer.inject(span, r.headers.b3 !== undefined), client);
  if (key) byRequest.set(key, s);
  return s;
}

/** The span `startProxySpan` started for this request, if any. */
export function traceOf(key: object): ProxySpan | undefined {
  return byRequest.get(key);
}

/** Called once when a request's life ends, with the status the client got (as the listeners' `Finish`). */
type Finish = (status: number, error?: HttpProxyError) => void;

/**
 * HTTP/1.1 listener hook: starts the span of `req` (found again with `traceOf(req)`) and returns
 * `finish` extended to end it. Call only when `spec.tracing` is set.
 */
export function traceHttp1(spec: HttpListener, req: { readonly method?: string | undefined; readonly headers: IncomingHttpHeaders; readonly socket: Socket }, target: RequestTarget, finish: Finish): Finish {
  const span = startProxySpan(spec, { method: req.method ?? 'GET', target, headers: req.headers, socket: req.socket, protocol: '1.1', grpc: false }, req);
  return (status, error) => {
    span.end(status, error);
    finish(status, error);
  };
}

/**
 * HTTP/2 listener hook: starts the stream's span and returns it with `finish` extended to end it
 * (with the gRPC status the client was sent, from trailers or a trailers-only answer). Call only
 * when `spec.tracing` is set.
 */
export function traceH2(
  spec: HttpListener,
  stream: { readonly sentHeaders?: OutgoingHttpHeaders; readonly sentTrailers?: OutgoingHttpHeaders; readonly session?: { readonly socket?: unknown } | undefined },
  facts: Omit<RequestFacts, 'socket' | 'protocol'>,
  finish: Finish,
): { span: ProxySpan; finish: Finish } {
  const span = startProxySpan(spec, { ...facts, socket: stream.session?.socket as Socket | undefined, protocol: '2' });
  return {
    span,
    finish: (status, error) => {
      const grpc = facts.grpc ? (stream.sentTrailers?.['grpc-status'] ?? stream.sentHeaders?.['grpc-status']) : undefined;
      span.end(status, error, grpc === undefined ? undefined : Number(grpc));
      finish(status, error);
    },
  };
}

/** Sidecar shutdown: a last export of queued spans (bounded), when tracing was ever used. */
export function stopTracing(timeoutMs?: number): Promise<void> {
  return otel ? otel.shutdownTracers(timeoutMs) : Promise.resolve();
}
