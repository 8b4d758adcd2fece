/**
 * xDS resources (decoded protos) → a validated, immutable `ProxyConfig`, or error strings that
 * become the NACK's `error_detail`. The data path never sees a proto. Anything whose meaning we
 * cannot honour is an error, not silently dropped: routing differently from what the control plane
 * intended is worse than keeping the last good config. Unknown fields are ignored (version skew).
 */
import { X509Certificate } from 'node:crypto';
import { TypeUrl } from '@weft/api';
import type {
  Cluster, Endpoint, FaultPolicy, HeaderMatcher, HttpListener, MirrorPolicy, TcpListener, PathMatcher, ProxyConfig, RetryCondition, RetryPolicy, Route, RouteAction, RouteTable, TrustBundle, VirtualHost,
} from './config';
import { circuitBreakersOf, clusterTlsOf, lbPolicyOf, maxRequestsPerConnectionOf, outlierDetectionOf, transportMatchOf, type Parsed } from './cluster-from-xds';
import { listenerChainsOf } from './listener-from-xds';
import { tracingOf } from './trace-config';
import type { RbacEngine } from './authz-engine';
import { HTTP_RBAC_TYPE, rbacEngineOf } from './authz-from-xds';
import { DEFAULT_BACKOFF_BASE_MS, DEFAULT_BUDGET, DEFAULT_BUFFER_LIMIT_BYTES, GRPC_CONDITIONS, RETRY_CONDITIONS } from './retry-policy';

type Obj = Record<string, any>;

export interface XdsResources {
  readonly listeners: readonly Obj[];
  readonly routes: readonly Obj[];
  readonly clusters: readonly Obj[];
  readonly assignments: readonly Obj[];
  /** SDS `Secret`s (validation contexts only: the trust bundle). */
  readonly secrets?: readonly Obj[];
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
  const all = collect(r.listeners, 'Listener', (o, at) => [o.name, listener(o, at)]);
  const listeners = new Map<string, HttpListener>();
  const tcpListeners = new Map<string, TcpListener>();
  for (const [name, l] of all) {
    if (l.kind === 'http') listeners.set(name, l.value);
    else tcpListeners.set(name, l.value);
  }
  const routeTables = collect(r.routes, 'RouteConfiguration', (o, at) => [o.name, routeTable(o, at)]);
  const clusters = collect(r.clusters, 'Cluster', (o, at) => [o.name, cluster(o, at)]);
  const endpoints = collect(r.assignments, 'ClusterLoadAssignment', (o, at) => [o.cluster_name, lbEndpoints(o, at)]);
  const trustBundles = collect(r.secrets ?? [], 'Secret', (o, at) => [o.name, trustBundleOf(o, at)]);
  if (errors.length) return { ok: false, errors };
  const workload = workloadOf(r.listeners);
  return { ok: true, config: { listeners, ...(tcpListeners.size ? { tcpListeners } : {}), routeTables, clusters, endpoints, ...(trustBundles.size ? { trustBundles } : {}), ...(workload ? { workload } : {}) } };
}

/**
 * An SDS Secret carrying a validation context: `trusted_ca.inline_string` must be one or more PEM
 * certificates that parse (a bad bundle would fail every handshake, so it is refused instead).
 * Certificates and keys never come over xDS (the key stays in the sidecar).
 */
function trustBundleOf(o: Obj, at: string): TrustBundle {
  if (!o.name) invalid(at, 'a Secret needs a name');
  if (o.tls_certificate || o.session_ticket_keys || o.generic_secret) invalid(at, 'only validation_context Secrets are supported (the workload certificate comes from the CA on 15012)');
  const ca = o.validation_context?.trusted_ca;
  if (!ca) invalid(`${at}.validation_context.trusted_ca`, 'required');
  if (ca.filename !== undefined || ca.inline_bytes !== undefined || ca.environment_variable !== undefined) {
    invalid(`${at}.validation_context.trusted_ca`, 'only inline_string is supported');
  }
  const pem = String(ca.inline_string ?? '');
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) invalid(`${at}.validation_context.trusted_ca.inline_string`, 'no PEM certificate');
  blocks.forEach((b, i) => {
    try {
      new X509Certificate(b);
    } catch (e) {
      invalid(`${at}.validation_context.trusted_ca.inline_string`, `certificate ${i + 1} does not parse: ${(e as Error).message}`);
    }
  });
  return { name: o.name, caPem: blocks.map((b) => `${b}\n`).join('') };
}

/** A listener with an HTTP connection manager (`http`) or with TCP proxies only (`tcp`). */
function listener(o: Obj, at: string): { kind: 'http'; value: HttpListener } | { kind: 'tcp'; value: TcpListener } {
  if (!o.name) invalid(at, 'name is required');
  const sa = o.address?.socket_address;
  if (!sa?.address || !sa.port_value) invalid(at, 'address.socket_address with address and port_value is required (API listeners are for proxyless clients)');
  // Filter chains, matches, TCP proxies and listener filters: listener-from-xds.ts.
  const parsed = listenerChainsOf(o, at);
  if (!parsed.ok) throw new Invalid(parsed.error);
  const { hcm: found, connections } = parsed.value;
  const base = {
    name: o.name as string,
    direction: (o.traffic_direction === 'INBOUND' ? 'inbound' : 'outbound') as HttpListener['direction'],
    address: sa.address as string,
    port: Number(sa.port_value),
  };
  if (!found) return { kind: 'tcp', value: { ...base, connections: connections! } };
  const hcm = found.config;
  const hat = at; // errors name the listener, as when it had one chain
  const httpFilters: Obj[] = hcm.http_filters ?? [];
  const last = httpFilters[httpFilters.length - 1];
  if (last?.typed_config?.['@type'] !== TypeUrl.Router) invalid(`${hat}.http_filters`, 'the router filter must be last');
  let faultFilter = false;
  const authz: RbacEngine[] = [];
  for (const f of httpFilters.slice(0, -1)) {
    if (f.typed_config?.['@type'] === HTTP_RBAC_TYPE) {
      // Authorization (authz-from-xds.ts): evaluated before routing, in filter order.
      const e = rbacEngineOf(f.typed_config, `${hat}.http_filters[${JSON.stringify(f.name)}]`);
      if (!e.ok) throw new Invalid(e.error);
      if (e.value) authz.push(e.value);
    } else if (f.typed_config?.['@type'] === TypeUrl.HttpFault) {
      // Faults are configured per route; a listener-wide fault would apply to every route.
      const top = faultPolicy(f.typed_config, `${hat}.http_filters[${JSON.stringify(f.name)}]`);
      if (top) invalid(`${hat}.http_filters[${JSON.stringify(f.name)}]`, 'a listener-wide delay or abort is not supported by this sidecar version (configure faults per route)');
      faultFilter = true;
    } else if (!f.is_optional) invalid(`${hat}.http_filters`, `filter ${f.name} is not supported by this sidecar`);
  }
  let routes: HttpListener['routes'];
  if (hcm.rds?.route_config_name) routes = { kind: 'rds', name: hcm.rds.route_config_name };
  else if (hcm.route_config) routes = { kind: 'inline', table: routeTable(hcm.route_config, `${hat}.route_config`) };
  else return invalid(hat, 'the HTTP connection manager needs rds or route_config');
  // Tracing (trace-config.ts): the OpenTelemetry provider and sampling.
  const tracing = tracingOf(hcm.tracing, `${hat}.tracing`);
  if (!tracing.ok) throw new Invalid(tracing.error);
  return {
    kind: 'http',
    value: {
      ...base,
      ...(faultFilter ? { faultFilter } : {}),
      ...(authz.length ? { authz } : {}),
      ...(tracing.value ? { tracing: tracing.value } : {}),
      routes,
      ...(connections ? { connections } : {}),
    },
  };
}

function routeTable(o: Obj, at: string): RouteTable {
  if (!o.name) invalid(at, 'name is required');
  const virtualHosts: VirtualHost[] = (o.virtual_hosts ?? []).map((v: Obj, i: number) => {
    const vat = `${at}.virtual_hosts[${i}]`;
    const domains: string[] = (v.domains ?? []).map((d: string) => d.toLowerCase());
    if (!domains.length) invalid(vat, 'domains must not be empty');
    // Every route of one virtual host (one destination) draws on one retry budget.
    const scope = { budgetKey: `${o.name}/${v.name ?? i}`, vhostRetry: v.retry_policy as Obj | undefined, vhostBufferLimit: v.per_request_buffer_limit_bytes as Obj | undefined };
    return {
      name: v.name ?? '',
      domains,
      routes: (v.routes ?? []).map((r: Obj, j: number) => route(r, `${vat}.routes[${j}]${r.name ? ` (route ${JSON.stringify(r.name)})` : ''}`, scope)),
    };
  });
  return { name: o.name, virtualHosts };
}

interface RouteScope {
  readonly budgetKey: string;
  readonly vhostRetry: Obj | undefined;
  readonly vhostBufferLimit: Obj | undefined;
}

function route(o: Obj, at: string, scope: RouteScope): Route {
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
  const act = action(o, at);
  const retry = o.route ? retryPolicy(o, at, scope) : undefined;
  const fault = faultOf(o.typed_per_filter_config, at);
  const mirrors = o.route ? mirrorPolicies(o.route.request_mirror_policies, `${at}.route.request_mirror_policies`) : [];
  return {
    name: o.name ?? '',
    match: { path, headers },
    action: act,
    ...(timeout ? { timeoutMs: timeout } : {}),
    ...(retry ? { retry } : {}),
    ...(fault ? { fault } : {}),
    ...(mirrors.length ? { mirrors } : {}),
  };
}

/**
 * `typed_per_filter_config`: the fault filter's `HTTPFault` (by filter name or type); any other
 * filter's config is an error unless wrapped in an optional `FilterConfig`, which is skipped.
 */
function faultOf(configs: Obj | undefined, at: string): FaultPolicy | undefined {
  let fault: FaultPolicy | undefined;
  for (const [name, cfg] of Object.entries(configs ?? {})) {
    const fat = `${at}.typed_per_filter_config[${JSON.stringify(name)}]`;
    if (cfg?.['@type'] === TypeUrl.HttpFault) fault = faultPolicy(cfg, fat);
    else if (!(cfg?.['@type'] === FILTER_CONFIG && cfg.is_optional)) invalid(fat, `config of type ${cfg?.['@type']} is not supported by this sidecar`);
  }
  return fault;
}

const FILTER_CONFIG = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';

/** HTTPFault fields the sidecar does not implement: NACKed, as they would change who gets a fault. */
const UNSUPPORTED_FAULT_FIELDS = ['downstream_nodes', 'headers', 'upstream_cluster', 'response_rate_limit', 'max_active_faults', 'filter_metadata'];

/** Envoy's `HTTPFault`: a fixed delay and an HTTP-status abort, each with a percentage; `undefined` when it has neither. */
function faultPolicy(o: Obj, at: string): FaultPolicy | undefined {
  for (const f of UNSUPPORTED_FAULT_FIELDS) {
    const v = o[f];
    if (v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0)) invalid(at, `${f} is not supported by this sidecar version`);
  }
  let delay: FaultPolicy['delay'];
  if (o.delay) {
    if (o.delay.header_delay) invalid(`${at}.delay`, 'header_delay is not supported by this sidecar version');
    if (!o.delay.fixed_delay) invalid(`${at}.delay`, 'fixed_delay is required');
    delay = { fixedDelayMs: durationMs(o.delay.fixed_delay), fraction: fractionOf(o.delay.percentage) };
  }
  let abort: FaultPolicy['abort'];
  if (o.abort) {
    if (o.abort.header_abort || o.abort.grpc_status !== undefined) invalid(`${at}.abort`, 'only http_status aborts are supported by this sidecar version');
    const status = Number(o.abort.http_status);
    if (!(status >= 200 && status < 600)) invalid(`${at}.abort.http_status`, 'must be between 200 and 599');
    abort = { httpStatus: status, fraction: fractionOf(o.abort.percentage) };
  }
  return delay || abort ? { ...(delay ? { delay } : {}), ...(abort ? { abort } : {}) } : undefined;
}

/** `RequestMirrorPolicy` list: a cluster and a runtime fraction (default 100%, as Envoy). */
function mirrorPolicies(list: Obj[] | undefined, at: string): MirrorPolicy[] {
  return (list ?? []).map((m, i) => {
    const mat = `${at}[${i}]`;
    if (m.cluster_header) invalid(mat, 'cluster_header is not supported by this sidecar version');
    if (!m.cluster) invalid(mat, 'cluster is required');
    const fraction = m.runtime_fraction?.default_value ? fractionOf(m.runtime_fraction.default_value) : 1;
    return { cluster: String(m.cluster), fraction };
  });
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** `FractionalPercent` → a probability; absent → 0 (Envoy's default numerator), capped at 1. */
function fractionOf(p: Obj | undefined): number {
  if (!p) return 0;
  const denominator = DENOMINATORS[String(p.denominator ?? 'HUNDRED')] ?? 100;
  return Math.min(1, Number(p.numerator ?? 0) / denominator);
}

/** RetryPolicy fields whose meaning this sidecar does not implement: NACKed, not ignored. */
const UNSUPPORTED_RETRY_FIELDS = [
  'retry_host_predicate', 'retry_priority', 'retriable_headers', 'retriable_request_headers',
  'rate_limited_retry_back_off', 'retry_options_predicates', 'per_try_idle_timeout',
];

/**
 * Envoy's `RouteAction.retry_policy` (or the virtual host's, for a route without one), with the
 * Route's `per_request_buffer_limit_bytes` as the replay buffer and Weft's extensions from route
 * metadata `filter_metadata["weft.dev"]`: `retry_budget {percent, min_retries_per_second}` and
 * `retry_non_idempotent` (docs/configuration.md, "Retries").
 */
function retryPolicy(o: Obj, at: string, scope: RouteScope): RetryPolicy | undefined {
  const p: Obj | undefined = o.route.retry_policy ?? scope.vhostRetry;
  if (!p) return undefined;
  const pat = `${at}.route.retry_policy`;
  for (const f of UNSUPPORTED_RETRY_FIELDS) {
    const v = p[f];
    if (v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0)) invalid(pat, `${f} is not supported by this sidecar version`);
  }
  const retryOn = new Set<RetryCondition>();
  for (const raw of String(p.retry_on ?? '').split(',')) {
    const c = raw.trim();
    if (!c) continue;
    if (!RETRY_CONDITIONS.has(c as RetryCondition)) invalid(`${pat}.retry_on`, `condition ${JSON.stringify(c)} is not supported by this sidecar version`);
    retryOn.add(c as RetryCondition);
  }
  const grpcStatuses = new Set<number>();
  for (const c of retryOn) if (GRPC_CONDITIONS[c] !== undefined) grpcStatuses.add(GRPC_CONDITIONS[c]!);
  const retriableStatusCodes = new Set<number>((p.retriable_status_codes ?? []).map(Number));
  for (const code of retriableStatusCodes) if (!(code >= 100 && code <= 599)) invalid(`${pat}.retriable_status_codes`, `${code} is not an HTTP status`);
  let baseMs = DEFAULT_BACKOFF_BASE_MS;
  let maxMs = DEFAULT_BACKOFF_BASE_MS * 10;
  const b = p.retry_back_off;
  if (b) {
    if (!b.base_interval) invalid(`${pat}.retry_back_off`, 'base_interval is required');
    baseMs = durationMs(b.base_interval);
    if (baseMs <= 0) invalid(`${pat}.retry_back_off.base_interval`, 'must be positive');
    maxMs = b.max_interval ? durationMs(b.max_interval) : baseMs * 10;
    if (maxMs < baseMs) invalid(`${pat}.retry_back_off.max_interval`, 'must not be less than base_interval');
  }
  const weft: Obj = o.metadata?.filter_metadata?.['weft.dev']?.fields ?? {};
  const rb: Obj | undefined = weft.retry_budget?.structValue?.fields;
  const percent = rb?.percent?.numberValue ?? DEFAULT_BUDGET.percent;
  const minRetriesPerSecond = rb?.min_retries_per_second?.numberValue ?? DEFAULT_BUDGET.minRetriesPerSecond;
  if (!(percent >= 0 && percent <= 100)) invalid(`${at}.metadata.weft.dev.retry_budget.percent`, 'must be between 0 and 100');
  if (!(minRetriesPerSecond >= 0)) invalid(`${at}.metadata.weft.dev.retry_budget.min_retries_per_second`, 'must be >= 0');
  const limit = o.per_request_buffer_limit_bytes ?? scope.vhostBufferLimit;
  return {
    retryOn,
    numRetries: Number(p.num_retries?.value ?? 1), // Envoy's default when the field is unset
    perTryTimeoutMs: p.per_try_timeout ? durationMs(p.per_try_timeout) : 0,
    retriableStatusCodes,
    grpcStatuses,
    backoff: { baseMs, maxMs },
    bufferLimitBytes: limit?.value !== undefined ? Number(limit.value) : DEFAULT_BUFFER_LIMIT_BYTES,
    retryNonIdempotent: weft.retry_non_idempotent?.boolValue === true,
    budget: { key: scope.budgetKey, percent, minRetriesPerSecond },
  };
}

function action(o: Obj, at: string): RouteAction {
  if (o.direct_response) {
    return { kind: 'direct-response', status: o.direct_response.status, body: o.direct_response.body?.inline_string ?? '' };
  }
  const r = o.route ?? invalid(at, 'a route or direct_response action is required');
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

function cluster(o: Obj, at: string): Cluster {
  if (!o.name) invalid(at, 'name is required');
  const type = o.type ?? 'STATIC';
  if (type !== 'EDS' && type !== 'STATIC' && type !== 'ORIGINAL_DST') invalid(at, `discovery type ${type} is not supported (EDS, STATIC or ORIGINAL_DST)`);
  if (type === 'ORIGINAL_DST') {
    // Envoy's PassthroughCluster: the connection's original destination is the endpoint (TCP proxies only).
    if (o.lb_policy !== 'CLUSTER_PROVIDED') invalid(at, 'an ORIGINAL_DST cluster needs lb_policy CLUSTER_PROVIDED');
    if (o.transport_socket) invalid(at, 'transport_socket (TLS) is not supported by this sidecar version');
    return { name: o.name, discovery: 'ORIGINAL_DST', edsServiceName: o.name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: o.connect_timeout ? durationMs(o.connect_timeout) : 1000, staticEndpoints: [] };
  }
  // Load balancing, outlier detection and pool limits: cluster-from-xds.ts.
  const value = <T>(r: Parsed<T>): T => (r.ok ? r.value : invalid(at, r.error));
  // TLS: the cluster's transport socket and auto-mTLS matches (cluster-from-xds.ts).
  const transport = value(clusterTlsOf(o, at));
  const lb = value(lbPolicyOf(o));
  const outlierDetection = value(outlierDetectionOf(o));
  const circuitBreakers = value(circuitBreakersOf(o));
  const maxRequestsPerConnection = value(maxRequestsPerConnectionOf(o));
  return {
    name: o.name,
    discovery: type,
    edsServiceName: o.eds_cluster_config?.service_name || o.name,
    lbPolicy: lb.lbPolicy,
    connectTimeoutMs: o.connect_timeout ? durationMs(o.connect_timeout) : 1000,
    staticEndpoints: type === 'STATIC' ? lbEndpoints(o.load_assignment ?? {}, `${at}.load_assignment`) : [],
    ...(lb.peakEwma ? { peakEwma: lb.peakEwma } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(circuitBreakers ? { circuitBreakers } : {}),
    ...(maxRequestsPerConnection > 0 ? { maxRequestsPerConnection } : {}),
    ...transport,
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
      const weft = e.metadata?.filter_metadata?.['weft.dev']?.fields;
      const target = weft?.target_port?.numberValue;
      // The pod behind the endpoint (metric labels); bounded: a name, never an address.
      const workload = weft?.workload?.stringValue;
      const namespace = weft?.namespace?.stringValue;
      const transportMatch = transportMatchOf(e.metadata);
      const status = e.health_status ?? 'UNKNOWN';
      out.push({
        address: sa.address,
        port: Number(sa.port_value),
        weight: Number(e.load_balancing_weight?.value ?? 1),
        healthy: status === 'HEALTHY' || status === 'UNKNOWN',
        ...(typeof target === 'number' ? { targetPort: target } : {}),
        ...(transportMatch ? { transportMatch } : {}),
        ...(typeof workload === 'string' && workload ? { workload } : {}),
        ...(typeof namespace === 'string' && namespace ? { namespace } : {}),
      });
    });
  });
  return out;
}

/** This sidecar's workload: the `weft.dev` `workload` metadata of an inbound listener (the control plane's `virtualInbound`), for metric labels. */
function workloadOf(listeners: readonly Obj[]): string | undefined {
  for (const o of listeners) {
    const w = o.metadata?.filter_metadata?.['weft.dev']?.fields?.workload?.stringValue;
    if (o.traffic_direction === 'INBOUND' && typeof w === 'string' && w) return w;
  }
  return undefined;
}

function durationMs(d: Obj): number {
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}
