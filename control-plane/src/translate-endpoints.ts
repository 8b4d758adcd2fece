/**
 * Service ports → endpoints. Resolves each EndpointSlice endpoint to its pod (for subset labels
 * and to know whether a sidecar fronts it) and to the app port behind the Service port.
 */
import { matchesSelector, type Pod, type Service, type ServicePort } from '@weft/api';
import { nsName, type World } from './world';
import { INBOUND_PORT, METADATA_NS } from './names';
import { mtlsModeOf } from './peer-auth';
import { portProtocol } from './port-protocol';
import { podTargetPorts } from './translate-listeners';
import { spiffeId, tlsModeMetadata } from './peer-auth-tls';

export interface ResolvedEndpoint {
  readonly ip: string;
  /** The app's port (the Service's targetPort as resolved in the slice). */
  readonly targetPort: number;
  readonly podLabels?: Readonly<Record<string, string>>;
  /** The pod's sidecar is connected: reach it through its inbound listener (local mode). */
  readonly meshed: boolean;
  /** Auto mTLS: the pod's sidecar has an identity and the port's PeerAuthentication mode is not DISABLE. */
  readonly mtls: boolean;
  /** The pod's SPIFFE identity (its service account), when the endpoint is a known pod. */
  readonly identity?: string;
  /** The pod's workload (its `app` label, else its name without the last `-suffix`) and namespace: metric labels. */
  readonly workload?: string;
  readonly namespace?: string;
}

/** Ready endpoints of one Service port, sorted by address for stable output. */
export function endpointsFor(world: World, svc: Service, port: ServicePort): ResolvedEndpoint[] {
  const out: ResolvedEndpoint[] = [];
  const seen = new Set<string>();
  for (const slice of world.slices.get(nsName(svc.meta.namespace, svc.meta.name)) ?? []) {
    const sp = slice.ports.find((p) => (p.name ?? '') === (port.name ?? '')) ??
      (slice.ports.length === 1 && svc.ports.length === 1 ? slice.ports[0] : undefined);
    if (!sp || slice.addressType === 'FQDN') continue;
    for (const e of slice.endpoints) {
      if (!e.ready) continue;
      const pod = e.targetRef?.kind === 'Pod' ? world.pods.get(nsName(e.targetRef.namespace, e.targetRef.name)) : undefined;
      const podKey = pod ? nsName(pod.meta.namespace, pod.meta.name) : undefined;
      for (const ip of e.addresses) {
        const key = `${ip}:${sp.port}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const mtls = pod !== undefined && world.identityPods.has(podKey!) && mtlsWanted(world, pod, sp.port, portProtocol(port) !== 'opaque');
        out.push({
          ip,
          targetPort: sp.port,
          ...(pod ? { podLabels: pod.meta.labels, identity: spiffeId(pod.meta.namespace, pod.serviceAccount), workload: workloadOf(pod), namespace: pod.meta.namespace } : {}),
          meshed: podKey !== undefined && world.meshedPods.has(podKey),
          mtls,
        });
      }
    }
  }
  return out.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.targetPort - b.targetPort));
}

/**
 * Auto mTLS to a pod's sidecar for app port `target`: unless the port is DISABLE — but in local
 * mode a pod with a STRICT app port refuses plaintext HTTP on every port (the port is only known
 * per request), so HTTP there goes over mTLS even to a DISABLE port (docs/configuration.md).
 */
function mtlsWanted(world: World, pod: Pod, target: number, http: boolean): boolean {
  if (mtlsModeOf(world.peerAuth, pod, target) !== 'DISABLE') return true;
  if (!http || !world.meshedPods.has(nsName(pod.meta.namespace, pod.meta.name))) return false;
  let strict = strictPods.get(world);
  if (!strict) strictPods.set(world, (strict = new Map()));
  const key = nsName(pod.meta.namespace, pod.meta.name);
  let any = strict.get(key);
  if (any === undefined) {
    const ports = podTargetPorts(world, pod);
    any = (ports.length ? ports : [undefined]).some((p) => mtlsModeOf(world.peerAuth, pod, p) === 'STRICT');
    strict.set(key, any);
  }
  return any;
}

const strictPods = new WeakMap<World, Map<string, boolean>>();

/** A pod's workload: its `app` label, else its name without the last `-suffix` (`reviews-v1-7f9c-x2x` → `reviews-v1-7f9c`). */
export function workloadOf(pod: Pod): string {
  return workloadOfName(pod.meta.name, pod.meta.labels);
}

/** `workloadOf` for a pod known by name (and labels, when its Pod object is known): metrics and spans use the same. */
export function workloadOfName(podName: string, labels?: Readonly<Record<string, string>>): string {
  const app = labels?.app;
  if (app) return app;
  const i = podName.lastIndexOf('-');
  return i > 0 ? podName.slice(0, i) : podName;
}

export function inSubset(e: ResolvedEndpoint, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (!labels) return true;
  return e.podLabels !== undefined && matchesSelector(e.podLabels, labels);
}

/**
 * A ClusterLoadAssignment. `viaSidecar`: a meshed endpoint is addressed at its sidecar's inbound
 * listener, with the app port in endpoint metadata (local mode has no iptables to carry it).
 */
export function loadAssignment(clusterName: string, endpoints: readonly ResolvedEndpoint[], viaSidecar: boolean): Record<string, unknown> {
  return {
    cluster_name: clusterName,
    endpoints: endpoints.length === 0 ? [] : [{
      locality: {},
      load_balancing_weight: { value: 1 },
      lb_endpoints: endpoints.map((e) => {
        const sidecar = viaSidecar && e.meshed;
        return {
          endpoint: { address: { socket_address: { address: e.ip, port_value: sidecar ? INBOUND_PORT : e.targetPort } } },
          health_status: 'HEALTHY',
          load_balancing_weight: { value: 1 },
          // google.protobuf.Value comes from protobufjs's bundled well-known types, whose field
          // names are camelCase (numberValue); the wire format is the same either way.
          ...(sidecar || (viaSidecar && e.mtls) || e.workload ? {
            metadata: {
              filter_metadata: {
                ...(sidecar || e.workload ? { [METADATA_NS]: { fields: {
                  ...(sidecar ? { target_port: { numberValue: e.targetPort } } : {}),
                  // Who is behind the endpoint, for the caller's metric labels (docs/metrics.md).
                  ...(e.workload ? { workload: { stringValue: e.workload }, namespace: { stringValue: e.namespace } } : {}),
                } } } : {}),
                // Auto mTLS: the cluster's transport_socket_matches pick mTLS for this endpoint.
                ...(viaSidecar && e.mtls ? tlsModeMetadata() : {}),
              },
            },
          } : {}),
        };
      }),
    }],
  };
}
