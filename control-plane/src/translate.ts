/**
 * Translation: a pure function from the world and one node to that node's Envoy v3 resources.
 * The same code serves local mode and Kubernetes mode. Tables of input → expected resources
 * live in control-plane/test/translate.test.ts.
 */
import { TypeUrl, serviceHost, type NodeIdentity, type ResourceTypeUrl } from '@weft/api';
import { nsName, type World } from './world';
import { outboundClusters, staticCluster } from './translate-clusters';
import { apiListener, hcmTracing, inboundListener, localPortListener, outboundListener, podOpaquePorts, podTargetPorts, servicePortsOf, withTracing } from './translate-listeners';
import { domainsFor, routesFor, virtualHostName } from './translate-routes';
import { inboundAuthz } from './translate-authz';
import { trustBundleSecrets } from './translate-secrets';
import { inboundClusterName, METADATA_NS, OUTBOUND_ROUTES, PASSTHROUGH_CLUSTER } from './names';
import { workloadOf, workloadOfName } from './translate-endpoints';
import { mtlsModeOf } from './peer-auth';

type Obj = Record<string, unknown>;

/** Resources by type URL, then by name. Plain objects in proto field names, not yet encoded. */
export type Resources = ReadonlyMap<ResourceTypeUrl, ReadonlyMap<string, Obj>>;

export function translate(world: World, node: NodeIdentity): Resources {
  const clusters = new Map<string, Obj>();
  const assignments = new Map<string, Obj>();
  const listeners = new Map<string, Obj>();
  const routeConfigs = new Map<string, Obj>();
  const proxyless = node.kind === 'proxyless';
  const clientNamespace = node.kind === 'sidecar' ? node.namespace : undefined;
  const outboundVhosts: Obj[] = [];

  // Scoped pushes: a sidecar gets the Services of the namespaces it may reach, not the cluster's.
  const reach = node.kind === 'sidecar' && world.reach ? world.reach(node.namespace) : 'all';
  const services = [...world.services.values()]
    .filter((s) => reach === 'all' || reach.has(s.meta.namespace))
    .sort((a, b) => nsName(a.meta.namespace, a.meta.name).localeCompare(nsName(b.meta.namespace, b.meta.name)));
  for (const svc of services) {
    const policy = world.policies.get(nsName(svc.meta.namespace, svc.meta.name));
    for (const port of servicePortsOf(svc)) {
      for (const { cluster, assignment } of outboundClusters(world, svc, port, policy, proxyless)) {
        clusters.set(cluster.name as string, cluster);
        assignments.set(assignment.cluster_name as string, assignment);
      }
      const vhost = {
        name: virtualHostName(svc, port),
        domains: domainsFor(svc, port, clientNamespace),
        routes: routesFor(world, svc, port, policy, proxyless),
      };
      if (proxyless) {
        const name = `${serviceHost(svc.meta.namespace, svc.meta.name)}:${port.port}`;
        listeners.set(name, apiListener(name));
        routeConfigs.set(name, { name, virtual_hosts: [vhost] });
      } else {
        outboundVhosts.push(vhost);
      }
    }
  }

  if (node.kind === 'sidecar') {
    routeConfigs.set(OUTBOUND_ROUTES, { name: OUTBOUND_ROUTES, virtual_hosts: dedupeDomains(outboundVhosts) });
    // Captured traffic arrives redirected to the sidecar on any local address.
    const bindAddress = node.capture ? '0.0.0.0' : node.podIp;
    const pod = world.pods.get(nsName(node.namespace, node.podName));
    // Mesh tracing (docs/tracing.md): every HTTP connection manager of this sidecar's listeners.
    const tracing = world.tracing ? hcmTracing(world.tracing, workloadOfName(node.podName, pod?.meta.labels)) : undefined;
    listeners.set('virtualOutbound', withTracing(outboundListener(bindAddress, node.capture ? { services } : undefined), tracing));
    if (node.capture) clusters.set(PASSTHROUGH_CLUSTER, passthroughCluster());
    const targetPorts = pod ? podTargetPorts(world, pod) : [];
    for (const p of targetPorts) {
      const c = staticCluster(inboundClusterName(p), node.podIp, p);
      clusters.set(c.name as string, c);
    }
    const peer = pod ? { identity: node.mtls === true, modeOf: (p?: number) => mtlsModeOf(world.peerAuth, pod, p) } : undefined;
    const inbound = inboundListener(bindAddress, targetPorts, pod ? podOpaquePorts(world, pod) : new Set(), node.capture, peer, inboundAuthz(world, pod));
    // The sidecar's own workload, as its callers see it in endpoint metadata (its metric labels).
    listeners.set('virtualInbound', withTracing(pod ? { ...inbound, metadata: { filter_metadata: { [METADATA_NS]: { fields: { workload: { stringValue: workloadOf(pod) } } } } } } : inbound, tracing));
    if (!node.capture) {
      // Local mode's per-upstream ports, except where the pod's own app listens (docs/protocols.md).
      const own = new Set([...targetPorts, ...(pod?.containerPorts.map((c) => c.containerPort) ?? [])]);
      for (const [port, owner] of world.localPorts.owners) {
        if (own.has(port)) continue;
        const l = withTracing(localPortListener(node.podIp, owner), tracing);
        listeners.set(l.name as string, l);
      }
    }
  }

  return new Map<ResourceTypeUrl, ReadonlyMap<string, Obj>>([
    [TypeUrl.Cluster, clusters],
    [TypeUrl.ClusterLoadAssignment, assignments],
    [TypeUrl.Listener, listeners],
    [TypeUrl.RouteConfiguration, routeConfigs],
    ...(node.kind === 'sidecar' ? [[TypeUrl.Secret, trustBundleSecrets(world)] as const] : []),
  ]);
}

/** Envoy's PassthroughCluster: a TCP connection to no known Service goes where it was going. */
function passthroughCluster(): Obj {
  return { name: PASSTHROUGH_CLUSTER, type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: { seconds: 1 } };
}

/**
 * Envoy rejects a route configuration where two virtual hosts share a domain. Two Services can
 * only collide on a cluster IP or the port-less form; the first (sorted) keeps it.
 */
function dedupeDomains(vhosts: Obj[]): Obj[] {
  const seen = new Set<string>();
  return vhosts.map((v) => {
    const domains = (v.domains as string[]).filter((d) => !seen.has(d));
    domains.forEach((d) => seen.add(d));
    return { ...v, domains };
  }).filter((v) => (v.domains as string[]).length > 0);
}
