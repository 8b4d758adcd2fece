/**
 * The sidecar's validated, immutable configuration. xDS resources become these values once, in
 * `config-from-xds.ts`; the data path reads only these (STYLE.md: the data path never touches a
 * raw proto). A `ProxyConfig` is replaced as a whole, never mutated.
 */

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
  /** Routes come from RDS by name, or inline in the listener. */
  readonly routes: { readonly kind: 'rds'; readonly name: string } | { readonly kind: 'inline'; readonly table: RouteTable };
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
  readonly discovery: 'EDS' | 'STATIC';
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
}

export interface ProxyConfig {
  readonly listeners: ReadonlyMap<string, HttpListener>;
  readonly routeTables: ReadonlyMap<string, RouteTable>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Keyed by EDS service name (the CLA's `cluster_name`). */
  readonly endpoints: ReadonlyMap<string, readonly Endpoint[]>;
}

export const EMPTY_CONFIG: ProxyConfig = {
  listeners: new Map(),
  routeTables: new Map(),
  clusters: new Map(),
  endpoints: new Map(),
};

export const TARGET_PORT_HEADER = 'x-weft-target-port';
