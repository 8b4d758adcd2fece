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
  /** Whole-request timeout; 0 or absent means none. */
  readonly timeoutMs?: number;
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
  /** Routes come from RDS by name, or inline in the listener. */
  readonly routes: { readonly kind: 'rds'; readonly name: string } | { readonly kind: 'inline'; readonly table: RouteTable };
}

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

export interface Cluster {
  readonly name: string;
  /** EDS clusters take endpoints from `ClusterLoadAssignment`s; STATIC ones carry them inline. */
  readonly discovery: 'EDS' | 'STATIC';
  readonly edsServiceName: string;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeoutMs: number;
  readonly staticEndpoints: readonly Endpoint[];
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
