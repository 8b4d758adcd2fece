/** Services and subsets → Envoy `Cluster`s and their `ClusterLoadAssignment`s. */
import { serviceHost, type Service, type ServicePort, type TrafficPolicy } from '@weft/api';
import type { World } from './world';
import { endpointsFor, inSubset, loadAssignment } from './translate-endpoints';
import { outboundClusterName } from './names';

type Obj = Record<string, unknown>;

export interface ClusterPair {
  readonly cluster: Obj;
  readonly assignment: Obj;
}

const LB_POLICY: Record<string, string> = {
  RoundRobin: 'ROUND_ROBIN',
  Random: 'RANDOM',
  LeastRequest: 'LEAST_REQUEST',
  EWMA: 'LEAST_REQUEST',
};

/**
 * The outbound clusters of one Service port: the whole Service, then one per policy subset.
 * `proxyless`: gRPC clients only implement ROUND_ROBIN, and reach pods directly.
 */
export function outboundClusters(world: World, svc: Service, port: ServicePort, policy: TrafficPolicy | undefined, proxyless: boolean): ClusterPair[] {
  const host = serviceHost(svc.meta.namespace, svc.meta.name);
  const endpoints = endpointsFor(world, svc, port);
  // SPEC.md: EWMA (power of two choices) is the default algorithm.
  const lb = proxyless ? 'ROUND_ROBIN' : LB_POLICY[policy?.loadBalancer?.algorithm ?? 'EWMA'] ?? 'ROUND_ROBIN';
  const groups: { subset: string; labels?: Readonly<Record<string, string>> }[] = [{ subset: '' }];
  for (const s of policy?.subsets ?? []) groups.push({ subset: s.name, labels: s.labels });
  return groups.map(({ subset, labels }) => {
    const name = outboundClusterName(port.port, subset, host);
    return {
      cluster: edsCluster(name, lb),
      assignment: loadAssignment(name, endpoints.filter((e) => inSubset(e, labels)), !proxyless),
    };
  });
}

export function edsCluster(name: string, lbPolicy: string): Obj {
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    connect_timeout: { seconds: 1 },
    lb_policy: lbPolicy,
  };
}

/** A STATIC cluster with its endpoints inline (the local app behind an inbound listener). */
export function staticCluster(name: string, address: string, port: number): Obj {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 1 },
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }],
    },
  };
}
