/**
 * Builders for xDS resources as the sidecar receives them: each builder writes a plain object in
 * proto field names, and `decoded()` encodes it with the real protos and decodes it with
 * `unpackAny`, so tests see exactly the shapes the xDS client hands to `buildProxyConfig`
 * (snake_case, enums as strings, 64-bit numbers as strings, nested `Any` as `{ '@type', ... }`).
 */
import { encodeResource, TypeUrl, unpackAny, type AnyMessage } from '@weft/api';
import type { XdsResources } from '../src/config-from-xds';

export type Obj = Record<string, any>;

/** Encodes `object` as `typeUrl` and decodes it again, as the xDS client does. */
export function decoded(typeUrl: string, object: Obj): Obj {
  return unpackAny({ type_url: typeUrl, value: encodeResource(typeUrl, object) });
}

/** Decodes raw bytes (hand-built or altered) as `typeUrl`. */
export function decodedBytes(typeUrl: string, value: Buffer): Obj {
  return unpackAny({ type_url: typeUrl, value } satisfies AnyMessage);
}

export const ROUTER_FILTER: Obj = { name: 'envoy.filters.http.router', typed_config: { '@type': TypeUrl.Router } };
const ADS = { ads: {}, resource_api_version: 'V3' };

/** An HttpConnectionManager `Any`: routes from RDS (a name) or inline (a RouteConfiguration). */
export function hcm(routes: string | Obj, httpFilters: Obj[] = [ROUTER_FILTER]): Obj {
  return {
    '@type': TypeUrl.HttpConnectionManager,
    stat_prefix: 'test',
    ...(typeof routes === 'string' ? { rds: { route_config_name: routes, config_source: ADS } } : { route_config: routes }),
    http_filters: httpFilters,
  };
}

/** A Listener object (not yet encoded) bound to `address:port` with one filter chain. */
export function listenerObject(name: string, opts: { address?: string; port?: number; direction?: 'INBOUND' | 'OUTBOUND'; filters?: Obj[]; routes?: string | Obj } = {}): Obj {
  return {
    name,
    address: { socket_address: { address: opts.address ?? '127.0.0.1', port_value: opts.port ?? 15001 } },
    ...(opts.direction ? { traffic_direction: opts.direction } : {}),
    filter_chains: [{
      filters: opts.filters ?? [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm(opts.routes ?? 'outbound') }],
    }],
  };
}

export const listenerXds = (name: string, opts: Parameters<typeof listenerObject>[1] = {}): Obj =>
  decoded(TypeUrl.Listener, listenerObject(name, opts));

/** A route to `cluster` for every path, with any fields overridden. */
export function routeObject(name: string, fields: Obj = {}): Obj {
  return { name, match: { prefix: '/' }, route: { cluster: 'backend' }, ...fields };
}

export function routeConfigObject(name: string, routes: Obj[], domains: string[] = ['*']): Obj {
  return { name, virtual_hosts: [{ name: 'vh', domains, routes }] };
}

export const routeConfigXds = (name: string, routes: Obj[], domains?: string[]): Obj =>
  decoded(TypeUrl.RouteConfiguration, routeConfigObject(name, routes, domains));

export function clusterXds(name: string, fields: Obj = {}): Obj {
  return decoded(TypeUrl.Cluster, {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS, service_name: name },
    connect_timeout: { seconds: 1 },
    lb_policy: 'ROUND_ROBIN',
    ...fields,
  });
}

/** An `LbEndpoint` object at `address:port`, with any fields added. */
export function lbEndpoint(address: string, port: number, fields: Obj = {}): Obj {
  return { endpoint: { address: { socket_address: { address, port_value: port } } }, ...fields };
}

export function assignmentXds(clusterName: string, lbEndpoints: Obj[]): Obj {
  return decoded(TypeUrl.ClusterLoadAssignment, { cluster_name: clusterName, endpoints: [{ lb_endpoints: lbEndpoints }] });
}

/** Resources with nothing but what is given. */
export function resources(parts: Partial<XdsResources>): XdsResources {
  return { listeners: [], routes: [], clusters: [], assignments: [], ...parts };
}

export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** A TcpProxy `Any` with the given fields (`stat_prefix` filled in). */
export function tcpProxy(fields: Obj): Obj {
  return { '@type': TCP_PROXY_TYPE, stat_prefix: 'tcp', ...fields };
}

/** A decoded Listener on `address:port` whose only chain is `proxy`, with `match` as its filter_chain_match. */
export function tcpListenerXds(name: string, proxy: Obj, match?: Obj, fields: Obj = {}): Obj {
  return decoded(TypeUrl.Listener, {
    ...listenerObject(name, { port: 2525 }),
    filter_chains: [{ ...(match ? { filter_chain_match: match } : {}), filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: proxy }] }],
    ...fields,
  });
}
