/**
 * The compiled form of a `ProxyConfig`: route tables compiled, a balancer per cluster, endpoints
 * resolved. Built once per config object (memoized on its identity) so the request path only reads
 * it. Snapshots are never mutated; a new config gets a new snapshot, and a request keeps the
 * snapshot it started with.
 */
import type { Cluster, Endpoint, ProxyConfig, RouteTable } from './config';
import { createBalancer, type Balancer } from './balancer';
import { compileRouteTable, type CompiledRouteTable } from './route-table';
import { endpointKey } from './upstream-pool';

export interface ClusterSnapshot {
  readonly cluster: Cluster;
  /** EDS: the load assignment for `edsServiceName` (empty until one arrives); STATIC: inline. */
  readonly endpoints: readonly Endpoint[];
  /** Built for this cluster in this config (position state belongs to this snapshot only). */
  readonly balancer: Balancer;
}

export interface ProxySnapshot {
  readonly config: ProxyConfig;
  /** Every RDS route table, compiled, by name. */
  readonly routeTables: ReadonlyMap<string, CompiledRouteTable>;
  readonly clusters: ReadonlyMap<string, ClusterSnapshot>;
}

const snapshots = new WeakMap<ProxyConfig, ProxySnapshot>();
const tables = new WeakMap<RouteTable, CompiledRouteTable>();

/**
 * The snapshot of `config`, compiled on first call and cached for as long as `config` is alive.
 * Synchronous; O(config size) the first time, O(1) after.
 */
export function snapshotOf(config: ProxyConfig): ProxySnapshot {
  let snap = snapshots.get(config);
  if (!snap) {
    const routeTables = new Map<string, CompiledRouteTable>();
    for (const [name, table] of config.routeTables) routeTables.set(name, compiledRouteTable(table));
    const clusters = new Map<string, ClusterSnapshot>();
    for (const [name, cluster] of config.clusters) {
      clusters.set(name, { cluster, endpoints: endpointsOf(config, cluster), balancer: createBalancer(cluster.lbPolicy) });
    }
    snap = { config, routeTables, clusters };
    snapshots.set(config, snap);
  }
  return snap;
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
  if (cluster.discovery === 'STATIC') return cluster.staticEndpoints;
  return config.endpoints.get(cluster.edsServiceName || cluster.name) ?? [];
}

/** Pool keys (`address:port`) of every endpoint of every cluster in `config`: what the pool keeps. */
export function endpointKeys(config: ProxyConfig): Set<string> {
  const keys = new Set<string>();
  for (const cluster of config.clusters.values()) {
    for (const e of endpointsOf(config, cluster)) keys.add(endpointKey(e));
  }
  return keys;
}
