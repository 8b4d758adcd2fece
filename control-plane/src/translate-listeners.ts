/**
 * Listeners: a sidecar's outbound and inbound listeners, local mode's per-upstream ports, and
 * proxyless API listeners. Which connection takes which filter chain (HTTP, TCP proxy, detection,
 * PROXY v2 in local mode, original destination in capture mode) is in docs/protocols.md.
 */
import { TypeUrl, matchesSelector, serviceHost, type Pod, type Service, type ServicePort } from '@weft/api';
import {
  inboundClusterName, INBOUND_LISTENER, INBOUND_PORT, INBOUND_ROUTES, localPortListenerName, outboundClusterName, OUTBOUND_LISTENER, OUTBOUND_PORT,
  OUTBOUND_ROUTES, PASSTHROUGH_CLUSTER, TARGET_PORT_HEADER,
} from './names';
import { isIP } from 'node:net';
import { portProtocol, type LocalPortOwner } from './port-protocol';
import type { World } from './world';
import { FAULT_FILTER } from './translate-fault';
import { NO_AUTHZ, type InboundAuthzFilters } from './translate-authz';
import type { EffectiveMode } from './peer-auth';
import { downstreamMtls, MESH_MTLS_ALPN, MESH_MTLS_TRANSPORT } from './peer-auth-tls';

type Obj = Record<string, unknown>;

const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': TypeUrl.Router } };
const ADS = { ads: {}, resource_api_version: 'V3' };

/**
 * `fault`: list the fault filter before the router (outbound and API listeners, whose routes may
 * carry a policy's per-route fault config); the inbound listener's routes never do.
 */
function hcm(statPrefix: string, routes: { rds: string } | { inline: Obj }, fault = true, filters: readonly Obj[] = []): Obj {
  return {
    '@type': TypeUrl.HttpConnectionManager,
    stat_prefix: statPrefix,
    ...('rds' in routes ? { rds: { route_config_name: routes.rds, config_source: ADS } } : { route_config: routes.inline }),
    http_filters: [...filters, ...(fault ? [FAULT_FILTER] : []), ROUTER],
  };
}

function socketListener(name: string, address: string, port: number, direction: 'INBOUND' | 'OUTBOUND', manager: Obj): Obj {
  return {
    name,
    address: { socket_address: { address, port_value: port } },
    traffic_direction: direction,
    filter_chains: [{ filters: [httpFilter(manager)] }],
  };
}

const httpFilter = (manager: Obj): Obj => ({ name: 'envoy.filters.network.http_connection_manager', typed_config: manager });

const F = 'type.googleapis.com/envoy.extensions.filters.';
/** What Envoy's http_inspector reports for HTTP; the HTTP chains match on it (as Istio's do). */
const HTTP_PROTOCOLS = ['http/1.1', 'http/1.0', 'h2c'];
/** How long detection waits for a client's first bytes before a connection is opaque TCP. */
export const DETECTION_TIMEOUT = { seconds: 1 };
const INSPECTORS = [
  { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': `${F}listener.tls_inspector.v3.TlsInspector` } },
  { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': `${F}listener.http_inspector.v3.HttpInspector` } },
];
const ORIGINAL_DST = { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': `${F}listener.original_dst.v3.OriginalDst` } };
const PROXY_PROTOCOL = {
  name: 'envoy.filters.listener.proxy_protocol',
  typed_config: { '@type': `${F}listener.proxy_protocol.v3.ProxyProtocol`, allow_requests_without_proxy_protocol: true },
};
/** Detection with a fallback: a silent client is opaque TCP after `DETECTION_TIMEOUT`. */
const DETECTING = { listener_filters_timeout: DETECTION_TIMEOUT, continue_on_listener_filters_timeout: true };

export function tcpProxyFilter(cluster: string): Obj {
  // idle_timeout unset: Envoy's 1 h.
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': `${F}network.tcp_proxy.v3.TcpProxy`, stat_prefix: cluster, cluster } };
}

/**
 * The outbound listener. Local mode: HTTP only, routed by Host (TCP goes through per-upstream
 * ports). Capture mode: connections to a Service's cluster IP and a non-HTTP port take that
 * Service's chains (opaque: straight to its TCP proxy; undeclared: HTTP if detected, else its TCP
 * proxy); other HTTP is routed by Host; anything else passes through to its original destination.
 */
export function outboundListener(address: string, capture?: { readonly services: readonly Service[] }): Obj {
  const manager = hcm('outbound', { rds: OUTBOUND_ROUTES });
  const listener = socketListener(OUTBOUND_LISTENER, address, OUTBOUND_PORT, 'OUTBOUND', manager);
  if (!capture) return listener;
  const chains: Obj[] = [];
  for (const svc of capture.services) {
    const ip = svc.clusterIP;
    if (!ip || !isIP(ip)) continue; // headless (`None`): pods are reached directly, passed through
    for (const port of servicePortsOf(svc)) {
      const protocol = portProtocol(port);
      if (protocol === 'http') continue;
      const match = { prefix_ranges: [{ address_prefix: ip, prefix_len: { value: ip.includes(':') ? 128 : 32 } }], destination_port: { value: port.port } };
      const cluster = outboundClusterName(port.port, '', serviceHost(svc.meta.namespace, svc.meta.name));
      const name = `${ip}_${port.port}`;
      if (protocol === 'detect') chains.push({ name: `${name}-http`, filter_chain_match: { ...match, application_protocols: HTTP_PROTOCOLS }, filters: [httpFilter(manager)] });
      chains.push({ name, filter_chain_match: match, filters: [tcpProxyFilter(cluster)] });
    }
  }
  return {
    ...listener,
    listener_filters: [ORIGINAL_DST, ...INSPECTORS],
    ...DETECTING,
    filter_chains: [...chains, { name: 'http', filter_chain_match: { application_protocols: HTTP_PROTOCOLS }, filters: [httpFilter(manager)] }],
    default_filter_chain: { name: PASSTHROUGH_CLUSTER, filters: [tcpProxyFilter(PASSTHROUGH_CLUSTER)] },
  };
}

/**
 * Local mode's per-upstream port `POD_IP:<port>` for one Service port: opaque, a TCP proxy to the
 * Service's cluster at once; otherwise detection (HTTP routed by Host as on the outbound listener,
 * anything else or a silent client TCP-proxied to the Service).
 */
export function localPortListener(podIp: string, owner: LocalPortOwner): Obj {
  const { service, port, protocol } = owner;
  const cluster = outboundClusterName(port.port, '', serviceHost(service.meta.namespace, service.meta.name));
  const base = { name: localPortListenerName(port.port), address: { socket_address: { address: podIp, port_value: port.port } }, traffic_direction: 'OUTBOUND' };
  if (protocol === 'opaque') return { ...base, filter_chains: [{ name: cluster, filters: [tcpProxyFilter(cluster)] }] };
  return {
    ...base,
    listener_filters: INSPECTORS,
    ...DETECTING,
    filter_chains: [{ name: 'http', filter_chain_match: { application_protocols: HTTP_PROTOCOLS }, filters: [httpFilter(hcm('outbound', { rds: OUTBOUND_ROUTES }))] }],
    default_filter_chain: { name: cluster, filters: [tcpProxyFilter(cluster)] },
  };
}

/** The app ports this pod serves for some Service, as Kubernetes would resolve targetPort. */
export function podTargetPorts(world: World, pod: Pod): number[] {
  const ports = new Set<number>();
  for (const svc of world.services.values()) {
    if (svc.meta.namespace !== pod.meta.namespace || !svc.selector || !matchesSelector(pod.meta.labels, svc.selector)) continue;
    for (const p of servicePortsOf(svc)) {
      const target = resolveTargetPort(p, pod);
      if (target !== undefined) ports.add(target);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The inbound listener. HTTP names its app port in `x-weft-target-port` (set by the calling
 * sidecar in local mode, from the original destination in capture mode); a request without it
 * goes to the pod's only app port, if it has exactly one. TCP:
 * - local mode: a peer sidecar's TCP connection starts with a PROXY v2 header whose destination
 *   port is the app port; each app port has a chain (TCP to the app), any other port has none (the
 *   connection is refused), and a connection without the header is HTTP;
 * - capture mode: the original destination port picks the chain; an opaque app port goes to the
 *   app as TCP at once, other app ports detect (HTTP, else TCP to the app); HTTP to a port no
 *   Service declares is routed as above.
 */
export function inboundListener(address: string, targetPorts: readonly number[], opaquePorts: ReadonlySet<number>, capture: boolean, peer?: InboundMtls, authz: InboundAuthzFilters = NO_AUTHZ): Obj {
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
  // Authorization (translate-authz.ts): RBAC filters before the router and before each TCP proxy.
  const manager = hcm('inbound', { inline: table }, false, authz.http);
  const listener = socketListener(INBOUND_LISTENER, address, INBOUND_PORT, 'INBOUND', manager);
  const http = (match: Obj, name: string): Obj => ({ name, filter_chain_match: match, filters: [httpFilter(manager)] });
  const tcp = (p: number, match: Obj = { destination_port: { value: p } }): Obj => ({ name: inboundClusterName(p), filter_chain_match: match, filters: [...authz.network, tcpProxyFilter(inboundClusterName(p))] });
  // PeerAuthentication (docs/protocols.md "mTLS"): STRICT chains serve only what mesh mTLS
  // decrypted; a terminate chain (mesh ALPN) exists where the sidecar has an identity and some
  // port is not DISABLE; app TLS without the mesh ALPN passes through to the app where allowed.
  const mode = (p?: number): EffectiveMode => peer?.modeOf(p) ?? 'PERMISSIVE';
  const inner = (p: number | undefined, m: Obj): Obj => (mode(p) === 'STRICT' ? { ...m, transport_protocol: MESH_MTLS_TRANSPORT } : m);
  const terminates = (ports: readonly (number | undefined)[]): boolean => peer?.identity === true && ports.some((p) => mode(p) !== 'DISABLE');
  const terminate = (name: string, match: Obj): Obj => ({
    name, filter_chain_match: { ...match, transport_protocol: 'tls', application_protocols: [MESH_MTLS_ALPN] }, transport_socket: downstreamMtls(), filters: [],
  });
  if (!capture) {
    // Local mode: the app port is known only inside the connection (PROXY header, x-weft-target-port),
    // so one terminate chain serves the listener, and plaintext HTTP is refused when any app port is STRICT.
    const ports: (number | undefined)[] = targetPorts.length ? [...targetPorts] : [undefined];
    const httpStrict = ports.some((p) => mode(p) === 'STRICT');
    return {
      ...listener,
      listener_filters: [PROXY_PROTOCOL, ...(terminates(ports) ? [INSPECTORS[0]!] : [])],
      ...DETECTING,
      filter_chains: [
        ...(terminates(ports) ? [terminate('mtls', { destination_port: { value: INBOUND_PORT } })] : []),
        http({ destination_port: { value: INBOUND_PORT }, ...(httpStrict ? { transport_protocol: MESH_MTLS_TRANSPORT } : {}) }, 'http'),
        ...targetPorts.map((p) => tcp(p, inner(p, { destination_port: { value: p } }))),
      ],
    };
  }
  const chains: Obj[] = [];
  for (const p of targetPorts) {
    const port = { destination_port: { value: p } };
    if (terminates([p])) {
      chains.push(terminate(`port-${p}-mtls`, port));
      // An app's own TLS (no mesh ALPN) on a port that takes plaintext: to the app, untouched.
      if (mode(p) !== 'STRICT') chains.push(tcp(p, { ...port, transport_protocol: 'tls' }));
    }
    if (!opaquePorts.has(p)) chains.push(http(inner(p, { ...port, application_protocols: HTTP_PROTOCOLS }), `port-${p}-http`));
    chains.push(tcp(p, inner(p, port)));
  }
  chains.push(http(inner(undefined, { application_protocols: HTTP_PROTOCOLS }), 'http'));
  return { ...listener, listener_filters: [ORIGINAL_DST, ...INSPECTORS], ...DETECTING, filter_chains: chains };
}

/** The inbound side of PeerAuthentication for one pod (peer-auth.ts). */
export interface InboundMtls {
  /** The pod's sidecar has a workload identity: it can terminate mesh mTLS. */
  readonly identity: boolean;
  /** The effective mode of an app port; `undefined`: the workload's own. */
  readonly modeOf: (port?: number) => EffectiveMode;
}

/** A proxyless gRPC client's API listener for `xds:///<host>:<port>`: routes by RDS of the same name. */
export function apiListener(name: string): Obj {
  return { name, api_listener: { api_listener: hcm(name, { rds: name }) } };
}

export function servicePortsOf(svc: Service): Service['ports'] {
  return svc.ports.filter((p) => p.protocol === 'TCP');
}

/** The app ports of `pod` that some selecting Service declares opaque (docs/configuration.md). */
export function podOpaquePorts(world: World, pod: Pod): Set<number> {
  const out = new Set<number>();
  for (const svc of world.services.values()) {
    if (svc.meta.namespace !== pod.meta.namespace || !svc.selector || !matchesSelector(pod.meta.labels, svc.selector)) continue;
    for (const p of servicePortsOf(svc)) {
      if (portProtocol(p) !== 'opaque') continue;
      const target = resolveTargetPort(p, pod);
      if (target !== undefined) out.add(target);
    }
  }
  return out;
}

/** The container port a Service port's `targetPort` names on `pod`, as Kubernetes resolves it. */
function resolveTargetPort(p: ServicePort, pod: Pod): number | undefined {
  return typeof p.targetPort === 'number' ? p.targetPort : pod.containerPorts.find((c) => c.name === p.targetPort)?.containerPort;
}

/**
 * Mesh tracing (docs/tracing.md): where spans go and how many requests start a trace. Absent: no
 * tracing (the default). Issue 8 adds it to the Helm chart's mesh config.
 */
export interface MeshTracing {
  /** OTLP over HTTP/protobuf, e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly endpoint: string;
  /** Percent (0–100) of requests without a sampling decision that start a sampled trace. */
  readonly samplingPercent: number;
}

/** The tracer name Envoy gives the OpenTelemetry provider, and its config type. */
export const OTEL_TRACER = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
/** `http_uri.cluster` is required by Envoy's schema; the Weft sidecar posts to `uri` directly. */
export const OTLP_CLUSTER = 'weft-otlp';

/**
 * The HCM `tracing` block for one workload, the Envoy way: `random_sampling` and an
 * `envoy.tracers.opentelemetry` provider exporting over OTLP/HTTP to the mesh's endpoint, with the
 * workload as `service_name` (the span resource's `service.name`).
 */
export function hcmTracing(tracing: MeshTracing, serviceName: string): Obj {
  return {
    random_sampling: { value: tracing.samplingPercent },
    provider: {
      name: OTEL_TRACER,
      typed_config: {
        '@type': OTEL_CONFIG_TYPE,
        service_name: serviceName,
        http_service: { http_uri: { uri: tracing.endpoint, cluster: OTLP_CLUSTER, timeout: { seconds: 5 } } },
      },
    },
  };
}

/** `listener` with `tracing` set on every HTTP connection manager of its chains (a copy). */
export function withTracing(listener: Obj, tracing: Obj | undefined): Obj {
  if (!tracing) return listener;
  const chain = (c: Obj): Obj => ({
    ...c,
    filters: (c.filters as Obj[]).map((f) => (f.name === 'envoy.filters.network.http_connection_manager' ? { ...f, typed_config: { ...(f.typed_config as Obj), tracing } } : f)),
  });
  return {
    ...listener,
    filter_chains: (listener.filter_chains as Obj[]).map(chain),
    ...(listener.default_filter_chain ? { default_filter_chain: chain(listener.default_filter_chain as Obj) } : {}),
  };
}


