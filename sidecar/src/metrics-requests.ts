/**
 * Request, TCP and resilience metrics of the data path (issue 6; names fixed in
 * docs/metrics.md). Label sets are resolved once — per endpoint and cluster (outbound), per
 * connection (inbound) — and cached on those objects, so a request's end costs two map reads and
 * prom-client's increment. Series of a destination service that left the config are removed
 * (`retain`).
 *
 * Who is who:
 * - outbound: source = this sidecar's pod (workload: the control plane's name for it, in the
 *   inbound listener's metadata, else from the pod name; namespace); destination = the cluster's
 *   service host (`outbound|port|subset|host`) and the endpoint's `workload`/`namespace` metadata
 *   (the control plane's EDS, `filter_metadata["weft.dev"]`), `unknown` when absent.
 * - inbound: destination = this sidecar's pod, service `unknown` (the inbound cluster carries no
 *   service); source = the peer's SPIFFE ID (namespace; workload = its service account), or
 *   `unknown` over plaintext.
 */
import type { Socket } from 'node:net';
import { parseSpiffeId } from '@weft/api';
import type { Cluster, Endpoint, ListenerDirection, ProxyConfig } from './config';
import { peerSpiffeId } from './identity';
import type { Counter, Histogram, MetricsRegistry } from './metrics';
import { balancersOf } from './proxy-snapshot';
import type { UpstreamPool } from './upstream-pool';

export const UNKNOWN = 'unknown';

type RequestLabel = 'direction' | 'source_workload' | 'source_namespace' | 'destination_service' | 'destination_namespace' | 'destination_workload' | 'response_code' | 'grpc_status' | 'mtls';
type TcpLabel = 'direction' | 'destination_service' | 'mtls';
type BaseLabels = Omit<Record<RequestLabel, string>, 'response_code' | 'grpc_status'>;

/** This sidecar's pod, as the labels name it. */
export interface SelfLabels {
  readonly workload: string;
  readonly namespace: string;
}

/** One (code, gRPC status) of a series: its label object and the two metrics' resolved children. */
interface CodeSeries {
  readonly labels: Record<RequestLabel, string>;
  readonly count: { inc(by?: number): void };
  readonly duration: { observe(value: number): void };
}

/** One (direction, source, destination, mtls) combination: its children by code and gRPC status. */
export class RequestSeries {
  private readonly byCode = new Map<number, Map<string, CodeSeries>>();
  readonly tcp: Record<TcpLabel, string>;
  readonly service: { readonly destination_service: string };

  constructor(readonly base: BaseLabels) {
    this.tcp = { direction: base.direction, destination_service: base.destination_service, mtls: base.mtls };
    this.service = { destination_service: base.destination_service };
  }

  /** The children for `code` and `grpcStatus`, resolved on first use (then two map reads). */
  of(m: RequestMetrics, code: number, grpcStatus: string): CodeSeries {
    let byGrpc = this.byCode.get(code);
    if (!byGrpc) this.byCode.set(code, (byGrpc = new Map()));
    let c = byGrpc.get(grpcStatus);
    if (!c) {
      const labels = { ...this.base, response_code: String(code), grpc_status: grpcStatus };
      byGrpc.set(grpcStatus, (c = { labels, count: m.requests.child(labels), duration: m.duration.child(labels) }));
    }
    return c;
  }

  /** Every label object handed out (for removal). */
  *all(): Iterable<Record<RequestLabel, string>> {
    for (const byGrpc of this.byCode.values()) for (const c of byGrpc.values()) yield c.labels;
  }
}

export class RequestMetrics {
  readonly requests: Counter<RequestLabel>;
  readonly duration: Histogram<RequestLabel>;
  readonly tcpOpened: Counter<TcpLabel>;
  readonly tcpClosed_: Counter<TcpLabel>;
  readonly tcpSent: Counter<TcpLabel>;
  readonly tcpReceived: Counter<TcpLabel>;
  readonly retries: Counter<'destination_service'>;
  readonly timeouts: Counter<'destination_service'>;
  private outboundByEndpoint = new WeakMap<object, [RequestSeries?, RequestSeries?]>();
  private inboundBySocket = new WeakMap<object, RequestSeries>();
  /** Every series by its label values: one object per combination, found again by `retain`. */
  private readonly all = new Map<string, RequestSeries>();
  private unknownOutbound: RequestSeries;

  constructor(registry: MetricsRegistry, private self: SelfLabels, private readonly clusterStats: () => Iterable<ClusterStats> = () => []) {
    const req: RequestLabel[] = ['direction', 'source_workload', 'source_namespace', 'destination_service', 'destination_namespace', 'destination_workload', 'response_code', 'grpc_status', 'mtls'];
    const tcp: TcpLabel[] = ['direction', 'destination_service', 'mtls'];
    this.requests = registry.counter('weft_requests_total', 'HTTP and gRPC requests, counted when the response ends or the request fails (response_code 0: no response).', req);
    this.duration = registry.histogram('weft_request_duration_seconds', 'Time from the request head to the end of the response (or the failure), seconds.', req);
    this.tcpOpened = registry.counter('weft_tcp_connections_opened_total', 'TCP proxy connections opened to an upstream.', tcp);
    this.tcpClosed_ = registry.counter('weft_tcp_connections_closed_total', 'TCP proxy connections closed.', tcp);
    this.tcpSent = registry.counter('weft_tcp_sent_bytes_total', 'Bytes the TCP proxy sent upstream (from the client).', tcp);
    this.tcpReceived = registry.counter('weft_tcp_received_bytes_total', 'Bytes the TCP proxy received from upstream (to the client).', tcp);
    const svc = ['destination_service'] as const;
    this.retries = registry.counter('weft_retries_total', 'Retries sent (attempts after the first), HTTP and gRPC.', svc);
    this.timeouts = registry.counter('weft_request_timeouts_total', 'Requests that ended in an upstream timeout (route timeout, gRPC deadline, or the last try\'s per-try timeout): 504 or DEADLINE_EXCEEDED.', svc);
    registry.counterFrom('weft_outlier_ejections_total', 'Endpoints ejected by outlier detection (since the cluster appeared).', svc, () => this.perService('ejections'));
    registry.counterFrom('weft_pool_overflows_total', 'Requests and connections refused because a cluster was at its connection-pool limits (since the cluster appeared).', svc, () => this.perService('overflows'));
    this.unknownOutbound = this.unknownOutboundSeries();
  }

  private unknownOutboundSeries(): RequestSeries {
    return this.series({ direction: 'outbound', source_workload: this.self.workload, source_namespace: this.self.namespace, destination_service: UNKNOWN, destination_namespace: UNKNOWN, destination_workload: UNKNOWN, mtls: 'false' });
  }

  /** The series of an outbound request or connection to `endpoint` of `cluster` (either unknown: no destination). */
  outbound(cluster: Cluster | undefined, endpoint: Endpoint | undefined): RequestSeries {
    if (!cluster || !endpoint) return cluster ? this.outboundNoEndpoint(cluster) : this.unknownOutbound;
    let pair = this.outboundByEndpoint.get(endpoint);
    if (!pair) this.outboundByEndpoint.set(endpoint, (pair = []));
    const i = endpoint.tls ? 1 : 0;
    return (pair[i] ??= this.series({
      direction: 'outbound',
      source_workload: this.self.workload,
      source_namespace: this.self.namespace,
      destination_service: serviceOf(cluster.name),
      destination_namespace: endpoint.namespace ?? namespaceOfHost(serviceOf(cluster.name)),
      destination_workload: endpoint.workload ?? UNKNOWN,
      mtls: endpoint.tls ? 'true' : 'false',
    }));
  }

  /** The series of an inbound request or connection on `socket` (the peer's identity, read once). */
  inbound(socket: object): RequestSeries {
    let s = this.inboundBySocket.get(socket);
    if (!s) {
      const id = peerSpiffeId(socket);
      const peer = id ? parseSpiffeId(id) : undefined;
      const source = peer?.ok ? { workload: peer.value.serviceAccount, namespace: peer.value.namespace } : undefined;
      s = this.series({
        direction: 'inbound',
        source_workload: source?.workload ?? UNKNOWN,
        source_namespace: source?.namespace ?? UNKNOWN,
        destination_service: UNKNOWN,
        destination_namespace: this.self.namespace,
        destination_workload: this.self.workload,
        mtls: (socket as { encrypted?: boolean }).encrypted ? 'true' : 'false',
      });
      this.inboundBySocket.set(socket, s);
    }
    return s;
  }

  /** Either direction: the series for a request arriving on `socket`, before a destination is known. */
  start(direction: ListenerDirection, socket: Socket | object): RequestSeries {
    return direction === 'inbound' ? this.inbound(socket) : this.unknownOutbound;
  }

  /** A request ended: `code` the status the client got (0: none), `startedMs` from `performance.now()`. */
  record(series: RequestSeries, code: number, grpcStatus: string, startedMs: number): void {
    const c = series.of(this, code, grpcStatus);
    c.count.inc();
    c.duration.observe((performance.now() - startedMs) / 1000);
  }

  /** A TCP proxy connection closed: `sent` bytes from the client upstream, `received` back. */
  tcpClosed(series: RequestSeries, sent: number, received: number): void {
    this.tcpClosed_.inc(series.tcp);
    this.tcpSent.inc(series.tcp, sent);
    this.tcpReceived.inc(series.tcp, received);
  }

  /** Per destination service, the sum of a cluster statistic over its clusters (subsets). */
  private *perService(key: 'ejections' | 'overflows'): Iterable<readonly [{ destination_service: string }, number]> {
    const sums = new Map<string, number>();
    for (const c of this.clusterStats()) {
      const service = serviceOf(c.name);
      sums.set(service, (sums.get(service) ?? 0) + c[key]);
    }
    for (const [destination_service, n] of sums) yield [{ destination_service }, n];
  }

  /**
   * After a config is applied: drops the series of destination services no cluster names any
   * more (Prometheus then sees them end), so departed destinations do not accumulate.
   */
  retain(config: ProxyConfig): void {
    if (config.workload && config.workload !== this.self.workload) {
      // The control plane named this pod's workload (its `app` label): label sets resolved from
      // now on use it; series recorded under the old name stay (they counted real requests).
      this.self = { ...this.self, workload: config.workload };
      this.outboundByEndpoint = new WeakMap();
      this.inboundBySocket = new WeakMap();
      this.unknownOutbound = this.unknownOutboundSeries();
    }
    const live = new Set<string>([UNKNOWN]);
    for (const name of config.clusters.keys()) live.add(serviceOf(name));
    const gone = new Set<string>();
    for (const [key, s] of this.all) {
      const service = s.base.destination_service;
      if (live.has(service)) continue;
      for (const l of s.all()) {
        this.requests.remove(l);
        this.duration.remove(l);
      }
      for (const c of [this.tcpOpened, this.tcpClosed_, this.tcpSent, this.tcpReceived]) c.remove(s.tcp);
      gone.add(service);
      this.all.delete(key);
    }
    for (const service of gone) {
      for (const c of [this.retries, this.timeouts]) c.remove({ destination_service: service });
    }
  }

  private outboundNoEndpoint(cluster: Cluster): RequestSeries {
    return this.outbound(cluster, noEndpointOf(cluster));
  }

  private series(base: BaseLabels): RequestSeries {
    const key = Object.values(base).join('\u0000');
    let s = this.all.get(key);
    if (!s) this.all.set(key, (s = new RequestSeries(base)));
    return s;
  }
}

/** One cluster's resilience counters (cluster-balancer.ts state), read at scrape time. */
export interface ClusterStats {
  readonly name: string;
  readonly ejections: number;
  readonly overflows: number;
}

/** A stand-in endpoint per cluster, for requests that failed before one was picked. */
const noEndpoints = new WeakMap<Cluster, Endpoint>();
function noEndpointOf(cluster: Cluster): Endpoint {
  let e = noEndpoints.get(cluster);
  if (!e) noEndpoints.set(cluster, (e = { address: '', port: 0, weight: 0, healthy: false }));
  return e;
}

/** The service host of an Istio-style cluster name (`outbound|80|v1|reviews.shop.svc.cluster.local`), else `unknown`. */
export function serviceOf(clusterName: string): string {
  const parts = clusterName.split('|');
  return parts.length === 4 && parts[0] === 'outbound' && parts[3] ? parts[3] : UNKNOWN;
}

/** `reviews.shop.svc.cluster.local` → `shop`; `unknown` for other hosts. */
function namespaceOfHost(host: string): string {
  const labels = host.split('.');
  return labels.length >= 3 && labels[2] === 'svc' ? labels[1]! : UNKNOWN;
}

/** The workload of a pod named by its owner's convention (`reviews-v1-7f9c-x2x`→`reviews-v1-7f9c`): the name without its last `-suffix`. */
export function workloadOfPod(podName: string): string {
  const i = podName.lastIndexOf('-');
  return i > 0 ? podName.slice(0, i) : podName;
}

/** The gRPC status a client got on an HTTP/2 stream (trailers, or trailers-only headers), `''` if not gRPC. */
export function grpcStatusSent(stream: { readonly sentTrailers?: Record<string, unknown>; readonly sentHeaders?: Record<string, unknown> }, grpc: boolean): string {
  if (!grpc) return '';
  const s = stream.sentTrailers?.['grpc-status'] ?? stream.sentHeaders?.['grpc-status'];
  return s === undefined ? '' : String(s);
}

/**
 * One request's metrics: its series (refined once the destination is known) and start time. The
 * listeners create one per request when metrics are on and call `to()` after the endpoint pick.
 */
export class RequestRecord {
  private series: RequestSeries;
  private readonly started = performance.now();

  constructor(private readonly m: RequestMetrics, direction: ListenerDirection, socket: object) {
    this.series = m.start(direction, socket);
  }

  /** The forward made `n` retries (after the first try). */
  retried(n: number | undefined): void {
    if (n) this.m.retries.inc(this.series.service, n);
  }

  /** Outbound: the request goes to `endpoint` of `cluster` (undefined: none picked yet). Inbound: no-op. */
  to(cluster: Cluster, endpoint?: Endpoint): void {
    if (this.series.base.direction === 'outbound') this.series = this.m.outbound(cluster, endpoint);
  }

  /**
   * `finish`, recording first. The code is what the client got: the status sent (HTTP/1.1
   * `res`, or HTTP/2 `stream`'s sent headers), else the one given — except 499 (the client left
   * before any response), recorded as 0. `stream` also gives the gRPC status sent.
   */
  wrap<E>(finish: (status: number, error?: E) => void, out: { readonly res?: H1Sent; readonly stream?: H2Sent; readonly grpc?: boolean }): (status: number, error?: E) => void {
    return (status, error) => {
      const sent = out.stream ? out.stream.sentHeaders?.[':status'] : out.res?.headersSent ? out.res.statusCode : undefined;
      const code = sent !== undefined ? Number(sent) : status === 499 ? 0 : status;
      this.m.record(this.series, code, out.stream ? grpcStatusSent(out.stream, out.grpc === true) : '', this.started);
      if ((error as { code?: string } | undefined)?.code === 'UPSTREAM_TIMEOUT') this.m.timeouts.inc(this.series.service);
      finish(status, error);
    };
  }
}

type H1Sent = { readonly headersSent: boolean; readonly statusCode: number };
type H2Sent = { readonly sentTrailers?: Record<string, unknown>; readonly sentHeaders?: Record<string, unknown> };

/** What forward-tcp.ts is given: the metrics and its listener's direction. */
export interface TcpMetricsHook {
  readonly m: RequestMetrics;
  readonly direction: ListenerDirection;
}

/** A TCP proxy connection reached its upstream: counted, and its series returned for `tcpClosed`. */
export function tcpOpened(hook: TcpMetricsHook, downstream: object, cluster: Cluster, endpoint: Endpoint | undefined): RequestSeries {
  const series = hook.direction === 'inbound' ? hook.m.inbound(downstream) : hook.m.outbound(cluster, endpoint);
  hook.m.tcpOpened.inc(series.tcp);
  return series;
}

/** The resilience counters of every cluster of `config`, from `pool`'s cluster state. */
export function* clusterStats(config: ProxyConfig, pool: UpstreamPool): Iterable<ClusterStats> {
  const balancers = balancersOf(pool);
  for (const name of config.clusters.keys()) {
    const cb = balancers.get(name);
    if (cb) yield { name, ejections: cb.outlier?.stats().ejectionsTotal ?? 0, overflows: cb.limits.overflows };
  }
}
