/**
 * Keeps a cluster alive while a route or a TCP proxy still sends to it. Resource types are updated
 * one at a time, so a route table or listener that was rejected (NACKed) can outlive the clusters
 * it names when a later cluster update removes them. Dropping those clusters would turn a rejected
 * policy into failed requests or refused connections; instead the previous cluster and its
 * endpoints stay until nothing names it.
 */
import type { Cluster, ConnectionDispatch, Endpoint, ProxyConfig, RouteTable } from './config';

/** `next`, plus any cluster of `previous` (with its endpoints) that a route or TCP proxy in `next` still names. */
export function retainReferencedClusters(previous: ProxyConfig, next: ProxyConfig): ProxyConfig {
  const missing = new Set<string>();
  const need = (n: string): void => {
    if (!next.clusters.has(n) && previous.clusters.has(n)) missing.add(n);
  };
  for (const table of routeTables(next)) {
    for (const vh of table.virtualHosts) {
      for (const r of vh.routes) {
        if (r.action.kind === 'cluster') need(r.action.cluster);
        else if (r.action.kind === 'weighted') r.action.clusters.forEach((c) => need(c.cluster));
      }
    }
  }
  for (const d of dispatches(next)) {
    for (const chain of d.defaultChain ? [...d.chains, d.defaultChain] : d.chains) {
      if (chain.filter.kind !== 'tcp') continue;
      const t = chain.filter.proxy.target;
      if (t.kind === 'cluster') need(t.cluster);
      else t.clusters.forEach((c) => need(c.cluster));
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

function dispatches(config: ProxyConfig): ConnectionDispatch[] {
  const http = [...config.listeners.values()].flatMap((l) => (l.connections ? [l.connections] : []));
  return [...http, ...[...(config.tcpListeners?.values() ?? [])].map((l) => l.connections)];
}
