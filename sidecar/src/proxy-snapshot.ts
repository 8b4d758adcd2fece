/**
 * The compiled form of a `ProxyConfig`: route tables compiled, a picker per cluster, endpoints
 * resolved. Built once per config object and upstream pool (memoized on both) so the request path
 * only reads it. Snapshots are never mutated; a new config gets a new snapshot, and a request keeps
 * the snapshot it started with.
 *
 * What must outlive a config — balancer statistics, outlier ejections, pool-limit counts — lives
 * in the pool's `ClusterBalancers` (cluster-balancer.ts), keyed by cluster name and endpoint
 * `address:port`; each snapshot's pickers are views onto it.
 */
import type { Cluster, Endpoint, ProxyConfig, RouteTable } from './config';
import { endpointTls } from './cluster-from-xds';
import { ClusterBalancers, type ClusterPicker, type UpstreamPick } from './cluster-balancer';
import type { PoolLimits } from './pool-limits';
import { compileRouteTable, type CompiledRouteTable } from './route-table';
import { endpointKey, UpstreamPool } from './upstream-pool';

export interface ClusterSnapshot {
  readonly cluster: Cluster;
  /** EDS: the load assignment for `edsServiceName` (empty until one arrives); STATIC: inline. */
  readonly endpoints: readonly Endpoint[];
  /** Picks an endpoint for one upstream call (`undefined`: none healthy); see `UpstreamPick`. */
  readonly balancer: ClusterPicker;
  /** The cluster's connection-pool limits (shared across configs). */
  readonly limits: PoolLimits;
}

export interface ProxySnapshot {
  readonly config: ProxyConfig;
  /** Every RDS route table, compiled, by name. */
  readonly routeTables: ReadonlyMap<string, CompiledRouteTable>;
  readonly clusters: ReadonlyMap<string, ClusterSnapshot>;
}

export type { UpstreamPick };

const snapshots = new WeakMap<ClusterBalancers, WeakMap<ProxyConfig, ProxySnapshot>>();
const balancers = new WeakMap<UpstreamPool, ClusterBalancers>();
const tables = new WeakMap<RouteTable, CompiledRouteTable>();
let defaultPool: UpstreamPool | undefined;

/** The cluster state of `pool`'s sidecar, created on first use; closed with the pool. */
export function balancersOf(pool: UpstreamPool): ClusterBalancers {
  let b = balancers.get(pool);
  if (!b) {
    b = new ClusterBalancers(pool);
    balancers.set(pool, b);
  }
  return b;
}

/**
 * The snapshot of `config` for the sidecar that owns `pool`, compiled on first call and cached for
 * as long as `config` is alive. Synchronous; O(config size) the first time, O(1) after. Without a
 * pool (tests, tools), a process-wide default.
 */
export function snapshotOf(config: ProxyConfig, pool?: UpstreamPool): ProxySnapshot {
  const store = balancersOf(pool ?? (defaultPool ??= new UpstreamPool()));
  let memo = snapshots.get(store);
  if (!memo) {
    memo = new WeakMap();
    snapshots.set(store, memo);
  }
  let snap = memo.get(config);
  if (!snap) {
    const routeTables = new Map<string, CompiledRouteTable>();
    for (const [name, table] of config.routeTables) routeTables.set(name, compiledRouteTable(table));
    const clusters = new Map<string, ClusterSnapshot>();
    for (const [name, cluster] of config.clusters) {
      const endpoints = endpointsOf(config, cluster);
      const balancer = store.picker(cluster, endpoints);
      clusters.set(name, { cluster, endpoints, balancer, limits: store.get(name)!.limits });
    }
    snap = { config, routeTables, clusters };
    memo.set(config, snap);
  }
  return snap;
}

/** After `config` is applied: retires upstream agents and cluster state that it no longer has. */
export function retainUpstreams(pool: UpstreamPool, config: ProxyConfig): void {
  pool.retain(endpointKeys(config));
  balancersOf(pool).retain(config.clusters.keys());
}

/** `table` compiled, memoized on its identity (inline listener tables survive config swaps that keep them). */
export function compiledRouteTable(table: RouteTable): CompiledRouteTable {
  let compiled = tables.get(table);
  if (!compiled) {
    compiled = compileRouteTable(table);
    tables.set(table, compiled);
  }
  return compiled;
}

/** The endpoints `cluster` balances over in `config`. */
export function endpointsOf(config: ProxyConfig, cluster: Cluster): readonly Endpoint[] {
  const given = cluster.discovery === 'STATIC' ? cluster.staticEndpoints : config.endpoints.get(cluster.edsServiceName || cluster.name) ?? [];
  if (!cluster.tls && !cluster.transportSocketMatches) return given;
  // Auto mTLS: each endpoint gets its transport from the cluster (memoized per cluster and list).
  let byList = withTls.get(cluster);
  if (!byList) withTls.set(cluster, (byList = new WeakMap()));
  let resolved = byList.get(given);
  if (!resolved) {
    resolved = given.map((e) => {
      const tls = endpointTls(cluster, e.transportMatch);
      return tls ? { ...e, tls } : e;
    });
    byList.set(given, resolved);
  }
  return resolved;
}

const withTls = new WeakMap<Cluster, WeakMap<readonly Endpoint[], readonly Endpoint[]>>();

/** Pool keys (`address:port`) of every endpoint of every cluster in `config`: what the pool keeps. */
export function endpointKeys(config: ProxyConfig): Set<string> {
  const keys = new Set<string>();
  for (const cluster of config.clusters.values()) {
    for (const e of endpointsOf(config, cluster)) keys.add(endpointKey(e));
  }
  return keys;
}
