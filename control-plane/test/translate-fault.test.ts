/**
 * Fault injection and mirroring in translation: `fault` → the fault filter's per-route `HTTPFault`
 * (sidecars and proxyless gRPC clients), `mirror` → `request_mirror_policies` (sidecars only), the
 * fault filter before the router on outbound and API listeners, and the sidecar accepting exactly
 * what is sent (encoded, decoded, validated).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, parseNodeId, sidecarNodeId, TypeUrl, unpackAny, type FaultSpec, type MirrorSpec, type RouteSpec } from '@weft/api';
import { translate } from '../src/translate';
import { policy, service, shop, SUBSETS, world } from './world-fixtures';

const FRONTEND = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'));
const PROXYLESS = parseNodeId('grpc-client-1');
const BACKEND = 'backend.shop.svc.cluster.local';
const HTTP_FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
type Obj = Record<string, any>;

const routeWith = (extra: { fault?: FaultSpec; mirror?: MirrorSpec }): RouteSpec => ({
  name: 'default',
  match: [],
  backends: [{ kind: 'subset', subset: 'v1', weight: 100 }],
  ...extra,
});

function routesOf(r: ReturnType<typeof translate>, name: string, vhost = `${BACKEND}:80`): Obj[] {
  const rc = r.get(TypeUrl.RouteConfiguration as never)?.get(name) as Obj;
  return rc.virtual_hosts.find((v: Obj) => v.name === vhost).routes;
}

const SHADOWS = [service('shadow', [{ port: 8080 }]), service('multi', [{ name: 'a', port: 81 }, { name: 'b', port: 82 }])];

const CASES: { what: string; fault?: FaultSpec; mirror?: MirrorSpec; route: Obj; action: Obj }[] = [
  {
    what: 'a delay becomes fixed_delay with a FractionalPercent over a MILLION',
    fault: { delay: { percent: 10, fixedDelayMs: 1500 } },
    route: { typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': HTTP_FAULT, delay: { fixed_delay: { seconds: 1, nanos: 500_000_000 }, percentage: { numerator: 100_000, denominator: 'MILLION' } } } } },
    action: {},
  },
  {
    what: 'an abort keeps a fractional percent exactly (0.05% → 500 per million)',
    fault: { abort: { percent: 0.05, httpStatus: 503 } },
    route: { typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': HTTP_FAULT, abort: { http_status: 503, percentage: { numerator: 500, denominator: 'MILLION' } } } } },
    action: {},
  },
  {
    what: 'a mirror Service with one port: its only port, whole-Service cluster',
    mirror: { service: 'shadow', percent: 5 },
    route: {},
    action: { request_mirror_policies: [{ cluster: 'outbound|8080||shadow.shop.svc.cluster.local', runtime_fraction: { default_value: { numerator: 50_000, denominator: 'MILLION' } } }] },
  },
  {
    what: 'a mirror with a port names that port',
    mirror: { service: 'multi', port: 82, percent: 100 },
    route: {},
    action: { request_mirror_policies: [{ cluster: 'outbound|82||multi.shop.svc.cluster.local', runtime_fraction: { default_value: { numerator: 1_000_000, denominator: 'MILLION' } } }] },
  },
];

for (const c of CASES) {
  test(`sidecar: ${c.what}`, () => {
    const p = policy('backend', 'backend', [routeWith({ ...(c.fault ? { fault: c.fault } : {}), ...(c.mirror ? { mirror: c.mirror } : {}) })], SUBSETS);
    const [r] = routesOf(translate(world([...shop(), ...SHADOWS, p]), FRONTEND), 'outbound');
    assert.deepEqual(r!.typed_per_filter_config, c.route.typed_per_filter_config);
    assert.deepEqual(r!.route.request_mirror_policies, c.action.request_mirror_policies);
  });
}

test('proxyless gRPC clients get the fault (gRFC A33) but no mirror; their API listeners list the fault filter', () => {
  const name = `${BACKEND}:80`;
  const p = policy('backend', 'backend', [routeWith({ fault: { abort: { percent: 100, httpStatus: 503 } }, mirror: { service: 'shadow', percent: 50 } })], SUBSETS);
  const out = translate(world([...shop(), ...SHADOWS, p]), PROXYLESS);
  const [r] = routesOf(out, name, name);
  assert.equal(r!.typed_per_filter_config['envoy.filters.http.fault'].abort.http_status, 503);
  assert.equal(r!.route.request_mirror_policies, undefined);
  const listener = out.get(TypeUrl.Listener as never)?.get(name) as Obj;
  assert.deepEqual(listener.api_listener.api_listener.http_filters.map((f: Obj) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
});

test('the outbound listener lists the fault filter before the router; the inbound one only the router', () => {
  const out = translate(world(shop()), FRONTEND).get(TypeUrl.Listener as never) as Map<string, Obj>;
  const filters = (l: Obj): string[] => l.filter_chains[0].filters[0].typed_config.http_filters.map((f: Obj) => f.name);
  assert.deepEqual(filters(out.get('virtualOutbound')!), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  assert.deepEqual(filters(out.get('virtualInbound')!), ['envoy.filters.http.router']);
});

test('the sidecar accepts the fault, the mirror and the listener as sent: encoded, decoded, validated', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildProxyConfig } = require('@weft/sidecar') as { buildProxyConfig: (r: Obj) => Obj };
  const fault: FaultSpec = { delay: { percent: 10, fixedDelayMs: 100 }, abort: { percent: 1, httpStatus: 503 } };
  const p = policy('backend', 'backend', [routeWith({ fault, mirror: { service: 'shadow', percent: 5 } })], SUBSETS);
  const out = translate(world([...shop(), ...SHADOWS, p]), FRONTEND);
  const wire = (type: string, o: Obj): Obj => unpackAny(packAny(type, o));
  const rc = wire(TypeUrl.RouteConfiguration, out.get(TypeUrl.RouteConfiguration as never)!.get('outbound') as Obj);
  const listeners = [...(out.get(TypeUrl.Listener as never) as Map<string, Obj>).values()].map((l) => wire(TypeUrl.Listener, l));
  const result = buildProxyConfig({ listeners, routes: [rc], clusters: [], assignments: [] });
  assert.ok(result.ok, result.ok ? '' : result.errors.join('; '));
  assert.equal(result.config.listeners.get('virtualOutbound').faultFilter, true);
  const route = result.config.routeTables.get('outbound').virtualHosts.find((v: Obj) => v.name === `${BACKEND}:80`).routes[0];
  assert.deepEqual(route.fault, { delay: { fixedDelayMs: 100, fraction: 0.1 }, abort: { httpStatus: 503, fraction: 0.01 } });
  assert.deepEqual(route.mirrors, [{ cluster: 'outbound|8080||shadow.shop.svc.cluster.local', fraction: 0.05 }]);
});

test('grpc-js-xds accepts the fault filter and its per-route config (its http-filter registry)', () => {
  // The package entry first: it sets up the proto paths its filters load with.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@grpc/grpc-js-xds');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const filters = require('@grpc/grpc-js-xds/build/src/http-filter') as Obj;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  (require('@grpc/grpc-js-xds/build/src/http-filter/fault-injection-filter') as Obj).setup();
  const p = policy('backend', 'backend', [routeWith({ fault: { abort: { percent: 100, httpStatus: 503 } } })], SUBSETS);
  const name = `${BACKEND}:80`;
  const out = translate(world([...shop(), p]), PROXYLESS);
  const listener = out.get(TypeUrl.Listener as never)?.get(name) as Obj;
  const fault = listener.api_listener.api_listener.http_filters[0];
  assert.ok(filters.validateTopLevelFilter({ ...fault, typed_config: packAny(HTTP_FAULT, {}) }, true));
  const [r] = routesOf(out, name, name);
  const { '@type': url, ...config } = r!.typed_per_filter_config['envoy.filters.http.fault'];
  assert.ok(filters.validateOverrideFilter(packAny(url, config)));
});
