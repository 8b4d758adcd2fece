import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INTERCEPTION_MODE, parseNodeId, sidecarNodeId, TypeUrl, type Service } from '@weft/api';
import { translate } from '../src/translate';
import { encodeSnapshot } from '../src/snapshot-cache';
import { localPorts, portProtocol } from '../src/port-protocol';
import { meta, pod, service, world } from './world-fixtures';

type Obj = Record<string, any>;
const MAIL = 'mail.shop.svc.cluster.local';
const H = ['http/1.1', 'http/1.0', 'h2c'];

/** Service `mail` (pods app=mail) with an opaque port, an undeclared one, and an HTTP one. */
function mail(extra: Partial<Service> = {}): Service {
  return {
    ...service('mail', [{ name: 'smtp', port: 2525 }, { name: 'plain', port: 3000 }, { name: 'http', port: 80, targetPort: 8080 }]),
    clusterIP: '10.96.0.5',
    ...extra,
  };
}
const objects = (...more: Service[]): any[] => [
  mail(), ...more,
  pod('client', '127.0.0.11', { app: 'client' }),
  pod('mail-1', '127.0.0.21', { app: 'mail' }),
];
const node = (name: string, ip: string, capture = false) => parseNodeId(sidecarNodeId(ip, name, 'shop'), capture ? { [INTERCEPTION_MODE]: 'REDIRECT' } : {});
const listenersOf = (r: ReturnType<typeof translate>): Map<string, Obj> => r.get(TypeUrl.Listener) as Map<string, Obj>;
const filterOf = (chain: Obj): Obj => chain.filters[0].typed_config;

test('port protocol: appProtocol first, then the port name (Istio\'s prefixes); the rest is detected', () => {
  const table: [{ name?: string; appProtocol?: string }, string][] = [
    [{ name: 'tcp' }, 'opaque'], [{ name: 'tcp-db' }, 'opaque'], [{ name: 'mysql' }, 'opaque'], [{ name: 'smtp-out' }, 'opaque'],
    [{ name: 'nats' }, 'opaque'], [{ name: 'https' }, 'opaque'], [{ name: 'tcpx' }, 'detect'],
    [{ name: 'http' }, 'http'], [{ name: 'http2' }, 'http'], [{ name: 'grpc-web' }, 'http'], [{ name: 'http-admin' }, 'http'],
    [{ appProtocol: 'TCP', name: 'http' }, 'opaque'], [{ appProtocol: 'kubernetes.io/h2c', name: 'tcp' }, 'http'],
    [{ appProtocol: 'example.com/custom', name: 'redis' }, 'opaque'], [{ appProtocol: 'example.com/custom' }, 'detect'],
    [{ name: 'web' }, 'detect'], [{}, 'detect'],
  ];
  for (const [port, want] of table) assert.equal(portProtocol(port), want, JSON.stringify(port));
});

test('local per-upstream ports: not for HTTP ports, below 1024 or in 15000-15021; the older of two Services keeps a port and the other is reported', () => {
  const older = { ...service('older', [{ name: 'tcp', port: 2525 }]), meta: meta('older', 'shop', {}, '2024-01-01T00:00:00Z') };
  const newer = service('newer', [{ name: 'tcp', port: 2525 }, { name: 'tcp-low', port: 25 }, { name: 'tcp-admin', port: 15000 }, { name: 'http', port: 8080 }]);
  const r = localPorts([newer, older]);
  assert.deepEqual([...r.owners].map(([p, o]) => `${p} ${o.service.meta.name}`), ['2525 older']);
  assert.deepEqual(r.problems.map((p) => p.service), ['shop/newer', 'shop/newer', 'shop/newer']);
  assert.match(r.problems.map((p) => p.message).join('\n'), /port 2525 .*older Service shop\/older/);
  // The conflict reaches /debug/diagnostics through the world.
  assert.equal(world([newer, older]).diagnostics.length, 3);
});

test('local mode, client: an opaque port is a TCP-only listener on POD_IP:<port>, an undeclared one detects with a TCP fallback, HTTP ports get none', () => {
  const r = translate(world(objects()), node('client', '127.0.0.11'));
  const ls = listenersOf(r);
  assert.deepEqual([...ls.keys()].sort(), ['0.0.0.0_2525', '0.0.0.0_3000', 'virtualInbound', 'virtualOutbound']);
  const opaque = ls.get('0.0.0.0_2525')!;
  assert.deepEqual(opaque.address, { socket_address: { address: '127.0.0.11', port_value: 2525 } });
  assert.equal(opaque.filter_chains.length, 1);
  assert.equal(opaque.listener_filters, undefined);
  assert.deepEqual(filterOf(opaque.filter_chains[0]), { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: `outbound|2525||${MAIL}`, cluster: `outbound|2525||${MAIL}` });
  const detected = ls.get('0.0.0.0_3000')!;
  assert.deepEqual(detected.filter_chains[0].filter_chain_match, { application_protocols: H });
  assert.equal(filterOf(detected.filter_chains[0]).rds.route_config_name, 'outbound');
  assert.equal(filterOf(detected.default_filter_chain).cluster, `outbound|3000||${MAIL}`);
  assert.deepEqual([detected.listener_filters_timeout, detected.continue_on_listener_filters_timeout], [{ seconds: 1 }, true]);
  // The outbound listener stays HTTP only, one chain.
  assert.equal(ls.get('virtualOutbound')!.filter_chains.length, 1);
  assert.equal(ls.get('virtualOutbound')!.default_filter_chain, undefined);
  encodeSnapshot(r, 1); // every resource encodes (no field the protos lack)
});

test('local mode, server: no per-upstream port where its own app listens; the inbound listener reads PROXY v2 and has a TCP chain per app port only', () => {
  const r = translate(world(objects()), node('mail-1', '127.0.0.21'));
  const ls = listenersOf(r);
  assert.deepEqual([...ls.keys()].sort(), ['virtualInbound', 'virtualOutbound']);
  const inbound = ls.get('virtualInbound')!;
  assert.deepEqual(inbound.listener_filters.map((f: Obj) => [f.name, f.typed_config.allow_requests_without_proxy_protocol]), [['envoy.filters.listener.proxy_protocol', true]]);
  assert.deepEqual(inbound.filter_chains.map((c: Obj) => [c.name, c.filter_chain_match]), [
    ['http', { destination_port: { value: 15006 } }],
    ['inbound|2525||', { destination_port: { value: 2525 } }],
    ['inbound|3000||', { destination_port: { value: 3000 } }],
    ['inbound|8080||', { destination_port: { value: 8080 } }],
  ]);
  assert.equal(filterOf(inbound.filter_chains[1]).cluster, 'inbound|2525||');
  encodeSnapshot(r, 1);
});

test('capture mode: the outbound listener matches a Service\'s cluster IP and port (opaque: TCP only; undeclared: HTTP or TCP) and passes the rest through', () => {
  const r = translate(world(objects()), node('client', '10.0.0.11', true));
  const out = listenersOf(r).get('virtualOutbound')!;
  assert.deepEqual(out.listener_filters.map((f: Obj) => f.name), ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector', 'envoy.filters.listener.http_inspector']);
  const ip = { prefix_ranges: [{ address_prefix: '10.96.0.5', prefix_len: { value: 32 } }] };
  assert.deepEqual(out.filter_chains.map((c: Obj) => [c.name, c.filter_chain_match, filterOf(c).cluster ?? 'hcm']), [
    ['10.96.0.5_2525', { ...ip, destination_port: { value: 2525 } }, `outbound|2525||${MAIL}`],
    ['10.96.0.5_3000-http', { ...ip, destination_port: { value: 3000 }, application_protocols: H }, 'hcm'],
    ['10.96.0.5_3000', { ...ip, destination_port: { value: 3000 } }, `outbound|3000||${MAIL}`],
    ['http', { application_protocols: H }, 'hcm'],
  ]);
  assert.equal(filterOf(out.default_filter_chain).cluster, 'PassthroughCluster');
  assert.deepEqual(r.get(TypeUrl.Cluster)!.get('PassthroughCluster'), { name: 'PassthroughCluster', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: { seconds: 1 } });
  assert.deepEqual([...listenersOf(r).keys()].sort(), ['virtualInbound', 'virtualOutbound'], 'no per-upstream ports in capture mode');
  encodeSnapshot(r, 1);
});

test('capture mode, inbound: the original destination port picks the chain; an opaque app port never detects, others fall back to TCP to the app', () => {
  const r = translate(world(objects()), node('mail-1', '10.0.0.21', true));
  const inbound = listenersOf(r).get('virtualInbound')!;
  assert.equal(inbound.listener_filters[0].name, 'envoy.filters.listener.original_dst');
  assert.ok(!inbound.listener_filters.some((f: Obj) => f.name === 'envoy.filters.listener.proxy_protocol'), 'a client\'s PROXY header is never read in capture mode');
  assert.deepEqual(inbound.filter_chains.map((c: Obj) => [c.name, c.filter_chain_match]), [
    ['inbound|2525||', { destination_port: { value: 2525 } }],
    ['port-3000-http', { destination_port: { value: 3000 }, application_protocols: H }],
    ['inbound|3000||', { destination_port: { value: 3000 } }],
    ['port-8080-http', { destination_port: { value: 8080 }, application_protocols: H }],
    ['inbound|8080||', { destination_port: { value: 8080 } }],
    ['http', { application_protocols: H }],
  ]);
  encodeSnapshot(r, 1);
});
