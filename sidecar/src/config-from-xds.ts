/**
 * xDS resources (decoded protos) → a validated, immutable `ProxyConfig`, or error strings that
 * become the NACK's `error_detail`. The data path never sees a proto. Anything whose meaning we
 * cannot honour is an error, not silently dropped: routing differently from what the control plane
 * intended is worse than keeping the last good config. Unknown fields are ignored (version skew).
 */
import { TypeUrl } from '@weft/api';
import type {
  Cluster, Endpoint, HeaderMatcher, HttpListener, LbPolicy, PathMatcher, ProxyConfig, Route, RouteAction, RouteTable, VirtualHost,
} from './config';

type Obj = Record<string, any>;

export interface XdsResources {
  readonly listeners: readonly Obj[];
  readonly routes: readonly Obj[];
  readonly clusters: readonly Obj[];
  readonly assignments: readonly Obj[];
}

export type BuildResult = { ok: true; config: ProxyConfig } | { ok: false; errors: string[] };

class Invalid extends Error {}
const invalid = (path: string, why: string): never => { throw new Invalid(`${path}: ${why}`); };

export function buildProxyConfig(r: XdsResources): BuildResult {
  const errors: string[] = [];
  const collect = <T>(items: readonly Obj[], kind: string, fn: (o: Obj, at: string) => [string, T]): Map<string, T> => {
    const out = new Map<string, T>();
    for (const o of items) {
      const at = `${kind} ${JSON.stringify(o.name ?? o.cluster_name ?? '?')}`;
      try {
        const [name, value] = fn(o, at);
        out.set(name, value);
      } catch (err) {
        if (!(err instanceof Invalid)) throw err;
        errors.push(err.message);
      }
    }
    return out;
  };
  const listeners = collect(r.listeners, 'Listener', (o, at) => [o.name, listener(o, at)]);
  const routeTables = collect(r.routes, 'RouteConfiguration', (o, at) => [o.name, routeTable(o, at)]);
  const clusters = collect(r.clusters, 'Cluster', (o, at) => [o.name, cluster(o, at)]);
  const endpoints = collect(r.assignments, 'ClusterLoadAssignment', (o, at) => [o.cluster_name, lbEndpoints(o, at)]);
  if (errors.length) return { ok: false, errors };
  return { ok: true, config: { listeners, routeTables, clusters, endpoints } };
}

function listener(o: Obj, at: string): HttpListener {
  if (!o.name) invalid(at, 'name is required');
  const sa = o.address?.socket_address;
  if (!sa?.address || !sa.port_value) invalid(at, 'address.socket_address with address and port_value is required (API listeners are for proxyless clients)');
  const chains = o.filter_chains ?? [];
  if (chains.length !== 1) invalid(at, `exactly one filter chain is supported, got ${chains.length}`);
  const filters = chains[0].filters ?? [];
  const hcm = filters[0]?.typed_config;
  if (filters.length !== 1 || hcm?.['@type'] !== TypeUrl.HttpConnectionManager) {
    invalid(`${at}.filter_chains[0]`, 'only a single HTTP connection manager filter is supported');
  }
  const httpFilters: Obj[] = hcm.http_filters ?? [];
  const last = httpFilters[httpFilters.length - 1];
  if (last?.typed_config?.['@type'] !== TypeUrl.Router) invalid(`${at}.http_filters`, 'the router filter must be last');
  for (const f of httpFilters.slice(0, -1)) {
    if (!f.is_optional) invalid(`${at}.http_filters`, `filter ${f.name} is not supported by this sidecar`);
  }
  let routes: HttpListener['routes'];
  if (hcm.rds?.route_config_name) routes = { kind: 'rds', name: hcm.rds.route_config_name };
  else if (hcm.route_config) routes = { kind: 'inline', table: routeTable(hcm.route_config, `${at}.route_config`) };
  else return invalid(at, 'the HTTP connection manager needs rds or route_config');
  return {
    name: o.name,
    direction: o.traffic_direction === 'INBOUND' ? 'inbound' : 'outbound',
    address: sa.address,
    port: Number(sa.port_value),
    routes,
  };
}

function routeTable(o: Obj, at: string): RouteTable {
  if (!o.name) invalid(at, 'name is required');
  const virtualHosts: VirtualHost[] = (o.virtual_hosts ?? []).map((v: Obj, i: number) => {
    const vat = `${at}.virtual_hosts[${i}]`;
    const domains: string[] = (v.domains ?? []).map((d: string) => d.toLowerCase());
    if (!domains.length) invalid(vat, 'domains must not be empty');
    return {
      name: v.name ?? '',
      domains,
      routes: (v.routes ?? []).map((r: Obj, j: number) => route(r, `${vat}.routes[${j}]${r.name ? ` (route ${JSON.stringify(r.name)})` : ''}`)),
    };
  });
  return { name: o.name, virtualHosts };
}

function route(o: Obj, at: string): Route {
  const m = o.match ?? invalid(at, 'match is required');
  // case_sensitive is a BoolValue: absent means true.
  if (m.case_sensitive && !m.case_sensitive.value) invalid(`${at}.match`, 'case-insensitive matching is not supported by this sidecar');
  if (m.query_parameters?.length) invalid(`${at}.match.query_parameters`, 'not supported by this sidecar version');
  let path: PathMatcher;
  if (m.prefix !== undefined) path = { kind: 'prefix', value: m.prefix };
  else if (m.path !== undefined) path = { kind: 'exact', value: m.path };
  else if (m.safe_regex) path = { kind: 'regex', value: m.safe_regex.regex, re: compile(m.safe_regex.regex, `${at}.match.safe_regex`) };
  else return invalid(`${at}.match`, 'a prefix, path or safe_regex is required');
  const headers = (m.headers ?? []).map((h: Obj, i: number) => header(h, `${at}.match.headers[${i}]`));
  const timeout = o.route?.timeout ? durationMs(o.route.timeout) : undefined;
  return { name: o.name ?? '', match: { path, headers }, action: action(o, at), ...(timeout ? { timeoutMs: timeout } : {}) };
}

function action(o: Obj, at: string): RouteAction {
  if (o.direct_response) {
    return { kind: 'direct-response', status: o.direct_response.status, body: o.direct_response.body?.inline_string ?? '' };
  }
  const r = o.route ?? invalid(at, 'a route or direct_response action is required');
  if (r.retry_policy || r.request_mirror_policies?.length) invalid(`${at}.route`, 'retries and mirroring are not supported by this sidecar version');
  if (r.prefix_rewrite || r.regex_rewrite || r.host_rewrite_literal || r.hash_policy?.length) invalid(`${at}.route`, 'rewrites and hash policies are not supported by this sidecar version');
  if (r.cluster) return { kind: 'cluster', cluster: r.cluster };
  if (r.weighted_clusters) {
    const clusters = (r.weighted_clusters.clusters ?? []).map((c: Obj) => ({ cluster: c.name, weight: Number(c.weight?.value ?? 0) }));
    const totalWeight = clusters.reduce((s: number, c: { weight: number }) => s + c.weight, 0);
    if (totalWeight <= 0) invalid(`${at}.route.weighted_clusters`, 'the weights must add up to more than 0');
    return { kind: 'weighted', clusters, totalWeight };
  }
  return invalid(`${at}.route`, 'a cluster or weighted_clusters is required');
}

function header(h: Obj, at: string): HeaderMatcher {
  const name = String(h.name ?? '').toLowerCase();
  if (!name) invalid(at, 'name is required');
  const invert = Boolean(h.invert_match);
  const sm = h.string_match ?? (h.exact_match !== undefined ? { exact: h.exact_match } : h.prefix_match !== undefined ? { prefix: h.prefix_match } : h.safe_regex_match ? { safe_regex: h.safe_regex_match } : undefined);
  if (h.present_match !== undefined) return { name, kind: 'present', present: Boolean(h.present_match), invert };
  if (!sm) return invalid(at, 'an exact, prefix, safe_regex or present match is required');
  if (sm.ignore_case) invalid(at, 'ignore_case is not supported by this sidecar version');
  if (sm.exact !== undefined) return { name, kind: 'exact', value: sm.exact, invert };
  if (sm.prefix !== undefined) return { name, kind: 'prefix', value: sm.prefix, invert };
  if (sm.safe_regex) return { name, kind: 'regex', value: sm.safe_regex.regex, re: compile(sm.safe_regex.regex, at), invert };
  return invalid(at, 'unsupported string match');
}

/**
 * Regexes are RE2 syntax on the wire (as Envoy and gRPC read them). The sidecar evaluates them
 * with ECMAScript's engine in Unicode mode, full-match; RE2 constructs it cannot express (inline
 * flags such as `(?i)`, `\z`, POSIX classes) are rejected rather than matched differently.
 */
function compile(source: unknown, at: string): RegExp {
  if (typeof source !== 'string' || source === '') return invalid(at, 'regex is required');
  try {
    return new RegExp(`^(?:${source})$`, 'u');
  } catch (err) {
    return invalid(at, `regex ${JSON.stringify(source)} is not supported by this sidecar: ${(err as Error).message}`);
  }
}

const LB: Record<string, LbPolicy> = { ROUND_ROBIN: 'ROUND_ROBIN', LEAST_REQUEST: 'LEAST_REQUEST', RANDOM: 'RANDOM' };

function cluster(o: Obj, at: string): Cluster {
  if (!o.name) invalid(at, 'name is required');
  const type = o.type ?? 'STATIC';
  if (type !== 'EDS' && type !== 'STATIC') invalid(at, `discovery type ${type} is not supported (EDS or STATIC)`);
  const lbPolicy = LB[o.lb_policy ?? 'ROUND_ROBIN'] ?? invalid(at, `lb_policy ${o.lb_policy} is not supported`);
  if (o.transport_socket) invalid(at, 'transport_socket (TLS) is not supported by this sidecar version');
  return {
    name: o.name,
    discovery: type,
    edsServiceName: o.eds_cluster_config?.service_name || o.name,
    lbPolicy,
    connectTimeoutMs: o.connect_timeout ? durationMs(o.connect_timeout) : 1000,
    staticEndpoints: type === 'STATIC' ? lbEndpoints(o.load_assignment ?? {}, `${at}.load_assignment`) : [],
  };
}

function lbEndpoints(o: Obj, at: string): Endpoint[] {
  const out: Endpoint[] = [];
  (o.endpoints ?? []).forEach((locality: Obj, i: number) => {
    (locality.lb_endpoints ?? []).forEach((e: Obj, j: number) => {
      const eat = `${at}.endpoints[${i}].lb_endpoints[${j}]`;
      const sa = e.endpoint?.address?.socket_address;
      if (!sa?.address || !sa.port_value) invalid(eat, 'endpoint.address.socket_address with address and port_value is required');
      // google.protobuf.Value decodes with protobufjs's camelCase well-known names (numberValue).
      const target = e.metadata?.filter_metadata?.['weft.dev']?.fields?.target_port?.numberValue;
      const status = e.health_status ?? 'UNKNOWN';
      out.push({
        address: sa.address,
        port: Number(sa.port_value),
        weight: Number(e.load_balancing_weight?.value ?? 1),
        healthy: status === 'HEALTHY' || status === 'UNKNOWN',
        ...(typeof target === 'number' ? { targetPort: target } : {}),
      });
    });
  });
  return out;
}

function durationMs(d: Obj): number {
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}
