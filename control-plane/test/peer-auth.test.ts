/**
 * PeerAuthentication: parsing (what a schema cannot say), acceptance (levels, conflicts), the
 * effective mode (port > workload > namespace > mesh, UNSET inherits), and what translation makes
 * of it (inbound chains per mode, auto-mTLS clusters and endpoint metadata).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseKubeObject, type KubeObject, type PeerAuthentication } from '@weft/api';
import { buildWorld } from '../src/world';
import { mtlsModeOf } from '../src/peer-auth';
import { translate } from '../src/translate';
import { meta, pod, service } from './world-fixtures';

function pa(name: string, ns: string, spec: Record<string, unknown>, creationTimestamp?: string): Record<string, unknown> {
  return { apiVersion: 'weft.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name, namespace: ns, ...(creationTimestamp ? { creationTimestamp } : {}) }, spec };
}

function parsed(raw: Record<string, unknown>): PeerAuthentication {
  const out = parseKubeObject(raw);
  assert.equal(out.kind, 'object', JSON.stringify(out));
  return (out as { value: PeerAuthentication }).value;
}

test('PeerAuthentication parses selector, mode (omitted: UNSET) and portLevelMtls; bad input is refused with the field', () => {
  const p = parsed(pa('a', 'shop', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } }));
  assert.deepEqual(p.selector, { app: 'reviews' });
  assert.equal(p.mode, 'STRICT');
  assert.deepEqual([...p.portLevel], [[9090, 'PERMISSIVE']]);
  assert.equal(parsed(pa('b', 'shop', {})).mode, 'UNSET');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ mtls: { mode: 'strict' } }, /spec\.mtls\.mode: must be one of STRICT, PERMISSIVE, DISABLE, UNSET/],
    [{ portLevelMtls: { '80': { mode: 'STRICT' } } }, /spec\.portLevelMtls: needs spec\.selector/],
    [{ selector: { matchLabels: { app: 'x' } }, portLevelMtls: { '70000': { mode: 'STRICT' } } }, /spec\.portLevelMtls\.70000: the key must be a port number between 1 and 65535/],
    [{ selector: { matchLabels: { app: 'x' } }, portLevelMtls: { http: { mode: 'STRICT' } } }, /spec\.portLevelMtls\.http: the key must be a port number/],
    [{ mtls: { mode: 'STRICT', extra: 1 } }, /spec\.mtls\.extra: unknown field/],
    [{ action: 'ALLOW' }, /spec\.action: unknown field/],
  ];
  for (const [spec, why] of cases) {
    const out = parseKubeObject(pa('bad', 'shop', spec));
    assert.equal(out.kind, 'invalid', JSON.stringify(spec));
    assert.match((out as { errors: string[] }).errors.join('; '), why);
  }
});

test('effective mode: port > workload > namespace > mesh; UNSET inherits; nothing set is PERMISSIVE', () => {
  const reviews = pod('reviews', '127.0.42.30', { app: 'reviews' });
  const other = pod('other', '127.0.42.31', { app: 'other' });
  const elsewhere = pod('x', '127.0.42.32', { app: 'x' }, { namespace: 'blog' });
  const objects: KubeObject[] = [
    reviews, other, elsewhere,
    parsed(pa('mesh', 'weft-system', { mtls: { mode: 'STRICT' } })),
    parsed(pa('ns', 'shop', { mtls: { mode: 'DISABLE' } })),
    parsed(pa('wl', 'shop', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'UNSET' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } })),
  ];
  const w = buildWorld(objects, new Set(), 1);
  assert.equal(mtlsModeOf(w.peerAuth, reviews, 9090), 'PERMISSIVE'); // port-level
  assert.equal(mtlsModeOf(w.peerAuth, reviews, 8080), 'DISABLE'); // workload UNSET → namespace
  assert.equal(mtlsModeOf(w.peerAuth, other, 8080), 'DISABLE'); // namespace
  assert.equal(mtlsModeOf(w.peerAuth, elsewhere, 8080), 'STRICT'); // mesh
  assert.equal(mtlsModeOf(buildWorld([reviews], new Set(), 1).peerAuth, reviews, 80), 'PERMISSIVE');
  // Another root namespace (weft control-plane --root-namespace): weft-system is then just a namespace.
  const moved = buildWorld([elsewhere, parsed(pa('mesh', 'weft-system', { mtls: { mode: 'STRICT' } })), parsed(pa('m', 'mesh-root', { mtls: { mode: 'DISABLE' } }))], new Set(), 1, { rootNamespace: 'mesh-root' });
  assert.equal(mtlsModeOf(moved.peerAuth, elsewhere, 8080), 'DISABLE');
});

test('two policies at one level: the oldest wins, the other is Accepted=False Conflicted (in /debug/policies)', () => {
  const reviews = pod('reviews', '127.0.42.30', { app: 'reviews', tier: 'back' });
  const w = buildWorld([
    reviews,
    parsed(pa('newer-ns', 'shop', { mtls: { mode: 'DISABLE' } }, '2026-02-01T00:00:00Z')),
    parsed(pa('older-ns', 'shop', { mtls: { mode: 'STRICT' } }, '2026-01-01T00:00:00Z')),
    parsed(pa('wl-a', 'shop', { selector: { matchLabels: { app: 'reviews' } }, mtls: { mode: 'PERMISSIVE' } }, '2026-01-01T00:00:00Z')),
    parsed(pa('wl-b', 'shop', { selector: { matchLabels: { tier: 'back' } }, mtls: { mode: 'DISABLE' } }, '2026-03-01T00:00:00Z')),
  ], new Set(), 1);
  const status = Object.fromEntries(w.policyStatus.map((s) => [s.key, s.conditions.find((c) => c.type === 'Accepted')!]));
  assert.equal(status['PeerAuthentication/shop/older-ns']!.status, 'True');
  assert.equal(status['PeerAuthentication/shop/newer-ns']!.reason, 'Conflicted');
  assert.match(status['PeerAuthentication/shop/newer-ns']!.message, /older PeerAuthentication shop\/older-ns/);
  assert.equal(status['PeerAuthentication/shop/wl-a']!.status, 'True');
  assert.equal(status['PeerAuthentication/shop/wl-b']!.reason, 'Conflicted');
  assert.equal(mtlsModeOf(w.peerAuth, reviews, 80), 'PERMISSIVE');
});

const NODE = (ip: string, name: string, mtls: boolean) => ({ kind: 'sidecar' as const, id: `sidecar~${ip}~${name}.shop~shop.svc.cluster.local`, podIp: ip, podName: name, namespace: 'shop', capture: false, ...(mtls ? { mtls } : {}) });

function inbound(objects: KubeObject[], identity: boolean, capture = false): { chains: { name: string; match: Record<string, unknown>; tls: boolean }[] } {
  const node = { ...NODE('127.0.42.21', 'backend', identity), capture };
  const r = translate(buildWorld(objects, new Set(['shop/backend']), 1, { identityPods: new Set(identity ? ['shop/backend'] : []) }), node);
  const l = r.get('type.googleapis.com/envoy.config.listener.v3.Listener' as never)!.get('virtualInbound')! as { filter_chains: { name: string; filter_chain_match: Record<string, unknown>; transport_socket?: unknown }[] };
  return { chains: l.filter_chains.map((c) => ({ name: c.name, match: c.filter_chain_match, tls: c.transport_socket !== undefined })) };
}

test('inbound chains: local mode per mode; no identity, no terminate chain (STRICT then refuses all)', () => {
  const base: KubeObject[] = [
    service('backend', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'tcp-db', port: 5432, targetPort: 5432 }]),
    pod('backend', '127.0.42.21', { app: 'backend' }),
  ];
  const strict = parsed(pa('s', 'shop', { selector: { matchLabels: { app: 'backend' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '5432': { mode: 'PERMISSIVE' } } }));
  // PERMISSIVE with an identity: the terminate chain (mesh ALPN) beside the plaintext chains.
  assert.deepEqual(inbound(base, true).chains.map((c) => `${c.name} ${JSON.stringify(c.match)} ${c.tls}`), [
    'mtls {"destination_port":{"value":15006},"transport_protocol":"tls","application_protocols":["weft-mtls"]} true',
    'http {"destination_port":{"value":15006}} false',
    'inbound|5432|| {"destination_port":{"value":5432}} false',
    'inbound|8080|| {"destination_port":{"value":8080}} false',
  ]);
  // STRICT on 8080: HTTP only from decrypted streams; 5432 (port-level PERMISSIVE) takes both.
  assert.deepEqual(inbound([...base, strict], true).chains.map((c) => `${c.name} ${JSON.stringify(c.match)}`).slice(1), [
    'http {"destination_port":{"value":15006},"transport_protocol":"weft-mtls"}',
    'inbound|5432|| {"destination_port":{"value":5432}}',
    'inbound|8080|| {"destination_port":{"value":8080},"transport_protocol":"weft-mtls"}',
  ]);
  // Without identity (no WEFT_MTLS) nothing terminates: the output is what it was before mTLS.
  assert.equal(inbound(base, false).chains.some((c) => c.tls), false);
  assert.equal(inbound([...base, strict], false).chains.some((c) => c.tls), false);
});

test('inbound chains in capture mode: STRICT, PERMISSIVE (app TLS passes through) and DISABLE per port', () => {
  const objects: KubeObject[] = [
    service('backend', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'tls-app', port: 443, targetPort: 8443 }, { name: 'web', port: 81, targetPort: 8081 }]),
    pod('backend', '127.0.42.21', { app: 'backend' }),
    parsed(pa('s', 'shop', { selector: { matchLabels: { app: 'backend' } }, mtls: { mode: 'PERMISSIVE' }, portLevelMtls: { '8080': { mode: 'STRICT' }, '8081': { mode: 'DISABLE' } } })),
  ];
  const got = inbound(objects, true, true).chains.map((c) => `${c.name}|${c.match.destination_port ? (c.match.destination_port as { value: number }).value : '*'}|${c.match.transport_protocol ?? ''}|${(c.match.application_protocols as string[] | undefined)?.join(',') ?? ''}|${c.tls}`);
  assert.deepEqual(got, [
    'port-8080-mtls|8080|tls|weft-mtls|true',
    'port-8080-http|8080|weft-mtls|http/1.1,http/1.0,h2c|false',
    'inbound|8080|||8080|weft-mtls||false',
    'port-8081-http|8081||http/1.1,http/1.0,h2c|false',
    'inbound|8081|||8081|||false',
    'port-8443-mtls|8443|tls|weft-mtls|true',
    'inbound|8443|||8443|tls||false',
    'inbound|8443|||8443|||false',
    'http|*||http/1.1,http/1.0,h2c|false',
  ]);
});

test('auto mTLS: endpoints of pods whose sidecar has an identity get tlsMode, the cluster verifies the pods\' SPIFFE ids; DISABLE ports stay plaintext', () => {
  const objects: KubeObject[] = [
    service('backend', [{ name: 'http', port: 80, targetPort: 8080 }]),
    { ...pod('backend-1', '127.0.42.21', { app: 'backend' }), serviceAccount: 'backend' },
    pod('backend-2', '127.0.42.22', { app: 'backend' }),
    pod('frontend', '127.0.42.11', { app: 'frontend' }),
  ];
  const world = (extra: KubeObject[] = []) => buildWorld([...objects, ...extra], new Set(['shop/backend-1', 'shop/backend-2', 'shop/frontend']), 1, { identityPods: new Set(['shop/backend-1']) });
  const r = translate(world(), NODE('127.0.42.11', 'frontend', true));
  const cluster = r.get('type.googleapis.com/envoy.config.cluster.v3.Cluster' as never)!.get('outbound|80||backend.shop.svc.cluster.local') as Record<string, any>;
  const tlsMatch = cluster.transport_socket_matches[0];
  assert.deepEqual(tlsMatch.match, { fields: { tlsMode: { stringValue: 'weft' } } });
  assert.equal(tlsMatch.transport_socket.typed_config.sni, 'outbound_.80_._.backend.shop.svc.cluster.local');
  assert.deepEqual(tlsMatch.transport_socket.typed_config.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names.map((m: any) => m.matcher.exact),
    ['spiffe://cluster.local/ns/shop/sa/backend', 'spiffe://cluster.local/ns/shop/sa/default']);
  const cla = r.get('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment' as never)!.get('outbound|80||backend.shop.svc.cluster.local') as Record<string, any>;
  const modes = cla.endpoints[0].lb_endpoints.map((e: any) => e.metadata.filter_metadata['envoy.transport_socket_match']?.fields.tlsMode.stringValue ?? 'plaintext');
  assert.deepEqual(modes, ['weft', 'plaintext']);
  // Local mode, a pod with a STRICT port refuses plaintext HTTP on all its ports: HTTP to its
  // DISABLE port still goes over mTLS; an opaque (TCP) DISABLE port stays plaintext.
  const mixed = buildWorld([
    service('backend', [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'admin', port: 81, targetPort: 9090 }, { name: 'tcp-db', port: 5432, targetPort: 5432 }]),
    { ...pod('backend-1', '127.0.42.21', { app: 'backend' }), serviceAccount: 'backend' },
    pod('frontend', '127.0.42.11', { app: 'frontend' }),
    parsed(pa('m', 'shop', { selector: { matchLabels: { app: 'backend' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'DISABLE' }, '5432': { mode: 'DISABLE' } } })),
  ], new Set(['shop/backend-1', 'shop/frontend']), 1, { identityPods: new Set(['shop/backend-1']) });
  const tlsModeOf = (cluster: string): string => {
    const a = translate(mixed, NODE('127.0.42.11', 'frontend', true)).get('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment' as never)!.get(cluster) as Record<string, any>;
    return a.endpoints[0].lb_endpoints[0].metadata.filter_metadata['envoy.transport_socket_match']?.fields.tlsMode.stringValue ?? 'plaintext';
  };
  assert.equal(tlsModeOf('outbound|80||backend.shop.svc.cluster.local'), 'weft');
  assert.equal(tlsModeOf('outbound|81||backend.shop.svc.cluster.local'), 'weft');
  assert.equal(tlsModeOf('outbound|5432||backend.shop.svc.cluster.local'), 'plaintext');
  // DISABLE on the destination port: no tlsMode, so no cluster TLS at all.
  const off = translate(world([parsed(pa('off', 'shop', { mtls: { mode: 'DISABLE' } }))]), NODE('127.0.42.11', 'frontend', true));
  assert.equal((off.get('type.googleapis.com/envoy.config.cluster.v3.Cluster' as never)!.get('outbound|80||backend.shop.svc.cluster.local') as Record<string, unknown>).transport_socket_matches, undefined);
  void meta;
});
