import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INTERCEPTION_MODE, parseNodeId, sidecarNodeId, TypeUrl, type AuthorizationPolicy, type AuthzRule } from '@weft/api';
import { translate } from '../src/translate';
import { encodeSnapshot } from '../src/snapshot-cache';
import { inboundAuthz, policiesFor, stringMatch } from '../src/translate-authz';
import { meta, pod, service, world } from './world-fixtures';

type Obj = Record<string, any>;

function authz(name: string, action: 'ALLOW' | 'DENY', rules: AuthzRule[], opts: { namespace?: string; selector?: Record<string, string> } = {}): AuthorizationPolicy {
  return { kind: 'AuthorizationPolicy', meta: meta(name, opts.namespace ?? 'shop'), ...(opts.selector ? { selector: opts.selector } : {}), action, rules };
}
const objects = (...policies: AuthorizationPolicy[]): any[] => [
  service('reviews', [{ name: 'http', port: 80, targetPort: 9080 }, { name: 'tcp-db', port: 5432 }]),
  pod('reviews-1', '127.0.43.21', { app: 'reviews' }),
  pod('other-1', '127.0.43.22', { app: 'other' }),
  pod('elsewhere', '127.0.43.23', { app: 'reviews' }, { namespace: 'test' }),
  ...policies,
];
const inbound = (objs: any[], podName = 'reviews-1', ip = '127.0.43.21', ns = 'shop'): Obj =>
  (translate(world(objs), parseNodeId(sidecarNodeId(ip, podName, ns))).get(TypeUrl.Listener) as Map<string, Obj>).get('virtualInbound')!;
const httpFilters = (l: Obj): Obj[] => l.filter_chains.find((c: Obj) => c.name === 'http').filters[0].typed_config.http_filters;
const tcpFilters = (l: Obj, port: number): Obj[] => l.filter_chains.find((c: Obj) => c.filter_chain_match?.destination_port?.value === port && c.name !== 'http').filters;

test('which policies select a pod: its namespace (by selector or all), the root namespace (mesh-wide), never another namespace', () => {
  const w = world(objects(
    authz('ns-wide', 'ALLOW', []),
    authz('reviews-only', 'ALLOW', [], { selector: { app: 'reviews' } }),
    authz('other-only', 'ALLOW', [], { selector: { app: 'other' } }),
    authz('mesh', 'DENY', [], { namespace: 'weft-system' }),
    authz('mesh-reviews', 'DENY', [], { namespace: 'weft-system', selector: { app: 'reviews' } }),
    authz('test-ns', 'ALLOW', [], { namespace: 'test' }),
  ));
  const names = (podKey: string): string[] => policiesFor(w, w.pods.get(podKey)!).map((p) => p.meta.name).sort();
  assert.deepEqual(names('shop/reviews-1'), ['mesh', 'mesh-reviews', 'ns-wide', 'reviews-only']);
  assert.deepEqual(names('shop/other-1'), ['mesh', 'ns-wide', 'other-only']);
  assert.deepEqual(names('test/elsewhere'), ['mesh', 'mesh-reviews', 'test-ns']);
  assert.match(w.policyStatus.find((s) => s.key === 'AuthorizationPolicy/weft-system/mesh')!.conditions[0]!.message, /every workload in the mesh/);
  assert.match(w.policyStatus.find((s) => s.key === 'AuthorizationPolicy/shop/ns-wide')!.conditions[0]!.message, /ALLOW .*no rules: allows nothing/);
});

test('no policy: the inbound listener has only the router and plain TCP proxies', () => {
  const l = inbound(objects());
  assert.deepEqual(httpFilters(l).map((f) => f.name), ['envoy.filters.http.router']);
  assert.deepEqual(tcpFilters(l, 5432).map((f: Obj) => f.name), ['envoy.filters.network.tcp_proxy']);
});

test("SPEC.md's policy becomes one RBAC policy per rule, keyed as Istio keys it, principals with the spiffe:// scheme, namespaces as a SPIFFE regex", () => {
  const l = inbound(objects(authz('reviews-readers', 'ALLOW', [{
    from: [{ principals: ['spiffe://cluster.local/ns/shop/sa/frontend'], namespaces: ['shop'] }],
    to: [{ paths: ['/api/*'], methods: ['GET'], ports: [9080] }],
  }], { selector: { app: 'reviews' } })));
  const filters = httpFilters(l);
  assert.deepEqual(filters.map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.router']);
  assert.deepEqual(filters[0].typed_config.rules, {
    action: 'ALLOW',
    policies: {
      'ns[shop]-policy[reviews-readers]-rule[0]': {
        permissions: [{ and_rules: { rules: [
          { destination_port: 9080 },
          { header: { name: ':method', string_match: { exact: 'GET' } } },
          { url_path: { path: { prefix: '/api/' } } },
        ] } }],
        principals: [{ and_ids: { ids: [
          { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/shop/sa/frontend' } } },
          { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://[^/]+/ns/shop/sa/[^/]+' } } } },
        ] } }],
      },
    },
  });
});

test('DENY filters come before ALLOW filters; a rule {} is any/any; ALLOW with no rules still emits an (empty) ALLOW filter', () => {
  const l = inbound(objects(authz('allow-nothing', 'ALLOW', []), authz('deny-all', 'DENY', [{}])));
  const rbac = httpFilters(l).slice(0, -1).map((f) => f.typed_config.rules);
  assert.deepEqual(rbac, [
    { action: 'DENY', policies: { 'ns[shop]-policy[deny-all]-rule[0]': { permissions: [{ any: true }], principals: [{ any: true }] } } },
    { action: 'ALLOW', policies: {} },
  ]);
});

test('values: exact, prefix*, *suffix, * (present); Istio principals get the scheme; not-fields are negated ORs; several entries are ORed', () => {
  assert.deepEqual([stringMatch('/a'), stringMatch('/a/*'), stringMatch('*.css'), stringMatch('*')], [
    { exact: '/a' }, { prefix: '/a/' }, { suffix: '.css' }, { safe_regex: { regex: '.+' } },
  ]);
  const f = inboundAuthz(world(objects(authz('p', 'DENY', [{
    from: [{ principals: ['cluster.local/ns/shop/sa/a', 'cluster.local/ns/*'] }, { notNamespaces: ['shop'] }],
    to: [{ notMethods: ['GET', 'HEAD'] }, { hosts: ['api.example.com'] }],
  }]))), world(objects()).pods.get('shop/reviews-1'));
  const p = (f.http[0] as Obj).typed_config.rules.policies['ns[shop]-policy[p]-rule[0]'];
  assert.deepEqual(p.principals, [
    { or_ids: { ids: [
      { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/shop/sa/a' } } },
      { authenticated: { principal_name: { prefix: 'spiffe://cluster.local/ns/' } } },
    ] } },
    { not_id: { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://[^/]+/ns/shop/sa/[^/]+' } } } } },
  ]);
  assert.deepEqual(p.permissions, [
    { not_rule: { or_rules: { rules: [
      { header: { name: ':method', string_match: { exact: 'GET' } } },
      { header: { name: ':method', string_match: { exact: 'HEAD' } } },
    ] } } },
    // A host also matches with a port, so adding one cannot bypass a DENY.
    { header: { name: ':authority', string_match: { safe_regex: { regex: 'api\\.example\\.com(:[0-9]+)?' } } } },
  ]);
});

test("TCP chains: an ALLOW rule with HTTP-only fields is dropped, a DENY rule loses them (Istio's documented behaviour)", () => {
  const l = inbound(objects(
    authz('allow-get', 'ALLOW', [{ to: [{ methods: ['GET'], ports: [5432] }] }, { from: [{ namespaces: ['shop'] }] }]),
    authz('deny-get', 'DENY', [{ to: [{ methods: ['GET'], ports: [5432] }] }, { to: [{ paths: ['/x'] }] }]),
  ));
  const filters = tcpFilters(l, 5432);
  assert.deepEqual(filters.map((f: Obj) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
  const [deny, allow] = filters.map((f: Obj) => f.typed_config);
  assert.equal(deny.stat_prefix, 'tcp.authz.deny.');
  assert.deepEqual(deny.rules.policies, {
    'ns[shop]-policy[deny-get]-rule[0]': { permissions: [{ destination_port: 5432 }], principals: [{ any: true }] },
    // Paths only: without them the rule denies every connection.
    'ns[shop]-policy[deny-get]-rule[1]': { permissions: [{ any: true }], principals: [{ any: true }] },
  });
  assert.deepEqual(Object.keys(allow.rules.policies), ['ns[shop]-policy[allow-get]-rule[1]']);
  // The HTTP chain keeps the HTTP fields.
  assert.equal(Object.keys(httpFilters(l)[1].typed_config.rules.policies).length, 2);
});

test('RBAC filters encode as Envoy protos (no field protobufjs would drop), in local and capture mode', () => {
  const objs = objects(
    authz('a', 'ALLOW', [{ from: [{ principals: ['*'], ipBlocks: ['10.0.0.0/8', '::1'] }], to: [{ paths: ['/x'], notPorts: [1] }] }]),
    authz('d', 'DENY', [{ to: [{ hosts: ['*.example.com'], notPaths: ['*.css'] }] }]),
  );
  const w = world(objs);
  for (const capture of [false, true]) {
    const node = parseNodeId(sidecarNodeId('127.0.43.21', 'reviews-1', 'shop'), capture ? { [INTERCEPTION_MODE]: 'REDIRECT' } : {});
    assert.doesNotThrow(() => encodeSnapshot(translate(w, node), 1));
  }
});
