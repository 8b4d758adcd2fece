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
 * `spec.tracing`). An unsampled request (trace-context.ts) is a few strings: its ids and the
 * headers for the next hop. A sampled one is this small record, encoded as OTLP protobuf when it
 * ends (trace-encode.ts) with what never changes per listener and per route/cluster encoded once.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpListener, Route } from './config';
import { peerSpiffeId } from './identity';
import type { RequestTarget } from './path-normalize';
import type { HttpProxyError } from './proxy-errors';
import { extractParent, newSpanId, newTraceId, propagationHeaders, PROPAGATION_HEADERS, sampleRoot } from './trace-context';
import { encodeAttributes, FLAGS_HAS_IS_REMOTE, FLAGS_IS_REMOTE, keyBytes, type ProtoWriter, SPAN, type AttrValue } from './trace-encode';
import { TRACE_STATS, type TraceLocal } from './trace-stats';
import type * as TracerModule from './trace-tracer';

export { PROPAGATION_HEADERS } from './trace-context';

let tracerModule: typeof TracerModule | undefined;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const load = (): typeof TracerModule => (tracerModule ??= require('./trace-tracer') as typeof TracerModule);

/**
 * Config time (a listener started or updated with `tracing`): makes the tracer and encodes the
 * listener's constant span attributes now, not on the first traced request. No-op without tracing.
 */
export function prepareTracing(spec: HttpListener): void {
  if (!spec.tracing) return;
  load().meshTracer(spec.tracing, TRACE_STATS.local);
  listenerConstants(spec);
}

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
// OTLP `Span.SpanKind` (the API's SpanKind + 1: OTLP numbers UNSPECIFIED as 0).
const OTLP_SERVER = 2;
const OTLP_CLIENT = 3;

const now = (): number => performance.timeOrigin + performance.now();

/** One request's span at this hop. On an unsampled request only the ids and headers are used. */
export class ProxySpan {
  private ended = false;
  private retries = 0;
  private requestId: string | undefined = undefined;
  private readonly start: number;
  private route: Route | undefined = undefined;
  private cluster = '';
  private endpoint = '';

  constructor(
    private readonly spec: HttpListener,
    private readonly facts: RequestFacts,
    readonly traceId: string,
    readonly spanId: string,
    private readonly parentSpanId: string | undefined,
    readonly sampled: boolean,
    private readonly traceState: string | undefined,
  ) {
    this.start = sampled ? now() : 0;
  }

  /** The trace-context headers for the next hop, pushed onto `out`. */
  private propagate(out: string[]): string[] {
    return propagationHeaders(out, this.traceId, this.spanId, this.sampled, this.traceState, this.facts.headers.b3 !== undefined);
  }

  /**
   * HTTP/1.1: the client's raw headers with the trace context replaced by this span's, and an
   * `x-request-id` when the client sent none (recorded on the span).
   */
  rawHeaders(raw: readonly string[]): string[] {
    const out: string[] = [];
    let requestId: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const c = name.charCodeAt(0) | 0x20; // every header this looks at starts with t, b or x
      if (c === 0x74 || c === 0x62 || c === 0x78) {
        const lower = name.toLowerCase();
        if (PROPAGATION_HEADERS.has(lower)) continue;
        if (lower === 'x-request-id') requestId ??= raw[i + 1];
      }
      out.push(name, raw[i + 1]!);
    }
    this.propagate(out);
    if (requestId === undefined) out.push('x-request-id', (requestId = randomUUID()));
    this.requestId = requestId;
    return out;
  }

  /** HTTP/2: the upstream headers (`upstreamH2Headers`) with the trace context replaced, in place. */
  h2Headers(out: OutgoingHttpHeaders): OutgoingHttpHeaders {
    for (const name of PROPAGATION_HEADERS) delete out[name];
    const next = this.propagate([]);
    for (let i = 0; i < next.length; i += 2) out[next[i]!] = next[i + 1]!;
    if (typeof out['x-request-id'] === 'string') this.requestId = out['x-request-id'];
    return out;
  }

  /** The route chosen, the endpoint of the (last) attempt, and how many retries were made. */
  upstream(route: Route, cluster: string, endpoint: string, retries?: number): void {
    if (retries !== undefined) this.retries = retries;
    this.route = route;
    this.cluster = cluster;
    this.endpoint = endpoint;
  }

  /** How many retries the request took (HTTP/2 reports it apart from the endpoint). */
  retried(retries: number): void {
    this.retries = retries;
  }

  /**
   * Ends the span with the status the client got (499: it went away first), the error that
   * decided it, and the gRPC status when there is one; a sampled span is queued for export.
   * Idempotent.
   */
  end(status: number, error?: HttpProxyError, grpcStatus?: number): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.sampled) return;
    const tracer = load().meshTracer(this.spec.tracing!, TRACE_STATS.local);
    const w = tracer.exporter.writer();
    if (!w) return; // queue full (counted) or tracer stopped
    const at = w.beginLength(2); // ScopeSpans.spans
    this.encode(w, status, error, grpcStatus);
    w.endLength(at);
    tracer.exporter.added();
  }

  /** The OTLP `Span` message. */
  private encode(w: ProtoWriter, status: number, error: HttpProxyError | undefined, grpcStatus: number | undefined): void {
    const { spec, facts } = this;
    const client = spec.direction === 'outbound';
    const host = facts.target.host;
    const colon = host.lastIndexOf(':');
    const hostname = colon > 0 && !host.endsWith(']') ? host.slice(0, colon) : host;
    const rpc = facts.grpc ? /^\/([^/]+)\/([^/?]+)/.exec(facts.target.path) : null;

    w.hex(SPAN.traceId, this.traceId);
    w.hex(SPAN.spanId, this.spanId);
    if (this.traceState !== undefined) w.string(SPAN.traceState, this.traceState);
    if (this.parentSpanId !== undefined) w.hex(SPAN.parentSpanId, this.parentSpanId);
    w.string(SPAN.name, rpc ? `${rpc[1]}/${rpc[2]}` : `${facts.method} ${hostname}`);
    w.tag(SPAN.kind, 0);
    w.varint(client ? OTLP_CLIENT : OTLP_SERVER);
    w.timeNanos(SPAN.start, this.start);
    w.timeNanos(SPAN.end, now());

    // Attributes: the listener's, route's, cluster's and endpoint's (constant) pre-encoded, then this request's.
    const A = SPAN.attributes;
    const fixed = constantAttributes(spec, this.route, this.cluster, this.endpoint);
    w.raw(fixed.bytes);
    const q = facts.target.path.indexOf('?');
    w.attr(A, K.method, facts.method);
    w.attr(A, K.path, q < 0 ? facts.target.path : facts.target.path.slice(0, q));
    w.attr(A, K.serverAddress, hostname);
    if (colon > 0 && hostname !== host) w.attr(A, K.serverPort, Number(host.slice(colon + 1)));
    w.attr(A, K.protocolVersion, facts.protocol);
    const ua = facts.headers['user-agent'];
    if (typeof ua === 'string') w.attr(A, K.userAgent, ua);
    const requestId = this.requestId ?? facts.headers['x-request-id'];
    if (typeof requestId === 'string') w.attr(A, K.requestId, requestId);
    if (rpc) {
      w.attr(A, K.rpcSystem, 'grpc');
      w.attr(A, K.rpcService, rpc[1]!);
      w.attr(A, K.rpcMethod, rpc[2]!);
    }
    if (client && !fixed.destination) {
      w.attr(A, K.destService, hostname);
      w.attr(A, K.destNamespace, hostNamespace(hostname));
    }
    if (!client) {
      const peer = facts.socket ? peerSpiffeId(facts.socket) : undefined;
      const { namespace, account } = spiffeParts(peer);
      w.attr(A, K.clientAddress, facts.socket?.remoteAddress ?? '');
      w.attr(A, K.sourceWorkload, account); // the caller's service account: the best name mTLS gives
      w.attr(A, K.sourceNamespace, namespace);
      if (peer) w.attr(A, K.sourceIdentity, peer);
    }
    w.attr(A, K.retries, this.retries);
    if (status > 0 && status !== 499) w.attr(A, K.status, status);
    let failed = status >= 500 || (client && status >= 400 && status !== 499);
    if (grpcStatus !== undefined) {
      w.attr(A, K.grpcStatus, grpcStatus);
      if (client ? grpcStatus !== 0 : GRPC_SERVER_ERRORS.has(grpcStatus)) failed = true;
    }
    if (error) w.attr(A, K.errorType, error.code);
    else if (status === 499) w.attr(A, K.errorType, 'client_closed');
    else if (failed) w.attr(A, K.errorType, String(status));

    if (failed || error) {
      // Status { message (2), code (3) = STATUS_CODE_ERROR }
      const message = error?.message;
      const n = message === undefined ? 0 : Buffer.byteLength(message);
      w.header(SPAN.status, 2 + (message === undefined ? 0 : 1 + varintLen(n) + n));
      if (message !== undefined) w.string(2, message);
      w.tag(3, 0);
      w.varint(2);
    }
    w.fixed32(SPAN.flags, 1 | FLAGS_HAS_IS_REMOTE | (this.parentSpanId !== undefined ? FLAGS_IS_REMOTE : 0));
  }
}

const varintLen = (v: number): number => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : 4);

/** Attribute keys, encoded once. */
const K = {
  method: keyBytes('http.request.method'),
  path: keyBytes('url.path'),
  serverAddress: keyBytes('server.address'),
  serverPort: keyBytes('server.port'),
  protocolVersion: keyBytes('network.protocol.version'),
  userAgent: keyBytes('user_agent.original'),
  requestId: keyBytes('weft.request_id'),
  rpcSystem: keyBytes('rpc.system'),
  rpcService: keyBytes('rpc.service'),
  rpcMethod: keyBytes('rpc.method'),
  destService: keyBytes('weft.destination.service'),
  destNamespace: keyBytes('weft.destination.namespace'),
  clientAddress: keyBytes('client.address'),
  sourceWorkload: keyBytes('weft.source.workload'),
  sourceNamespace: keyBytes('weft.source.namespace'),
  sourceIdentity: keyBytes('weft.source.identity'),
  retries: keyBytes('weft.retry.count'),
  status: keyBytes('http.response.status_code'),
  grpcStatus: keyBytes('rpc.grpc.status_code'),
  errorType: keyBytes('error.type'),
};

interface Constant {
  readonly bytes: Buffer;
  /** Whether they carry the destination service (a client span to an `outbound|…|host` cluster). */
  readonly destination: boolean;
}
interface ListenerConstants {
  readonly local: TraceLocal;
  readonly unrouted: Constant;
  /** By route object, then cluster, then endpoint. */
  readonly routes: WeakMap<Route, Map<string, Map<string, Constant>>>;
}
const byListener = new WeakMap<HttpListener, ListenerConstants>();
/** Endpoints kept per (route, cluster); beyond, that cluster's are encoded again from scratch. */
const MAX_ENDPOINTS_PER_CLUSTER = 1024;

/** A listener's constant span attributes, encoded once per listener config (and this sidecar's identity). */
function listenerConstants(spec: HttpListener): ListenerConstants {
  const local = TRACE_STATS.local;
  const known = byListener.get(spec);
  if (known && known.local === local) return known;
  const client = spec.direction === 'outbound';
  const own: Record<string, AttrValue | undefined> = {
    'url.scheme': 'http',
    'network.protocol.name': 'http',
    'weft.direction': spec.direction,
    'weft.listener': spec.name,
    [client ? 'weft.source.workload' : 'weft.destination.workload']: spec.tracing!.serviceName,
    [client ? 'weft.source.namespace' : 'weft.destination.namespace']: local.namespace,
    [client ? 'weft.source.identity' : 'weft.destination.identity']: local.spiffeId,
  };
  const c: ListenerConstants = { local, unrouted: { bytes: encodeAttributes(own), destination: false }, routes: new WeakMap() };
  byListener.set(spec, c);
  return c;
}

/**
 * The constant attributes of a span: the listener's, and once routed the route's, cluster's and
 * endpoint's, encoded together once per (listener, route object, cluster, endpoint).
 */
function constantAttributes(spec: HttpListener, route: Route | undefined, cluster: string, endpoint: string): Constant {
  const c = listenerConstants(spec);
  if (!route) return c.unrouted;
  let byCluster = c.routes.get(route);
  if (!byCluster) c.routes.set(route, (byCluster = new Map()));
  let byEndpoint = byCluster.get(cluster);
  if (!byEndpoint || byEndpoint.size >= MAX_ENDPOINTS_PER_CLUSTER) byCluster.set(cluster, (byEndpoint = new Map()));
  let k = byEndpoint.get(endpoint);
  if (!k) {
    const service = spec.direction === 'outbound' ? clusterHost(cluster) : undefined;
    const colon = endpoint.lastIndexOf(':');
    const routed = encodeAttributes({
      'weft.route.name': route.name,
      'weft.cluster': cluster,
      'weft.destination.service': service,
      'weft.destination.namespace': service && hostNamespace(service),
      'weft.upstream.address': endpoint,
      'network.peer.address': endpoint.slice(0, colon),
      'network.peer.port': Number(endpoint.slice(colon + 1)),
    });
    byEndpoint.set(endpoint, (k = { bytes: Buffer.concat([c.unrouted.bytes, routed]), destination: service !== undefined }));
  }
  return k;
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

const SPAN_OF = Symbol('weft.span');

/**
 * Starts this hop's span for a request on a listener with tracing (`spec.tracing` must be set;
 * callers check it, so untraced listeners pay nothing). Head sampling: a parent's decision is
 * kept; a new trace is sampled by its id and the configured ratio (trace-context.ts). `key` (the
 * request object) lets later stages find the span again with `traceOf`.
 */
export function startProxySpan(spec: HttpListener, r: RequestFacts, key?: object): ProxySpan {
  const parent = extractParent(r.headers);
  const traceId = parent ? parent.traceId : newTraceId();
  const sampled = parent ? parent.sampled : sampleRoot(traceId, spec.tracing!.samplingRatio);
  const s = new ProxySpan(spec, r, traceId, newSpanId(), parent?.spanId, sampled, parent?.traceState);
  if (key) (key as { [SPAN_OF]?: ProxySpan })[SPAN_OF] = s;
  return s;
}

/** The span `startProxySpan` started for this request, if any. */
export function traceOf(key: object): ProxySpan | undefined {
  return (key as { [SPAN_OF]?: ProxySpan })[SPAN_OF];
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
  return tracerModule ? tracerModule.shutdownTracers(timeoutMs) : Promise.resolve();
}
