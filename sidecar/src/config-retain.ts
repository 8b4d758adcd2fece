/**
 * Keeps a cluster alive while a route still sends to it. Resource types are updated one at a time,
 * so a route table that was rejected (NACKed) can outlive the clusters it names when a later
 * cluster update removes them. Dropping those clusters would turn a rejected policy into failed
 * requests; instead the previous cluster and its endpoints stay until no route names it.
 */
import type { Cluster, Endpoint, ProxyConfig, RouteTable } from './config';

/** `next`, plus any cluster of `previous` (with its endpoints) that a route in `next` still names. */
export function retainReferencedClusters(previous: ProxyConfig, next: ProxyConfig): ProxyConfig {
  const missing = new Set<string>();
  for (const table of routeTables(next)) {
    for (const vh of table.virtualHosts) {
      for (const r of vh.routes) {
        const names = r.action.kind === 'cluster' ? [r.action.cluster] : r.action.kind === 'weighted' ? r.action.clusters.map((c) => c.cluster) : [];
        for (const n of names) if (!next.clusters.has(n) && previous.clusters.has(n)) missing.add(n);
      }
    }
  }
  if (missing.size === 0) return next;
  const clusters = new Map<string, Cluster>(next.clusters);
  const endpoints = new Map<string, readonly Endpoint[]>(next.endpoints);
  for (const name of missing) {
    const c = previous.clusters.get(name)!;
    clusters.set(name, c);
    const eps = previous.endpoints.get(c.edsServiceName);
    if (c.discovery === 'EDS' && eps && !endpoints.has(c.edsServiceName)) endpoints.set(c.edsServiceName, eps);
  }
  return { ...next, clusters, endpoints };
}

function routeTables(config: ProxyConfig): RouteTable[] {
  const inline = [...config.listeners.values()].flatMap((l) => (l.routes.kind === 'inline' ? [l.routes.table] : []));
  return [...config.routeTables.values(), ...inline];
}
