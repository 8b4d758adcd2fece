/** Listeners: a sidecar's outbound and inbound capture listeners, and proxyless API listeners. */
import { TypeUrl, matchesSelector, type Pod, type Service } from '@weft/api';
import { inboundClusterName, INBOUND_LISTENER, INBOUND_PORT, INBOUND_ROUTES, OUTBOUND_LISTENER, OUTBOUND_PORT, OUTBOUND_ROUTES, TARGET_PORT_HEADER } from './names';
import type { World } from './world';
import { FAULT_FILTER } from './translate-fault';

type Obj = Record<string, unknown>;

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': TypeUrl.Router } };
const ADS = { ads: {}, resource_api_version: 'V3' };

/**
 * `fault`: list the fault filter before the router (outbound and API listeners, whose routes may
 * carry a policy's per-route fault config); the inbound listener's routes never do.
 */
function hcm(statPrefix: string, routes: { rds: string } | { inline: Obj }, fault = true): Obj {
  return {
    '@type': TypeUrl.HttpConnectionManager,
    stat_prefix: statPrefix,
    ...('rds' in routes ? { rds: { route_config_name: routes.rds, config_source: ADS } } : { route_config: routes.inline }),
    http_filters: fault ? [FAULT_FILTER, ROUTER] : [ROUTER],
  };
}

function socketListener(name: string, address: string, port: number, direction: 'INBOUND' | 'OUTBOUND', manager: Obj): Obj {
  return {
    name,
    address: { socket_address: { address, port_value: port } },
    traffic_direction: direction,
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: manager }] }],
  };
}

export function outboundListener(podIp: string): Obj {
  return socketListener(OUTBOUND_LISTENER, podIp, OUTBOUND_PORT, 'OUTBOUND', hcm('outbound', { rds: OUTBOUND_ROUTES }));
}

/** The app ports this pod serves for some Service, as Kubernetes would resolve targetPort. */
export function podTargetPorts(world: World, pod: Pod): number[] {
  const ports = new Set<number>();
  for (const svc of world.services.values()) {
    if (svc.meta.namespace !== pod.meta.namespace || !svc.selector || !matchesSelector(pod.meta.labels, svc.selector)) continue;
    for (const p of svc.ports) {
      if (p.protocol !== 'TCP') continue;
      if (typeof p.targetPort === 'number') ports.add(p.targetPort);
      else {
        const named = pod.containerPorts.find((c) => c.name === p.targetPort);
        if (named) ports.add(named.containerPort);
      }
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The inbound listener: a request names its app port in `x-weft-target-port` (set by the calling
 * sidecar); a request without it goes to the pod's only app port, if it has exactly one.
 */
export function inboundListener(podIp: string, targetPorts: readonly number[]): Obj {
  const routes: Obj[] = targetPorts.map((p) => ({
    name: `port-${p}`,
    match: { prefix: '/', headers: [{ name: TARGET_PORT_HEADER, string_match: { exact: String(p) } }] },
    route: { cluster: inboundClusterName(p), timeout: { seconds: 0 } },
  }));
  if (targetPorts.length === 1) {
    routes.push({ name: 'default', match: { prefix: '/' }, route: { cluster: inboundClusterName(targetPorts[0]!), timeout: { seconds: 0 } } });
  } else {
    routes.push({
      name: 'no-target-port',
      match: { prefix: '/' },
      direct_response: { status: 404, body: { inline_string: `no app port: send ${TARGET_PORT_HEADER}, one of ${targetPorts.join(', ') || '(none)'}` } },
    });
  }
  const table = { name: INBOUND_ROUTES, virtual_hosts: [{ name: 'inbound', domains: ['*'], routes }] };
  return socketListener(INBOUND_LISTENER, podIp, INBOUND_PORT, 'INBOUND', hcm('inbound', { inline: table }, false));
}

/** A proxyless gRPC client's API listener for `xds:///<host>:<port>`: routes by RDS of the same name. */
export function apiListener(name: string): Obj {
  return { name, api_listener: { api_listener: hcm(name, { rds: name }) } };
}

export function servicePortsOf(svc: Service): Service['ports'] {
  return svc.ports.filter((p) => p.protocol === 'TCP');
}
