/**
 * `buildProxyConfig`: decoded xDS resources → a validated `ProxyConfig`, or errors that name the
 * resource and the field (they become the NACK's error_detail). Every input is a real resource,
 * encoded with the xDS protos and decoded with `unpackAny`, as the xDS client hands them over.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeResource, TypeUrl } from '@weft/api';
import { buildProxyConfig, type XdsResources } from '../src/config-from-xds';
import type { ProxyConfig } from '../src/config';
import {
  assignmentXds, clusterXds, decoded, decodedBytes, hcm, lbEndpoint, listenerObject, listenerXds, resources, tcpListenerXds, tcpProxy,
  routeConfigObject, routeConfigXds, routeObject, ROUTER_FILTER, type Obj,
} from './xds-fixtures';

const BACKEND = 'backend.shop.svc.cluster.local';
const ALL = `outbound|80||${BACKEND}`;
const V1 = `outbound|80|v1|${BACKEND}`;
const V2 = `outbound|80|v2|${BACKEND}`;
const INBOUND = 'inbound|8080||';
// The weft.dev target_port metadata is a google.protobuf.Struct; protobufjs ships Struct/Value
// with camelCase field names (numberValue), which is how the control plane writes it.
const TARGET_PORT = { filter_metadata: { 'weft.dev': { fields: { target_port: { numberValue: 8080 } } } } };

/** An `Any` of a type the sidecar has no proto for, as another control plane might send. */
const foreignAny = (type: string): Obj => ({ type_url: `type.googleapis.com/${type}`, value: Buffer.from([0x0a, 0x01, 0x78]) });

function built(r: XdsResources): ProxyConfig {
  const result = buildProxyConfig(r);
  assert.ok(result.ok, `expected a config, got errors: ${result.ok ? '' : result.errors.join('; ')}`);
  return result.config;
}

function errorsOf(r: XdsResources): string[] {
  const result = buildProxyConfig(r);
  assert.equal(result.ok, false, 'expected the resources to be rejected');
  return result.ok ? [] : result.errors;
}

// ---- a valid sidecar config ----------------------------------------------------------------

function sidecarResources(): XdsResources {
  const inboundRoutes = routeConfigObject('inbound', [
    routeObject('port-8080', {
      match: { prefix: '/', headers: [{ name: 'x-weft-target-port', string_match: { exact: '8080' } }] },
      route: { cluster: INBOUND, timeout: { seconds: 0 } },
    }),
    { name: 'default', match: { prefix: '/' }, direct_response: { status: 404, body: { inline_string: 'no app port' } } },
  ]);
  return resources({
    listeners: [
      listenerXds('virtualOutbound', { address: '127.0.0.11', port: 15001, direction: 'OUTBOUND', routes: 'outbound' }),
      listenerXds('virtualInbound', { address: '127.0.0.11', port: 15006, direction: 'INBOUND', routes: inboundRoutes }),
    ],
    routes: [decoded(TypeUrl.RouteConfiguration, {
      name: 'outbound',
      virtual_hosts: [{
        name: `${BACKEND}:80`,
        domains: [BACKEND, 'Backend:80'],
        routes: [
          {
            name: 'canary-0',
            match: {
              safe_regex: { regex: '/v[0-9]+/.*' },
              headers: [{ name: ':method', string_match: { exact: 'GET' } }, { name: 'X-Beta', present_match: true }],
            },
            route: { cluster: V2, timeout: { seconds: 3, nanos: 500_000_000 } },
          },
          { name: 'health', match: { path: '/healthz' }, direct_response: { status: 200, body: { inline_string: 'ok' } } },
          {
            name: 'default',
            match: { prefix: '/' },
            route: { weighted_clusters: { clusters: [{ name: V1, weight: { value: 90 } }, { name: V2, weight: { value: 10 } }] } },
          },
        ],
      }],
    })],
    clusters: [
      clusterXds(ALL, { lb_policy: 'LEAST_REQUEST' }),
      clusterXds(V1, { eds_cluster_config: { eds_config: { ads: {} } }, connect_timeout: undefined }),
      decoded(TypeUrl.Cluster, {
        name: INBOUND,
        type: 'STATIC',
        connect_timeout: { nanos: 250_000_000 },
        lb_policy: 'ROUND_ROBIN',
        load_assignment: { cluster_name: INBOUND, endpoints: [{ lb_endpoints: [lbEndpoint('127.0.0.11', 8080)] }] },
      }),
    ],
    assignments: [assignmentXds(ALL, [
      lbEndpoint('127.0.0.21', 15006, { health_status: 'HEALTHY', load_balancing_weight: { value: 3 }, metadata: TARGET_PORT }),
      lbEndpoint('127.0.0.22', 8080, { health_status: 'UNHEALTHY' }),
      lbEndpoint('127.0.0.23', 8080),
    ])],
  });
}

const prefixAll = { kind: 'prefix', value: '/' } as const;

const EXPECTED: ProxyConfig = {
  listeners: new Map([
    ['virtualOutbound', { name: 'virtualOutbound', direction: 'outbound', address: '127.0.0.11', port: 15001, routes: { kind: 'rds', name: 'outbound' } }],
    ['virtualInbound', {
      name: 'virtualInbound',
      direction: 'inbound',
      address: '127.0.0.11',
      port: 15006,
      routes: {
        kind: 'inline',
        table: {
          name: 'inbound',
          virtualHosts: [{
            name: 'vh',
            domains: ['*'],
            routes: [
              {
                name: 'port-8080',
                match: { path: prefixAll, headers: [{ name: 'x-weft-target-port', kind: 'exact', value: '8080', invert: false }] },
                action: { kind: 'cluster', cluster: INBOUND },
              },
              { name: 'default', match: { path: prefixAll, headers: [] }, action: { kind: 'direct-response', status: 404, body: 'no app port' } },
            ],
          }],
        },
      },
    }],
  ]),
  routeTables: new Map([['outbound', {
    name: 'outbound',
    virtualHosts: [{
      name: `${BACKEND}:80`,
      domains: [BACKEND, 'backend:80'],
      routes: [
        {
          name: 'canary-0',
          match: {
            path: { kind: 'regex', value: '/v[0-9]+/.*', re: new RegExp('^(?:/v[0-9]+/.*)$', 'u') },
            headers: [
              { name: ':method', kind: 'exact', value: 'GET', invert: false },
              { name: 'x-beta', kind: 'present', present: true, invert: false },
            ],
          },
          action: { kind: 'cluster', cluster: V2 },
          timeoutMs: 3500,
        },
        { name: 'health', match: { path: { kind: 'exact', value: '/healthz' }, headers: [] }, action: { kind: 'direct-response', status: 200, body: 'ok' } },
        {
          name: 'default',
          match: { path: prefixAll, headers: [] },
          action: { kind: 'weighted', clusters: [{ cluster: V1, weight: 90 }, { cluster: V2, weight: 10 }], totalWeight: 100 },
        },
      ],
    }],
  }]]),
  clusters: new Map([
    [ALL, { name: ALL, discovery: 'EDS', edsServiceName: ALL, lbPolicy: 'LEAST_REQUEST', connectTimeoutMs: 1000, staticEndpoints: [] }],
    [V1, { name: V1, discovery: 'EDS', edsServiceName: V1, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, staticEndpoints: [] }],
    [INBOUND, {
      name: INBOUND,
      discovery: 'STATIC',
      edsServiceName: INBOUND,
      lbPolicy: 'ROUND_ROBIN',
      connectTimeoutMs: 250,
      staticEndpoints: [{ address: '127.0.0.11', port: 8080, weight: 1, healthy: true }],
    }],
  ]),
  endpoints: new Map([[ALL, [
    { address: '127.0.0.21', port: 15006, weight: 3, healthy: true, targetPort: 8080 },
    { address: '127.0.0.22', port: 8080, weight: 1, healthy: false },
    { address: '127.0.0.23', port: 8080, weight: 1, healthy: true },
  ]]]),
};

test('a sidecar config (RDS outbound, inline inbound, EDS and STATIC clusters, a peer endpoint with its app port) becomes the expected ProxyConfig', () => {
  assert.deepEqual(built(sidecarResources()), EXPECTED);
});

test('an endpoint whose health is unknown receives traffic; an unhealthy one does not', () => {
  const eps = built(sidecarResources()).endpoints.get(ALL)!;
  assert.deepEqual(eps.map((e) => `${e.address} ${e.healthy}`), ['127.0.0.21 true', '127.0.0.22 false', '127.0.0.23 true']);
});

test('an endpoint that is a peer sidecar carries its app port from weft.dev target_port metadata', () => {
  const config = built(resources({ assignments: [assignmentXds(ALL, [lbEndpoint('127.0.0.21', 15006, { metadata: TARGET_PORT })])] }));
  assert.deepEqual(config.endpoints.get(ALL), [{ address: '127.0.0.21', port: 15006, weight: 1, healthy: true, targetPort: 8080 }]);
});

// ---- rejections -----------------------------------------------------------------------------

interface Rejection {
  readonly what: string;
  readonly input: XdsResources;
  /** The error starts with this: the resource, then the field path. */
  readonly at: string;
  readonly reason: RegExp;
  readonly todo?: string;
}

const routeWith = (fields: Obj): XdsResources =>
  resources({ routes: [routeConfigXds('outbound', [routeObject('r1', fields)])] });

const REJECTIONS: Rejection[] = [
  {
    what: 'a listener without the router filter',
    input: resources({ listeners: [listenerXds('out', { filters: [{ name: 'hcm', typed_config: hcm('outbound', []) }] })] }),
    at: 'Listener "out".http_filters',
    reason: /router filter must be last/,
  },
  {
    what: 'a listener whose last HTTP filter is not the router',
    input: resources({ listeners: [listenerXds('out', { filters: [{ name: 'hcm', typed_config: hcm('outbound', [ROUTER_FILTER, { name: 'envoy.filters.http.lua', typed_config: foreignAny('envoy.extensions.filters.http.lua.v3.Lua') }]) }] })] }),
    at: 'Listener "out".http_filters',
    reason: /router filter must be last/,
  },
  {
    what: 'a listener with a required HTTP filter the sidecar does not have',
    input: resources({ listeners: [listenerXds('out', { filters: [{ name: 'hcm', typed_config: hcm('outbound', [{ name: 'envoy.filters.http.lua', typed_config: foreignAny('envoy.extensions.filters.http.lua.v3.Lua') }, ROUTER_FILTER]) }] })] }),
    at: 'Listener "out".http_filters',
    reason: /filter envoy\.filters\.http\.lua is not supported/,
  },
  {
    what: 'a listener whose network filter is neither an HTTP connection manager nor a TCP proxy',
    input: resources({ listeners: [listenerXds('redis', { filters: [{ name: 'envoy.filters.network.redis_proxy', typed_config: foreignAny('envoy.extensions.filters.network.redis_proxy.v3.RedisProxy') }] })] }),
    at: 'Listener "redis".filter_chains[0]',
    reason: /network filter envoy\.filters\.network\.redis_proxy is not supported/,
  },
  {
    what: 'a listener with an HTTP connection manager and a second network filter',
    input: resources({ listeners: [listenerXds('two', { filters: [
      { name: 'hcm', typed_config: hcm('outbound') },
      { name: 'envoy.filters.network.tcp_proxy', typed_config: tcpProxy({ cluster: 'db' }) },
    ] })] }),
    at: 'Listener "two".filter_chains[0]',
    reason: /exactly one network filter/,
  },
  {
    what: 'a tcp_proxy with a field this sidecar does not implement (tunneling_config)',
    input: resources({ listeners: [tcpListenerXds('tcp', tcpProxy({ cluster: 'db', tunneling_config: { hostname: 'x:1' } }))] }),
    at: 'Listener "tcp".filter_chains[0].filters[0]',
    reason: /tunneling_config is not supported/,
  },
  {
    what: 'a tcp_proxy without a cluster',
    input: resources({ listeners: [tcpListenerXds('tcp', tcpProxy({}))] }),
    at: 'Listener "tcp".filter_chains[0].filters[0]',
    reason: /needs cluster or weighted_clusters/,
  },
  {
    what: 'a filter chain matching on server_names (SNI)',
    input: resources({ listeners: [tcpListenerXds('tcp', tcpProxy({ cluster: 'db' }), { server_names: ['db.example'] })] }),
    at: 'Listener "tcp".filter_chains[0].filter_chain_match',
    reason: /server_names is not supported/,
  },
  {
    what: 'two HTTP filter chains with different connection managers',
    input: resources({ listeners: [decoded(TypeUrl.Listener, {
      ...listenerObject('two'),
      filter_chains: [
        { filter_chain_match: { destination_port: { value: 80 } }, filters: [{ name: 'hcm', typed_config: hcm('outbound') }] },
        { filters: [{ name: 'hcm', typed_config: hcm('other') }] },
      ],
    })] }),
    at: 'Listener "two".filter_chains[1]',
    reason: /one HTTP connection manager per listener/,
  },
  {
    what: 'a listener filter the sidecar does not have',
    input: resources({ listeners: [decoded(TypeUrl.Listener, { ...listenerObject('out'), listener_filters: [{ name: 'envoy.filters.listener.original_src', typed_config: foreignAny('envoy.extensions.filters.listener.original_src.v3.OriginalSrc') }] })] }),
    at: 'Listener "out".listener_filters[0]',
    reason: /listener filter envoy\.filters\.listener\.original_src is not supported/,
  },
  {
    what: 'a listener that does not bind its port (bind_to_port false)',
    input: resources({ listeners: [decoded(TypeUrl.Listener, { ...listenerObject('db'), bind_to_port: { value: false } })] }),
    at: 'Listener "db"',
    reason: /bind_to_port false is not supported/,
  },
  {
    what: 'an ORIGINAL_DST cluster without lb_policy CLUSTER_PROVIDED',
    input: resources({ clusters: [clusterXds('PassthroughCluster', { type: 'ORIGINAL_DST', eds_cluster_config: null })] }),
    at: 'Cluster "PassthroughCluster"',
    reason: /needs lb_policy CLUSTER_PROVIDED/,
  },
  {
    what: 'an API listener (meant for proxyless gRPC) sent to a sidecar',
    input: resources({ listeners: [decoded(TypeUrl.Listener, { name: `${BACKEND}:80`, api_listener: { api_listener: hcm(`${BACKEND}:80`) } })] }),
    at: `Listener "${BACKEND}:80"`,
    reason: /address\.socket_address .*required.*API listeners/,
  },
  {
    what: 'a route whose regex uses the RE2 inline flag (?i)',
    input: routeWith({ match: { safe_regex: { regex: '(?i)/api/.*' } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").match.safe_regex',
    reason: /regex "\(\?i\)\/api\/\.\*" is not supported/,
  },
  {
    what: 'an inline route (in a listener) whose regex uses (?i)',
    input: resources({ listeners: [listenerXds('in', { routes: routeConfigObject('inbound', [routeObject('r1', { match: { safe_regex: { regex: '(?i)x' } } })]) })] }),
    at: 'Listener "in".route_config.virtual_hosts[0].routes[0] (route "r1").match.safe_regex',
    reason: /regex "\(\?i\)x" is not supported/,
  },
  {
    what: 'a header regex using (?i)',
    input: routeWith({ match: { prefix: '/', headers: [{ name: 'x-a', string_match: { safe_regex: { regex: '(?i)yes' } } }] } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").match.headers[0]',
    reason: /regex "\(\?i\)yes" is not supported/,
  },
  {
    what: 'a case-insensitive path match (case_sensitive: false)',
    input: routeWith({ match: { prefix: '/API', case_sensitive: { value: false } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").match',
    reason: /case-insensitive matching is not supported/,
  },
  {
    what: 'a header match with ignore_case',
    input: routeWith({ match: { prefix: '/', headers: [{ name: 'x-a', string_match: { exact: 'Yes', ignore_case: true } }] } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").match.headers[0]',
    reason: /ignore_case is not supported/,
  },
  {
    what: 'weighted clusters whose weights add up to 0',
    input: routeWith({ route: { weighted_clusters: { clusters: [{ name: V1, weight: { value: 0 } }, { name: V2, weight: { value: 0 } }] } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").route.weighted_clusters',
    reason: /weights must add up to more than 0/,
  },
  {
    what: 'a retry policy with a retry_on condition the sidecar does not implement',
    input: routeWith({ route: { cluster: ALL, retry_policy: { retry_on: '5xx,retriable-4xx', num_retries: { value: 2 } } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").route.retry_policy.retry_on',
    reason: /condition "retriable-4xx" is not supported/,
  },
  {
    what: 'a retry policy with a host predicate',
    input: routeWith({ route: { cluster: ALL, retry_policy: { retry_on: '5xx', retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts' }] } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").route.retry_policy',
    reason: /retry_host_predicate is not supported/,
  },
  {
    what: 'a retry backoff whose max_interval is below base_interval',
    input: routeWith({ route: { cluster: ALL, retry_policy: { retry_on: '5xx', retry_back_off: { base_interval: { seconds: 1 }, max_interval: { nanos: 10_000_000 } } } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").route.retry_policy.retry_back_off.max_interval',
    reason: /must not be less than base_interval/,
  },
  {
    what: 'a mirror policy that picks its cluster from a header',
    input: routeWith({ route: { cluster: ALL, request_mirror_policies: [{ cluster_header: 'x-shadow' }] } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").route.request_mirror_policies[0]',
    reason: /cluster_header is not supported/,
  },
  {
    what: 'a fault that aborts with a gRPC status',
    input: routeWith({ typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', abort: { grpc_status: 14, percentage: { numerator: 1 } } } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").typed_per_filter_config["envoy.filters.http.fault"].abort',
    reason: /only http_status aborts/,
  },
  {
    what: 'a fault limited to some downstream nodes',
    input: routeWith({ typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', downstream_nodes: ['a'], abort: { http_status: 503, percentage: { numerator: 1 } } } } }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0].routes[0] (route "r1").typed_per_filter_config["envoy.filters.http.fault"]',
    reason: /downstream_nodes is not supported/,
  },
  {
    what: 'a listener-wide fault',
    input: resources({ listeners: [listenerXds('out', { filters: [{ name: 'hcm', typed_config: hcm('outbound', [{ name: 'envoy.filters.http.fault', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', abort: { http_status: 503, percentage: { numerator: 1 } } } }, ROUTER_FILTER]) }] })] }),
    at: 'Listener "out".http_filters["envoy.filters.http.fault"]',
    reason: /listener-wide delay or abort is not supported/,
  },
  {
    what: 'a virtual host without domains',
    input: resources({ routes: [routeConfigXds('outbound', [routeObject('r1')], [])] }),
    at: 'RouteConfiguration "outbound".virtual_hosts[0]',
    reason: /domains must not be empty/,
  },
  {
    what: 'a LOGICAL_DNS cluster',
    input: resources({ clusters: [clusterXds('dns', { type: 'LOGICAL_DNS', eds_cluster_config: undefined })] }),
    at: 'Cluster "dns"',
    reason: /discovery type LOGICAL_DNS is not supported/,
  },
  {
    what: 'a cluster with a RING_HASH lb_policy',
    input: resources({ clusters: [clusterXds('ring', { lb_policy: 'RING_HASH' })] }),
    at: 'Cluster "ring"',
    reason: /lb_policy RING_HASH is not supported/,
  },
  {
    what: 'a cluster with a MAGLEV lb_policy',
    input: resources({ clusters: [clusterXds('maglev', { lb_policy: 'MAGLEV' })] }),
    at: 'Cluster "maglev"',
    reason: /lb_policy MAGLEV is not supported/,
  },
  {
    what: 'a cluster with a TLS transport_socket carrying inline certificates (SDS names only)',
    input: resources({ clusters: [clusterXds('tls', { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_certificates: [{ certificate_chain: { inline_string: 'x' } }] } } } })] }),
    at: 'Cluster "tls"',
    reason: /common_tls_context.tls_certificates is not supported by this sidecar \(SDS names only\)/,
  },
  {
    what: 'an endpoint without a port',
    input: resources({ assignments: [assignmentXds(ALL, [lbEndpoint('127.0.0.21', 0)])] }),
    at: `ClusterLoadAssignment "${ALL}".endpoints[0].lb_endpoints[0]`,
    reason: /port_value is required/,
  },
];

for (const c of REJECTIONS) {
  test(`rejects ${c.what}, naming the resource and field`, c.todo ? { todo: c.todo } : {}, () => {
    const errors = errorsOf(c.input);
    assert.equal(errors.length, 1, errors.join('\n'));
    const [error] = errors as [string];
    assert.ok(error.startsWith(`${c.at}: `), `expected the error to start with ${JSON.stringify(c.at + ': ')}, got ${JSON.stringify(error)}`);
    assert.match(error, c.reason);
  });
}

test('an optional HTTP filter the sidecar does not have is skipped, not rejected', () => {
  const filters = [{ name: 'envoy.filters.http.lua', is_optional: true, typed_config: foreignAny('envoy.extensions.filters.http.lua.v3.Lua') }, ROUTER_FILTER];
  const config = built(resources({ listeners: [listenerXds('out', { filters: [{ name: 'hcm', typed_config: hcm('outbound', filters) }] })] }));
  assert.deepEqual(config.listeners.get('out')?.routes, { kind: 'rds', name: 'outbound' });
});

test('every invalid resource is reported, not only the first, and nothing is half-applied', () => {
  const result = buildProxyConfig(resources({
    listeners: [listenerXds('good'), listenerXds('bad', { filters: [{ name: 'hcm', typed_config: hcm('outbound', []) }] })],
    routes: [routeConfigXds('outbound', [routeObject('r1', { match: { safe_regex: { regex: '(?i)x' } } })])],
    clusters: [clusterXds('ok'), clusterXds('dns', { type: 'LOGICAL_DNS' })],
  }));
  assert.equal(result.ok, false);
  const errors = result.ok ? [] : result.errors;
  assert.equal(errors.length, 3, errors.join('\n'));
  assert.ok(errors.some((e) => e.startsWith('Listener "bad"')));
  assert.ok(errors.some((e) => e.startsWith('RouteConfiguration "outbound"') && e.includes('(route "r1")')));
  assert.ok(errors.some((e) => e.startsWith('Cluster "dns"')));
  assert.ok(!('config' in result), 'a rejected set yields no partial config');
});

// ---- version skew ---------------------------------------------------------------------------

test('unknown fields from a newer control plane are ignored', () => {
  const bytes = encodeResource(TypeUrl.Listener, listenerObject('out', { direction: 'OUTBOUND' }));
  // Field 999, wire type 0 (varint), value 1: tag (999 << 3 | 0) = 7992 → varint b8 3e.
  const withVarint = Buffer.concat([bytes, Buffer.from([0xb8, 0x3e, 0x01])]);
  // Field 1000, wire type 2 (length-delimited), 3 bytes: tag (1000 << 3 | 2) = 8002 → varint c2 3e.
  const withBytes = Buffer.concat([bytes, Buffer.from([0xc2, 0x3e, 0x03, 0x61, 0x62, 0x63])]);
  const expected = built(resources({ listeners: [decodedBytes(TypeUrl.Listener, bytes)] }));
  for (const extended of [withVarint, withBytes]) {
    const config = built(resources({ listeners: [decodedBytes(TypeUrl.Listener, extended)] }));
    assert.deepEqual(config, expected);
  }
  assert.deepEqual(expected.listeners.get('out'), { name: 'out', direction: 'outbound', address: '127.0.0.1', port: 15001, routes: { kind: 'rds', name: 'outbound' } });
});

// ---- durations ------------------------------------------------------------------------------

const DURATIONS: { duration: Obj | undefined; routeTimeoutMs: number | undefined; connectTimeoutMs: number }[] = [
  { duration: { seconds: 3 }, routeTimeoutMs: 3000, connectTimeoutMs: 3000 },
  { duration: { seconds: 3, nanos: 500_000_000 }, routeTimeoutMs: 3500, connectTimeoutMs: 3500 },
  { duration: { nanos: 250_000_000 }, routeTimeoutMs: 250, connectTimeoutMs: 250 },
  { duration: { nanos: 1_600_000 }, routeTimeoutMs: 2, connectTimeoutMs: 2 },
  { duration: { seconds: 86_400 }, routeTimeoutMs: 86_400_000, connectTimeoutMs: 86_400_000 },
  // A zero route timeout means "none"; an absent connect timeout means the 1 s default.
  { duration: { seconds: 0 }, routeTimeoutMs: undefined, connectTimeoutMs: 1000 },
  { duration: undefined, routeTimeoutMs: undefined, connectTimeoutMs: 1000 },
];

for (const d of DURATIONS) {
  test(`a Duration of ${JSON.stringify(d.duration)} becomes ${d.routeTimeoutMs ?? 'no'} ms of route timeout`, () => {
    const r = built(resources({ routes: [routeConfigXds('outbound', [routeObject('r1', { route: { cluster: ALL, ...(d.duration ? { timeout: d.duration } : {}) } })])] }));
    assert.equal(r.routeTables.get('outbound')?.virtualHosts[0]?.routes[0]?.timeoutMs, d.routeTimeoutMs);
  });
}

test('a cluster connect_timeout Duration becomes milliseconds (1 s when absent)', () => {
  for (const d of DURATIONS) {
    if (d.duration && Number(d.duration.seconds ?? 0) === 0 && !d.duration.nanos) continue; // an explicit zero is a zero
    const c = built(resources({ clusters: [clusterXds('c', { connect_timeout: d.duration })] })).clusters.get('c');
    assert.equal(c?.connectTimeoutMs, d.connectTimeoutMs, JSON.stringify(d.duration));
  }
});

test('decoded Durations carry seconds as strings (int64), and still convert', () => {
  const route = decoded(TypeUrl.RouteConfiguration, routeConfigObject('outbound', [routeObject('r1', { route: { cluster: ALL, timeout: { seconds: 7, nanos: 5_000_000 } } })]));
  assert.deepEqual(route.virtual_hosts[0].routes[0].route.timeout, { seconds: '7', nanos: 5_000_000 });
  assert.equal(built(resources({ routes: [route] })).routeTables.get('outbound')?.virtualHosts[0]?.routes[0]?.timeoutMs, 7005);
});

// ---- retries ----------------------------------------------------------------------------------

test('a retry policy as the control plane sends it becomes a RetryPolicy, with Weft metadata for budget and opt-in', () => {
  const r = built(routeWith({
    route: {
      cluster: ALL,
      retry_policy: {
        retry_on: '5xx,gateway-error,reset,connect-failure,retriable-status-codes,unavailable,resource-exhausted',
        num_retries: { value: 3 },
        per_try_timeout: { seconds: 1 },
        retriable_status_codes: [503, 429],
        retry_back_off: { base_interval: { nanos: 25_000_000 }, max_interval: { nanos: 250_000_000 } },
      },
    },
    per_request_buffer_limit_bytes: { value: 1024 },
    metadata: { filter_metadata: { 'weft.dev': { fields: {
      retry_budget: { structValue: { fields: { percent: { numberValue: 30 }, min_retries_per_second: { numberValue: 5 } } } },
      retry_non_idempotent: { boolValue: true },
    } } } },
  }));
  const retry = r.routeTables.get('outbound')?.virtualHosts[0]?.routes[0]?.retry;
  assert.ok(retry);
  assert.deepEqual([...retry.retryOn], ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'unavailable', 'resource-exhausted']);
  assert.deepEqual([...retry.grpcStatuses], [14, 8]);
  assert.deepEqual([...retry.retriableStatusCodes], [503, 429]);
  assert.equal(retry.numRetries, 3);
  assert.equal(retry.perTryTimeoutMs, 1000);
  assert.deepEqual(retry.backoff, { baseMs: 25, maxMs: 250 });
  assert.equal(retry.bufferLimitBytes, 1024);
  assert.equal(retry.retryNonIdempotent, true);
  assert.deepEqual(retry.budget, { key: 'outbound/vh', percent: 30, minRetriesPerSecond: 5 });
});

test("a bare retry policy takes Envoy's defaults (1 retry, 25 ms backoff) and Weft's (64 KiB buffer, 20% + 10/s budget)", () => {
  const r = built(routeWith({ route: { cluster: ALL, retry_policy: { retry_on: 'connect-failure,refused-stream' } } }));
  const retry = r.routeTables.get('outbound')?.virtualHosts[0]?.routes[0]?.retry;
  assert.ok(retry);
  assert.equal(retry.numRetries, 1);
  assert.equal(retry.perTryTimeoutMs, 0);
  assert.deepEqual(retry.backoff, { baseMs: 25, maxMs: 250 });
  assert.equal(retry.bufferLimitBytes, 64 * 1024);
  assert.equal(retry.retryNonIdempotent, false);
  assert.deepEqual(retry.budget, { key: 'outbound/vh', percent: 20, minRetriesPerSecond: 10 });
  const none = built(routeWith({ route: { cluster: ALL } })).routeTables.get('outbound')?.virtualHosts[0]?.routes[0];
  assert.equal(none?.retry, undefined, 'no retry_policy, no retries (as Envoy)');
});

// ---- TCP: filter chains, tcp_proxy, listener filters -----------------------------------------

test('a listener whose only chain is a tcp_proxy becomes a TCP listener; a missing cluster is accepted (connections to it are refused, as Envoy)', () => {
  const config = built(resources({ listeners: [tcpListenerXds('0.0.0.0_2525', tcpProxy({ cluster: 'outbound|2525||nowhere', idle_timeout: { seconds: 30 } }))] }));
  assert.equal(config.listeners.size, 0);
  const l = config.tcpListeners?.get('0.0.0.0_2525');
  assert.deepEqual(l, {
    name: '0.0.0.0_2525', direction: 'outbound', address: '127.0.0.1', port: 2525,
    connections: {
      chains: [{ name: '', match: {}, filter: { kind: 'tcp', proxy: { statPrefix: 'tcp', target: { kind: 'cluster', cluster: 'outbound|2525||nowhere' }, idleTimeoutMs: 30_000 } } }],
      originalDst: false, proxyProtocol: false, detectTimeoutMs: 15_000, fallbackOnTimeout: false,
    },
  });
});

test('an HTTP chain matched on application protocols with a default TCP chain keeps the connection manager and adds the dispatch', () => {
  const listener = decoded(TypeUrl.Listener, {
    ...listenerObject('in', { direction: 'INBOUND' }),
    listener_filters: [
      { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } },
      { name: 'envoy.filters.listener.http_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector' } },
    ],
    listener_filters_timeout: { seconds: 1 },
    continue_on_listener_filters_timeout: true,
    filter_chains: [
      { name: 'db', filter_chain_match: { destination_port: { value: 3306 }, prefix_ranges: [{ address_prefix: '10.96.0.5', prefix_len: { value: 32 } }] }, filters: [{ name: 'tcp', typed_config: tcpProxy({ weighted_clusters: { clusters: [{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }] } }) }] },
      { name: 'http', filter_chain_match: { application_protocols: ['http/1.1', 'h2c'] }, filters: [{ name: 'hcm', typed_config: hcm('outbound') }] },
    ],
    default_filter_chain: { name: 'pass', filters: [{ name: 'tcp', typed_config: tcpProxy({ cluster: 'PassthroughCluster', idle_timeout: { seconds: 0 } }) }] },
  });
  const l = built(resources({ listeners: [listener] })).listeners.get('in')!;
  assert.deepEqual(l.routes, { kind: 'rds', name: 'outbound' });
  const c = l.connections!;
  assert.equal(c.originalDst, true);
  assert.equal(c.proxyProtocol, false);
  assert.equal(c.detectTimeoutMs, 1000);
  assert.equal(c.fallbackOnTimeout, true);
  assert.deepEqual(c.chains.map((x) => [x.name, x.match]), [
    ['db', { destinationPort: 3306, prefixRanges: [{ address: '10.96.0.5', prefixLen: 32 }] }],
    ['http', { applicationProtocols: ['http/1.1', 'h2c'] }],
  ]);
  assert.deepEqual(c.chains[0]!.filter, { kind: 'tcp', proxy: { statPrefix: 'tcp', target: { kind: 'weighted', clusters: [{ cluster: 'a', weight: 3 }, { cluster: 'b', weight: 1 }], totalWeight: 4 }, idleTimeoutMs: 3_600_000 } });
  assert.deepEqual(c.defaultChain?.filter, { kind: 'tcp', proxy: { statPrefix: 'tcp', target: { kind: 'cluster', cluster: 'PassthroughCluster' }, idleTimeoutMs: 0 } });
});

test('a listener with one unconditional HTTP chain has no dispatch: every connection is HTTP, as before', () => {
  assert.equal(built(resources({ listeners: [listenerXds('out')] })).listeners.get('out')!.connections, undefined);
});

test('an ORIGINAL_DST cluster (PassthroughCluster) is accepted with lb_policy CLUSTER_PROVIDED', () => {
  const c = built(resources({ clusters: [clusterXds('PassthroughCluster', { type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', eds_cluster_config: null })] })).clusters.get('PassthroughCluster');
  assert.equal(c?.discovery, 'ORIGINAL_DST');
});
