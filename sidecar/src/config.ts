/**
 * The sidecar's validated, immutable configuration. xDS resources become these values once, in
 * `config-from-xds.ts`; the data path reads only these (STYLE.md: the data path never touches a
 * raw proto). A `ProxyConfig` is replaced as a whole, never mutated.
 */
import type { Authz } from './authz-engine';
import type { TracingConfig } from './trace-config';

export type PathMatcher =
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'exact'; readonly value: string }
  /** Full-match semantics, as Envoy's `safe_regex` (compiled as `^(?:re)$`). */
  | { readonly kind: 'regex'; readonly value: string; readonly re: RegExp };

export type HeaderMatcher =
  | { readonly name: string; readonly kind: 'exact' | 'prefix'; readonly value: string; readonly invert: boolean }
  | { readonly name: string; readonly kind: 'regex'; readonly value: string; readonly re: RegExp; readonly invert: boolean }
  | { readonly name: string; readonly kind: 'present'; readonly present: boolean; readonly invert: boolean };

export interface RouteMatch {
  readonly path: PathMatcher;
  /** Header names are lower case; `:method` and `:authority` are matched like headers. */
  readonly headers: readonly HeaderMatcher[];
}

export interface WeightedCluster {
  readonly cluster: string;
  readonly weight: number;
}

export type RouteAction =
  | { readonly kind: 'cluster'; readonly cluster: string }
  | { readonly kind: 'weighted'; readonly clusters: readonly WeightedCluster[]; readonly totalWeight: number }
  | { readonly kind: 'direct-response'; readonly status: number; readonly body: string };

export interface Route {
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteAction;
  /** Whole-request timeout, retries and backoff included; 0 or absent means none. */
  readonly timeoutMs?: number;
  /** Absent: no retries (Envoy's meaning of a route without `retry_policy`). */
  readonly retry?: RetryPolicy;
  /** The fault filter's per-route config; applied only on listeners that list the fault filter. */
  readonly fault?: FaultPolicy;
  /** `request_mirror_policies`: fire-and-forget copies (mirror-http.ts). */
  readonly mirrors?: readonly MirrorPolicy[];
}

/** Envoy's `HTTPFault`, the parts the sidecar enforces (fault-inject.ts): delay, then abort. */
export interface FaultPolicy {
  /** `fraction` of requests (0–1) wait `fixedDelayMs` before going upstream. */
  readonly delay?: { readonly fixedDelayMs: number; readonly fraction: number };
  /** `fraction` of requests (0–1) are answered `httpStatus` and never reach an upstream. */
  readonly abort?: { readonly httpStatus: number; readonly fraction: number };
}

/** One `RequestMirrorPolicy`: a copy of `fraction` (0–1) of the route's requests goes to `cluster`. */
export interface MirrorPolicy {
  readonly cluster: string;
  readonly fraction: number;
}

/**
 * What the sidecar can retry on (Envoy's `retry_on` names). `refused-stream` means nothing on
 * HTTP/1; gRPC conditions match a `grpc-status` in response headers (trailers-only) and, on
 * HTTP/2, in trailers that arrive before any DATA frame (forward-h2.ts).
 */
export type RetryCondition =
  | '5xx' | 'gateway-error' | 'reset' | 'connect-failure' | 'retriable-status-codes' | 'refused-stream'
  | 'cancelled' | 'deadline-exceeded' | 'internal' | 'resource-exhausted' | 'unavailable';

/** A route's retry policy, validated once (retry-policy.ts decides per attempt). */
export interface RetryPolicy {
  readonly retryOn: ReadonlySet<RetryCondition>;
  /** Retries after the first attempt (Envoy `num_retries`, Istio `attempts`). */
  readonly numRetries: number;
  /** Bounds each attempt up to the end of its response; 0 means none (only the route timeout). */
  readonly perTryTimeoutMs: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  /** gRPC status codes retried (from the gRPC conditions in `retryOn`). */
  readonly grpcStatuses: ReadonlySet<number>;
  /** Fully jittered exponential backoff: retry n waits a random time below min(base × 2^(n-1), max). */
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
  /** A request body larger than this is not kept for replay, so the request is not retried. */
  readonly bufferLimitBytes: number;
  /** Retry non-idempotent methods (POST, PATCH, ...) even after the upstream may have read them. */
  readonly retryNonIdempotent: boolean;
  /** Shared by every route of one destination (keyed by `key`); see retry-budget.ts. */
  readonly budget: RetryBudgetSpec;
}

export interface RetryBudgetSpec {
  /** Which budget this route draws on: its route table and virtual host. */
  readonly key: string;
  /** Retries may add at most this share (0–100) of the requests of the last 10 s ... */
  readonly percent: number;
  /** ... plus this many per second. */
  readonly minRetriesPerSecond: number;
}

export interface VirtualHost {
  readonly name: string;
  /** Lower case; `*` wildcards allowed at the start or end, as Envoy's. */
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
}

export interface RouteTable {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
}

export type ListenerDirection = 'outbound' | 'inbound';

export interface HttpListener {
  readonly name: string;
  readonly direction: ListenerDirection;
  readonly address: string;
  readonly port: number;
  /** The HTTP connection manager lists the fault filter: routes' fault configs apply. */
  readonly faultFilter?: boolean;
  /** RBAC filters (`envoy.filters.http.rbac`), in order; absent: no authorization (authz-engine.ts). */
  readonly authz?: Authz;
  /** OpenTelemetry tracing from the HCM's `tracing` (trace-config.ts); absent: no spans, headers untouched. */
  readonly tracing?: TracingConfig;
  /** Routes come from RDS by name, or inline in the listener. */
  readonly routes: { readonly kind: 'rds'; readonly name: string } | { readonly kind: 'inline'; readonly table: RouteTable };
  /**
   * Filter chains beside the HTTP connection manager (TCP proxies, matches, listener filters).
   * Absent: every connection is HTTP (HTTP/1 or h2c by the preface), as a listener with a single
   * unconditional HTTP chain.
   */
  readonly connections?: ConnectionDispatch;
}

/**
 * Envoy's `FilterChainMatch`, the fields this sidecar implements (docs/protocols.md, "Filter
 * chains"). An absent field matches anything.
 */
export interface ChainMatch {
  /** The connection's destination port: original destination (capture), PROXY header, else the listener's port. */
  readonly destinationPort?: number;
  /** Destination address ranges (`prefix_ranges`), IPv4 or IPv6 CIDRs. */
  readonly prefixRanges?: readonly { readonly address: string; readonly prefixLen: number }[];
  /** `tls` (a TLS ClientHello was seen) or `raw_buffer`. */
  readonly transportProtocol?: string;
  /** Detected: `http/1.1` (also `http/1.0`) or `h2c`; none for TLS or opaque bytes. */
  readonly applicationProtocols?: readonly string[];
}

/** Envoy's `envoy.filters.network.tcp_proxy`: bytes both ways between the client and one upstream. */
export interface TcpProxy {
  readonly statPrefix: string;
  readonly target: { readonly kind: 'cluster'; readonly cluster: string } | { readonly kind: 'weighted'; readonly clusters: readonly WeightedCluster[]; readonly totalWeight: number };
  /** No byte either way for this long closes both sides; 0: never (Envoy's default is 1 h). */
  readonly idleTimeoutMs: number;
}

export interface FilterChain {
  readonly name: string;
  readonly match: ChainMatch;
  /**
   * `http`: the listener's HTTP connection manager (one per listener); `tcp`: a TCP proxy;
   * `terminate-tls`: a chain with a `DownstreamTlsContext` and no filters: mesh mTLS is terminated
   * and the decrypted stream is dispatched again on the same listener, as transport
   * `MESH_MTLS_TRANSPORT` (listener-dispatch.ts, docs/protocols.md "mTLS").
   */
  readonly filter: { readonly kind: 'http' } | { readonly kind: 'tcp'; readonly proxy: TcpProxy; readonly authz?: Authz } | { readonly kind: 'terminate-tls'; readonly tls: DownstreamTls };
}

/** The `transport_protocol` of a stream decrypted by a `terminate-tls` chain (a Weft value). */
export const MESH_MTLS_TRANSPORT = 'weft-mtls';
/** The ALPN protocol a sidecar offers on mesh mTLS connections: how they are told from an app's own TLS. */
export const MESH_MTLS_ALPN = 'weft-mtls';

/** Envoy's `DownstreamTlsContext`, the parts this sidecar implements (SDS names, not inline keys). */
export interface DownstreamTls {
  /** SDS name of the certificate (Istio's `default`: the workload certificate). */
  readonly certificate: string;
  /** SDS name of the validation context (Istio's `ROOTCA`: `ProxyConfig.trustBundles`). */
  readonly validation: string;
  readonly requireClientCertificate: boolean;
  /** ALPN the server selects from, in its order of preference. */
  readonly alpn: readonly string[];
}

/** Envoy's `UpstreamTlsContext`, the parts this sidecar implements. */
export interface UpstreamTls {
  readonly certificate: string;
  readonly validation: string;
  /** SNI sent; absent: none. */
  readonly sni?: string;
  /** `match_typed_subject_alt_names` (URI, exact): the server's certificate must carry one of these. */
  readonly expectedSans: readonly string[];
  /** ALPN offered (HTTP/2 sessions offer `h2`, HTTP/1 `http/1.1`, TCP neither, each beside these). */
  readonly alpn: readonly string[];
}

/** How a listener sorts accepted connections onto its filter chains (listener-dispatch.ts). */
export interface ConnectionDispatch {
  /** In order; Envoy's matching picks the most specific, not the first. */
  readonly chains: readonly FilterChain[];
  /** `default_filter_chain`: used when no chain matches; absent: the connection is closed. */
  readonly defaultChain?: FilterChain;
  /** Listener filter `original_dst`: in capture mode the destination is SO_ORIGINAL_DST's. */
  readonly originalDst: boolean;
  /**
   * Listener filter `proxy_protocol` (with `allow_requests_without_proxy_protocol`): a PROXY v2
   * header, when present, gives the destination port. Never honoured in capture mode.
   */
  readonly proxyProtocol: boolean;
  /** `listener_filters_timeout`: how long protocol detection may wait for the client's first bytes. */
  readonly detectTimeoutMs: number;
  /** `continue_on_listener_filters_timeout`: a silent client is then opaque TCP, not closed. */
  readonly fallbackOnTimeout: boolean;
}

/** A listener with TCP proxies only: per-upstream opaque ports (docs/protocols.md). */
export interface TcpListener {
  readonly name: string;
  readonly direction: ListenerDirection;
  readonly address: string;
  readonly port: number;
  readonly connections: ConnectionDispatch;
}

/** `PEAK_EWMA` comes from `load_balancing_policy` (docs/configuration.md, "Load balancing"). */
export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PEAK_EWMA';

/** Envoy's `outlier_detection`, the parts the sidecar enforces (outlier-detector.ts). */
export interface OutlierDetection {
  /** Consecutive 5xx (and local failures) that eject; 0: this detector is off. */
  readonly consecutive5xx: number;
  /** Consecutive 502/503/504 (and local failures) that eject; 0: this detector is off. */
  readonly consecutiveGatewayFailure: number;
  /** How often ejections are reviewed (returns, multiplier decay). */
  readonly intervalMs: number;
  /** An ejection lasts `baseEjectionTimeMs × times ejected`, at most `maxEjectionTimeMs`. */
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  /** At most this share (0–100) of the cluster's endpoints is ejected at once. */
  readonly maxEjectionPercent: number;
}

/** Envoy's `circuit_breakers.thresholds` (DEFAULT priority), enforced per cluster (pool-limits.ts). */
export interface CircuitBreakers {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
}

export interface Cluster {
  readonly name: string;
  /** EDS clusters take endpoints from `ClusterLoadAssignment`s; STATIC ones carry them inline. */
  /** ORIGINAL_DST (Envoy's, for TCP proxies only): the connection's original destination is the endpoint. */
  readonly discovery: 'EDS' | 'STATIC' | 'ORIGINAL_DST';
  readonly edsServiceName: string;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeoutMs: number;
  readonly staticEndpoints: readonly Endpoint[];
  /** `PEAK_EWMA` settings from the policy's typed config; absent: Linkerd's defaults. */
  readonly peakEwma?: { readonly decayMs: number; readonly defaultRttMs: number };
  /** Absent: no outlier detection (as Envoy without `outlier_detection`). */
  readonly outlierDetection?: OutlierDetection;
  /** Absent: Envoy's defaults (1024 each, `DEFAULT_CIRCUIT_BREAKERS`). */
  readonly circuitBreakers?: CircuitBreakers;
  /** Requests per upstream connection before it is closed; absent or 0: unlimited. */
  readonly maxRequestsPerConnection?: number;
  /**
   * `transport_socket_matches`, in order: the first whose `match` equals the endpoint's
   * `envoy.transport_socket_match` metadata gives its transport (`tls` absent: plaintext);
   * no match: `tls` (the cluster's `transport_socket`), else plaintext.
   */
  readonly transportSocketMatches?: readonly { readonly name: string; readonly match: Readonly<Record<string, string>>; readonly tls?: UpstreamTls }[];
  readonly tls?: UpstreamTls;
}

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly healthy: boolean;
  /**
   * Local mode: when the endpoint is a peer sidecar's inbound listener, the app port behind it.
   * Sent to the peer as the `x-weft-target-port` header (SPEC.md "Local mode" has no iptables to
   * carry the original destination).
   */
  readonly targetPort?: number;
  /** Endpoint metadata `envoy.transport_socket_match` (Istio's `tlsMode`), matched by the cluster. */
  readonly transportMatch?: Readonly<Record<string, string>>;
  /** Resolved from the cluster (proxy-snapshot.ts): originate mTLS to this endpoint. */
  readonly tls?: UpstreamTls;
  /** Endpoint metadata `weft.dev` `workload` and `namespace`: the pod behind it, for metric labels. */
  readonly workload?: string;
  readonly namespace?: string;
}

export interface ProxyConfig {
  readonly listeners: ReadonlyMap<string, HttpListener>;
  /** Listeners without an HTTP connection manager; absent: none. Names are unique across both maps. */
  readonly tcpListeners?: ReadonlyMap<string, TcpListener>;
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Keyed by EDS service name (the CLA's `cluster_name`). */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
  /** SDS `Secret`s holding a validation context, by name (Istio's `ROOTCA`); absent: none. */
  readonly trustBundles?: ReadonlyMap<string, TrustBundle>;
  /** This sidecar's workload (the inbound listener's `weft.dev` metadata), for metric labels; absent: derived from the pod name. */
  readonly workload?: string;
}

/** The roots a peer's certificate must chain to: old and new during a root rotation. */
export interface TrustBundle {
  readonly name: string;
  /** One or more PEM certificates. */
  readonly caPem: string;
}

export const EMPTY_CONFIG: ProxyConfig = {
  listeners: new Map(),
  routeTables: new Map(),
  clusters: new Map(),
  endpoints: new Map(),
};

export const TARGET_PORT_HEADER = 'x-weft-target-port';
