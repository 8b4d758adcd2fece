import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseNodeId, sidecarNodeId, TypeUrl } from '@weft/api';
import { translate } from '../src/translate';
import { encodeSnapshot } from '../src/snapshot-cache';
import { pod, policy, service, shop, split, SUBSETS, world } from './world-fixtures';

const FRONTEND = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'));
const PROXYLESS = parseNodeId('grpc-client-1');
const BACKEND = 'backend.shop.svc.cluster.local';

type Obj = Record<string, any>;
const get = (r: ReturnType<typeof translate>, type: string, name: string): Obj => {
  const v = r.get(type as never)?.get(name);
  assert.ok(v, `${type} ${name} missing; have ${[...(r.get(type as never)?.keys() ?? [])].join(', ')}`);
  return v as Obj;
};
const addresses = (cla: Obj): string[] =>
  cla.endpoints.flatMap((l: Obj) => l.lb_endpoints.map((e: Obj) => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value}`));

test('a Service without policy becomes one EDS cluster, its ready pods, and a catch-all route', () => {
  const objects = [...shop(), pod('backend-old', '127.0.0.29', { app: 'backend' }, { ready: false })];
  const r = translate(world(objects), FRONTEND);
  assert.equal(get(r, TypeUrl.Cluster, `outbound|80||${BACKEND}`).type, 'EDS');
  assert.deepEqual(addresses(get(r, TypeUrl.ClusterLoadAssignment, `outbound|80||${BACKEND}`)), ['127.0.0.21:8080', '127.0.0.22:8080']);
  const vhost = get(r, TypeUrl.RouteConfiguration, 'outbound').virtual_hosts.find((v: Obj) => v.name === `${BACKEND}:80`);
  assert.equal(vhost.routes.length, 1);
  const { metadata, ...route } = vhost.routes[0];
  assert.ok(metadata, 'the retry budget travels in route metadata (translate-retries.test.ts)');
  assert.deepEqual(route, {
    name: 'default',
    match: { prefix: '/' },
    // Weft's default retries (translate-retries.ts).
    route: { cluster: `outbound|80||${BACKEND}`, timeout: { seconds: 0 }, retry_policy: { retry_on: 'connect-failure,reset,unavailable,retriable-status-codes', num_retries: { value: 2 }, retriable_status_codes: [503] } },
  });
});

test('virtual host domains: FQDN and partial names with and without port 80; the short name only in the same namespace', () => {
  const objects = [...shop(), service('other', [{ port: 8080 }], { app: 'other' }, 'elsewhere')];
  const vhosts = get(translate(world(objects), FRONTEND), TypeUrl.RouteConfiguration, 'outbound').virtual_hosts;
  const backend = vhosts.find((v: Obj) => v.name === `${BACKEND}:80`).domains;
  for (const d of [BACKEND, `${BACKEND}:80`, 'backend.shop', 'backend:80', 'backend']) assert.ok(backend.includes(d), d);
  const other = vhosts.find((v: Obj) => v.name === 'other.elsewhere.svc.cluster.local:8080').domains;
  assert.ok(other.includes('other.elsewhere:8080'));
  assert.ok(!other.some((d: string) => d === 'other' || d === 'other:8080' || d === 'other.elsewhere'));
});

test('a TrafficPolicy adds one cluster per subset, endpoints by labels, and weighted clusters', () => {
  const objects = [...shop(), policy('backend', 'backend', [split(90, 10)], SUBSETS)];
  const r = translate(world(objects), FRONTEND);
  assert.deepEqual(addresses(get(r, TypeUrl.ClusterLoadAssignment, `outbound|80|v1|${BACKEND}`)), ['127.0.0.21:8080']);
  assert.deepEqual(addresses(get(r, TypeUrl.ClusterLoadAssignment, `outbound|80|v2|${BACKEND}`)), ['127.0.0.22:8080']);
  const route = get(r, TypeUrl.RouteConfiguration, 'outbound').virtual_hosts.find((v: Obj) => v.name === `${BACKEND}:80`).routes[0];
  assert.deepEqual(route.route.weighted_clusters.clusters, [
    { name: `outbound|80|v1|${BACKEND}`, weight: { value: 90 } },
    { name: `outbound|80|v2|${BACKEND}`, weight: { value: 10 } },
  ]);
});

test('route matches: any entry may match (one Envoy route each); method becomes a :method header', () => {
  const canary = {
    name: 'canary',
    match: [
      { path: { kind: 'prefix' as const, value: '/api' }, method: 'GET', headers: [{ name: 'X-Canary', kind: 'exact' as const, value: 'true' }] },
      { path: { kind: 'regex' as const, value: '/v[0-9]+/.*' }, headers: [{ name: 'x-beta', kind: 'present' as const }] },
    ],
    backends: [{ kind: 'subset' as const, subset: 'v2', weight: 100 }],
    timeoutMs: 3000,
  };
  const r = translate(world([...shop(), policy('backend', 'backend', [canary, split(100, 0)], SUBSETS)]), FRONTEND);
  const routes = get(r, TypeUrl.RouteConfiguration, 'outbound').virtual_hosts.find((v: Obj) => v.name === `${BACKEND}:80`).routes;
  assert.deepEqual(routes.map((x: Obj) => x.name), ['canary-0', 'canary-1', 'default']);
  assert.deepEqual(routes[0].match, { prefix: '/api', headers: [{ name: ':method', string_match: { exact: 'GET' } }, { name: 'x-canary', string_match: { exact: 'true' } }] });
  assert.deepEqual(routes[1].match, { safe_regex: { regex: '/v[0-9]+/.*' }, headers: [{ name: 'x-beta', present_match: true }] });
  // The timeout twice: `timeout` for sidecars (as Envoy), `max_stream_duration` for gRPC clients (gRFC A31).
  const { retry_policy: _retry, ...action } = routes[0].route;
  assert.deepEqual(action, {
    cluster: `outbound|80|v2|${BACKEND}`,
    timeout: { seconds: 3, nanos: 0 },
    max_stream_duration: { max_stream_duration: { seconds: 3, nanos: 0 } },
  });
  assert.deepEqual(routes[2].route.cluster, `outbound|80|v1|${BACKEND}`, 'a zero-weight backend is left out');
});

test('a pod whose sidecar is connected is reached at its inbound listener, with the app port in metadata', () => {
  const r = translate(world(shop(), ['shop/backend-v1']), FRONTEND);
  const cla = get(r, TypeUrl.ClusterLoadAssignment, `outbound|80||${BACKEND}`);
  assert.deepEqual(addresses(cla), ['127.0.0.21:15006', '127.0.0.22:8080']);
  const who = { workload: { stringValue: 'backend' }, namespace: { stringValue: 'shop' } };
  assert.deepEqual(cla.endpoints[0].lb_endpoints[0].metadata, { filter_metadata: { 'weft.dev': { fields: { target_port: { numberValue: 8080 }, ...who } } } });
  // Every endpoint that is a known pod names its workload and namespace (the callers' metric labels).
  assert.deepEqual(cla.endpoints[0].lb_endpoints[1].metadata, { filter_metadata: { 'weft.dev': { fields: who } } });
});

test('a sidecar gets outbound and inbound listeners on its pod IP, and a static cluster per app port', () => {
  const r = translate(world(shop()), FRONTEND);
  assert.deepEqual(get(r, TypeUrl.Listener, 'virtualOutbound').address, { socket_address: { address: '127.0.0.11', port_value: 15001 } });
  const inbound = get(r, TypeUrl.Listener, 'virtualInbound');
  assert.deepEqual(inbound.address, { socket_address: { address: '127.0.0.11', port_value: 15006 } });
  const routes = inbound.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
  assert.deepEqual(routes.map((x: Obj) => x.route.cluster), ['inbound|8080||', 'inbound|8080||']);
  assert.equal(get(r, TypeUrl.Cluster, 'inbound|8080||').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 8080);
});

test('a captured sidecar (INTERCEPTION_MODE=REDIRECT) gets its listeners on every address; inbound clusters stay on the pod IP', () => {
  const captured = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'), { INTERCEPTION_MODE: 'REDIRECT' });
  assert.equal(captured.kind === 'sidecar' && captured.capture, true);
  const r = translate(world(shop()), captured);
  assert.deepEqual(get(r, TypeUrl.Listener, 'virtualOutbound').address, { socket_address: { address: '0.0.0.0', port_value: 15001 } });
  assert.deepEqual(get(r, TypeUrl.Listener, 'virtualInbound').address, { socket_address: { address: '0.0.0.0', port_value: 15006 } });
  assert.equal(get(r, TypeUrl.Cluster, 'inbound|8080||').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, '127.0.0.11');
});

test('a pod with two app ports needs the target-port header: without it, a 404 that says so', () => {
  const objects = [
    service('multi', [{ name: 'a', port: 80, targetPort: 8080 }, { name: 'b', port: 81, targetPort: 'metrics' }]),
    pod('multi', '127.0.0.31', { app: 'multi' }, { ports: [{ name: 'metrics', containerPort: 9100 }] }),
  ];
  const r = translate(world(objects), parseNodeId(sidecarNodeId('127.0.0.31', 'multi', 'shop')));
  const routes = get(r, TypeUrl.Listener, 'virtualInbound').filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
  assert.deepEqual(routes.map((x: Obj) => x.name), ['port-8080', 'port-9100', 'no-target-port']);
  assert.equal(routes[2].direct_response.status, 404);
});

test('a proxyless client gets an API listener and route per Service port, round robin, and pods directly', () => {
  const r = translate(world([...shop(), policy('backend', 'backend', [split(90, 10)], SUBSETS)], ['shop/backend-v1']), PROXYLESS);
  const l = get(r, TypeUrl.Listener, `${BACKEND}:80`);
  assert.equal(l.api_listener.api_listener.rds.route_config_name, `${BACKEND}:80`);
  assert.ok(get(r, TypeUrl.RouteConfiguration, `${BACKEND}:80`).virtual_hosts[0].domains.includes(`${BACKEND}:80`));
  assert.equal(get(r, TypeUrl.Cluster, `outbound|80|v1|${BACKEND}`).lb_policy, 'ROUND_ROBIN');
  assert.deepEqual(addresses(get(r, TypeUrl.ClusterLoadAssignment, `outbound|80|v1|${BACKEND}`)), ['127.0.0.21:8080']);
  assert.ok(!r.get(TypeUrl.Listener)!.has('virtualOutbound'));
});

test('of two policies for one Service the older wins; the other is Conflicted and not translated', () => {
  const older = policy('old', 'backend', [split(100, 0)], SUBSETS, '2026-01-01T00:00:00Z');
  const newer = policy('new', 'backend', [split(0, 100)], SUBSETS, '2026-02-01T00:00:00Z');
  const w = world([...shop(), newer, older]);
  assert.equal(w.policies.get('shop/backend')?.meta.name, 'old');
  const status = w.policyStatus.find((s) => s.key === 'TrafficPolicy/shop/new')!.conditions.find((c) => c.type === 'Accepted')!;
  assert.deepEqual([status.status, status.reason], ['False', 'Conflicted']);
  const route = get(translate(w, FRONTEND), TypeUrl.RouteConfiguration, 'outbound').virtual_hosts.find((v: Obj) => v.name === `${BACKEND}:80`).routes[0];
  assert.equal(route.route.cluster, `outbound|80|v1|${BACKEND}`);
});

test('a policy whose backend names a missing Service port, or no port of a multi-port Service, is not accepted', () => {
  const objects = [...shop(), service('two', [{ name: 'a', port: 80 }, { name: 'b', port: 81 }])];
  const toService = (port?: number) => policy('backend', 'backend', [{
    name: 'default', match: [], backends: [{ kind: 'service', service: 'two', weight: 100, ...(port ? { port } : {}) }],
  }]);
  for (const [port, missing] of [[82, 'two:82'], [undefined, 'two:?']] as const) {
    const w = world([...objects, toService(port)]);
    const c = w.policyStatus[0]!.conditions.find((x) => x.type === 'ResolvedRefs')!;
    assert.deepEqual([c.status, c.reason], ['False', 'BackendNotFound']);
    assert.ok(c.message.includes(missing), c.message);
    assert.equal(w.policies.size, 0);
  }
  assert.equal(world([...objects, toService(81)]).policies.size, 1);
});

test('without a loadBalancer, sidecars get EWMA (LEAST_REQUEST in Envoy terms) and proxyless clients round robin', () => {
  const w = world(shop());
  assert.equal(get(translate(w, FRONTEND), TypeUrl.Cluster, `outbound|80||${BACKEND}`).lb_policy, 'LEAST_REQUEST');
  assert.equal(get(translate(w, PROXYLESS), TypeUrl.Cluster, `outbound|80||${BACKEND}`).lb_policy, 'ROUND_ROBIN');
});

test('a policy for a missing Service is not accepted (TargetNotFound)', () => {
  const w = world([...shop(), policy('ghost', 'ghost', [split(50, 50)], SUBSETS)]);
  const c = w.policyStatus[0]!.conditions.find((x) => x.type === 'Accepted')!;
  assert.deepEqual([c.status, c.reason], ['False', 'TargetNotFound']);
});

test('every translated resource encodes as its Envoy v3 type, and identical input gives identical versions', () => {
  const w = world([...shop(), policy('backend', 'backend', [split(90, 10)], SUBSETS)], ['shop/backend-v1']);
  const a = encodeSnapshot(translate(w, FRONTEND), 1);
  const b = encodeSnapshot(translate(w, FRONTEND), 2);
  for (const [t, s] of a.types) assert.equal(s.version, b.types.get(t)!.version, t);
  assert.equal(a.types.get(TypeUrl.Listener)!.resources.size, 2);
});
