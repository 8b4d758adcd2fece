/**
 * EndpointSlices for Services nobody wrote slices for, built from the pods their selectors pick,
 * the way Kubernetes' EndpointSlice controller builds them. Local mode needs this (a manifest
 * directory rarely lists slices); in a cluster the controller has already done it.
 */
import { isIPv6 } from 'node:net';
import {
  SERVICE_NAME_LABEL,
  matchesSelector,
  type EndpointSlice,
  type EndpointSliceEndpoint,
  type EndpointSlicePort,
  type Pod,
  type Service,
  type ServicePort,
} from '@weft/api';

/** Kubernetes' default `--max-endpoints-per-slice`. */
export const MAX_ENDPOINTS_PER_SLICE = 100;
/** The `endpointslice.kubernetes.io/managed-by` value on derived slices. */
export const DERIVED_MANAGED_BY = 'weft.dev/endpoints-derive';

/**
 * Returns `slices` unchanged, followed by derived slices for every Service that has a selector
 * and no slice (labelled `kubernetes.io/service-name: <name>`) in its namespace. A derived slice
 * holds the Service's namespace's pods that match the selector and have a podIP, one endpoint
 * each (`ready` = the pod's readiness, `targetRef` = the pod), and the Service's ports (name,
 * protocol, appProtocol) with numbers resolved per pod from `targetPort`: a number as is, a
 * name via the pod's container port of that name and protocol. Pods whose ports resolve
 * differently (or whose IP families differ) go in different slices; a port a pod cannot resolve
 * is left out of its slice, and a pod that resolves none of the Service's ports is left out
 * altogether. Slices hold at most 100 endpoints and are named `<svc>-derived`,
 * `<svc>-derived-2`, … in a stable order. Pure: inputs are not modified; pods keep input order.
 */
export function deriveEndpointSlices(
  services: readonly Service[],
  pods: readonly Pod[],
  slices: readonly EndpointSlice[],
): EndpointSlice[] {
  const covered = new Set(slices.map((s) => `${s.meta.namespace}/${s.serviceName}`));
  const out = [...slices];
  for (const svc of services) {
    if (svc.selector === undefined || covered.has(`${svc.meta.namespace}/${svc.meta.name}`)) continue;
    const selector = svc.selector;
    const selected = pods.filter(
      (p) => p.meta.namespace === svc.meta.namespace && p.podIP !== undefined && matchesSelector(p.meta.labels, selector),
    );
    out.push(...slicesForService(svc, selected));
  }
  return out;
}

interface Group {
  readonly addressType: 'IPv4' | 'IPv6';
  readonly ports: EndpointSlicePort[];
  readonly endpoints: EndpointSliceEndpoint[];
}

function slicesForService(svc: Service, pods: readonly Pod[]): EndpointSlice[] {
  // Groups keyed by address family and resolved ports, in order of first appearance.
  const groups = new Map<string, Group>();
  for (const pod of pods) {
    const ports = resolvePorts(svc.ports, pod);
    if (svc.ports.length > 0 && ports.length === 0) continue;
    const addressType = isIPv6(pod.podIP ?? '') ? 'IPv6' : 'IPv4';
    const key = JSON.stringify([addressType, ports]);
    let group = groups.get(key);
    if (group === undefined) groups.set(key, (group = { addressType, ports, endpoints: [] }));
    group.endpoints.push({
      addresses: [pod.podIP as string],
      ready: pod.ready,
      targetRef: { kind: 'Pod', name: pod.meta.name, namespace: pod.meta.namespace },
    });
  }
  const out: EndpointSlice[] = [];
  for (const group of groups.values()) {
    for (let i = 0; i < group.endpoints.length; i += MAX_ENDPOINTS_PER_SLICE) {
      const n = out.length + 1;
      out.push({
        kind: 'EndpointSlice',
        meta: {
          name: n === 1 ? `${svc.meta.name}-derived` : `${svc.meta.name}-derived-${n}`,
          namespace: svc.meta.namespace,
          labels: { [SERVICE_NAME_LABEL]: svc.meta.name, 'endpointslice.kubernetes.io/managed-by': DERIVED_MANAGED_BY },
          annotations: {},
        },
        serviceName: svc.meta.name,
        addressType: group.addressType,
        ports: group.ports,
        endpoints: group.endpoints.slice(i, i + MAX_ENDPOINTS_PER_SLICE),
      });
    }
  }
  return out;
}

/** The Service's ports as this pod serves them; ports the pod cannot resolve are skipped. */
function resolvePorts(servicePorts: readonly ServicePort[], pod: Pod): EndpointSlicePort[] {
  const out: EndpointSlicePort[] = [];
  for (const sp of servicePorts) {
    const port =
      typeof sp.targetPort === 'number'
        ? sp.targetPort
        : pod.containerPorts.find((cp) => cp.name === sp.targetPort && cp.protocol === sp.protocol)?.containerPort;
    if (port === undefined) continue;
    out.push({
      ...(sp.name !== undefined ? { name: sp.name } : {}),
      port,
      protocol: sp.protocol,
      ...(sp.appProtocol !== undefined ? { appProtocol: sp.appProtocol } : {}),
    });
  }
  return out;
}
