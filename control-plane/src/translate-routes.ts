/**
 * Services and TrafficPolicies → Envoy `RouteConfiguration`s: one virtual host per Service port,
 * the policy's routes in order (first match wins), weighted backends as `weighted_clusters`, and
 * retries as `retry_policy` with Weft's extensions (retry budget, non-idempotent opt-in) in route
 * metadata (translate-retries.ts), fault injection as the fault filter's per-route config and
 * mirroring as `request_mirror_policies` (translate-fault.ts).
 */
import type { Backend, HeaderMatch, RouteSpec, Service, ServicePort, TrafficPolicy } from '@weft/api';
import { serviceHost } from '@weft/api';
import { nsName, type World } from './world';
import { outboundClusterName } from './names';
import { retryFields } from './translate-retries';
import { faultFields, mirrorFields } from './translate-fault';

type Obj = Record<string, unknown>;

/**
 * Domains a client may use for a Service port. Short names (`svc`, `svc.ns`) only resolve from
 * inside the Service's namespace in Kubernetes DNS, so they are added only for clients there;
 * port-less names only for port 80, as an HTTP client omits it.
 */
export function domainsFor(svc: Service, port: ServicePort, clientNamespace: string | undefined): string[] {
  const ns = svc.meta.namespace;
  const name = svc.meta.name;
  const hosts = [serviceHost(ns, name), `${name}.${ns}.svc`, `${name}.${ns}`];
  if (clientNamespace === ns) hosts.push(name);
  if (svc.clusterIP && svc.clusterIP !== 'None') hosts.push(svc.clusterIP);
  const out: string[] = [];
  for (const h of hosts) {
    out.push(`${h}:${port.port}`);
    if (port.port === 80) out.push(h);
  }
  return out;
}

/**
 * The routes of one virtual host for a Service port, with or without a policy. `proxyless`: for a
 * gRPC client, which gets no default retries and no Weft route metadata.
 */
export function routesFor(world: World, svc: Service, port: ServicePort, policy: TrafficPolicy | undefined, proxyless = false): Obj[] {
  const host = serviceHost(svc.meta.namespace, svc.meta.name);
  if (!policy || policy.routes.length === 0) {
    const { retry, route: extra } = retryFields(undefined, policy, proxyless);
    return [{ name: 'default', match: { prefix: '/' }, route: { cluster: outboundClusterName(port.port, '', host), timeout: { seconds: 0 }, ...retry }, ...extra }];
  }
  const out: Obj[] = [];
  for (const r of policy.routes) {
    const { retry, route: extra } = retryFields(r.retries, policy, proxyless);
    const mirrorCluster = (m: NonNullable<RouteSpec['mirror']>): string =>
      backendCluster(world, svc, port, { kind: 'service', service: m.service, ...(m.port !== undefined ? { port: m.port } : {}), weight: 100 });
    const action = { ...routeAction(world, svc, port, r), ...retry, ...mirrorFields(r.mirror, mirrorCluster, proxyless) };
    const fault = faultFields(r.fault);
    const matches = r.match.length ? r.match : [{ headers: [] as HeaderMatch[] }];
    matches.forEach((m, i) => {
      const match: Obj = {};
      const path = 'path' in m ? m.path : undefined;
      if (!path) match.prefix = '/';
      else if (path.kind === 'exact') match.path = path.value;
      else if (path.kind === 'prefix') match.prefix = path.value;
      else match.safe_regex = { regex: path.value };
      const headers = m.headers.map(headerMatcher);
      if ('method' in m && m.method) headers.unshift({ name: ':method', string_match: { exact: m.method } });
      if (headers.length) match.headers = headers;
      out.push({ name: matches.length > 1 ? `${r.name}-${i}` : r.name, match, route: action, ...fault, ...extra });
    });
  }
  return out;
}

function headerMatcher(h: HeaderMatch): Obj {
  switch (h.kind) {
    case 'present': return { name: h.name.toLowerCase(), present_match: true };
    case 'exact': return { name: h.name.toLowerCase(), string_match: { exact: h.value } };
    case 'prefix': return { name: h.name.toLowerCase(), string_match: { prefix: h.value } };
    case 'regex': return { name: h.name.toLowerCase(), string_match: { safe_regex: { regex: h.value } } };
  }
}

function routeAction(world: World, svc: Service, port: ServicePort, r: RouteSpec): Obj {
  const weighted = r.backends
    .filter((b) => b.weight > 0)
    .map((b) => ({ name: backendCluster(world, svc, port, b), weight: { value: b.weight } }));
  const timeout = r.timeoutMs !== undefined ? durationOf(r.timeoutMs) : { seconds: 0 };
  // gRPC clients read a route's deadline from max_stream_duration, not timeout (gRFC A31).
  const grpc = r.timeoutMs !== undefined ? { max_stream_duration: { max_stream_duration: timeout } } : {};
  if (weighted.length === 1) return { cluster: weighted[0]!.name, timeout, ...grpc };
  return { weighted_clusters: { clusters: weighted }, timeout, ...grpc };
}

/** The cluster a backend sends to: a subset of the target, or another Service's port. */
export function backendCluster(world: World, svc: Service, port: ServicePort, b: Backend): string {
  if (b.kind === 'subset') return outboundClusterName(port.port, b.subset, serviceHost(svc.meta.namespace, svc.meta.name));
  const other = world.services.get(nsName(svc.meta.namespace, b.service));
  const otherPort = b.port ?? (other?.ports.length === 1 ? other.ports[0]!.port : port.port);
  return outboundClusterName(otherPort, '', serviceHost(svc.meta.namespace, b.service));
}

export function durationOf(ms: number): Obj {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

/** Virtual host name for a Service port: `<host>:<port>`. */
export function virtualHostName(svc: Service, port: ServicePort): string {
  return `${serviceHost(svc.meta.namespace, svc.meta.name)}:${port.port}`;
}
