/**
 * ADS streams driven directly: a real SnapshotCache holding snapshots translated from worlds, a
 * `write` that records responses and hooks that record what the stream reports. State of the
 * world first, then delta.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shortTypeName, TypeUrl, unpackAny, type KubeObject } from '@weft/api';
import type { SotwResponse } from '../src/ads-stream-sotw';
import type { DeltaResponse } from '../src/ads-stream-delta';
import type { NodeSnapshot } from '../src/snapshot-cache';
import { BACKEND_HOST, deltaStream, FRONTEND_ID, IDENTIFIER, RecordingHooks, snapshotFor, sotwStream } from './ads-fixtures';
import { pod, policy, service, shop, split, SUBSETS } from './world-fixtures';

const NODE = { id: FRONTEND_ID };
const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;
const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;
const BACKEND = `outbound|80||${BACKEND_HOST}`;
const FRONTEND = 'outbound|80||frontend.shop.svc.cluster.local';

/** The names in a SotW response, decoded from the resources themselves. */
function names(res: SotwResponse): string[] {
  return res.resources.map((any) => {
    const o = unpackAny(any);
    return String(o.name ?? o.cluster_name);
  }).sort();
}

const snapshotNames = (s: NodeSnapshot, typeUrl: string): string[] =>
  [...(s.types.get(typeUrl as never)?.resources.keys() ?? [])].sort();
const typeVersion = (s: NodeSnapshot, typeUrl: string): string => s.types.get(typeUrl as never)!.version;

/** One more Service selecting the frontend pod: changes clusters, endpoints, listeners and routes. */
const withAdminPort = (): KubeObject[] => [...shop(), service('frontend-admin', [{ port: 9000, targetPort: 9090 }], { app: 'frontend' })];

function setup(objects: KubeObject[] = shop()): { hooks: RecordingHooks; snapshot: NodeSnapshot } {
  const hooks = new RecordingHooks();
  const snapshot = snapshotFor(objects);
  hooks.cache.set(FRONTEND_ID, snapshot);
  return { hooks, snapshot };
}

// ---- state of the world ---------------------------------------------------------------------

test('sotw: a first request without node.id fails the stream and sends nothing', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ type_url: CDS, resource_names: [] });
  assert.equal(s.failures.length, 1);
  assert.match(s.failures[0]!, /node\.id/);
  assert.deepEqual(s.responses, []);
  assert.deepEqual(hooks.connections, []);
});

test('sotw: a node is connected once, on its first request, and disconnected once on end', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names: [] });
  s.handle({ type_url: LDS, resource_names: [] });
  s.end();
  s.end();
  assert.deepEqual(hooks.connections, [FRONTEND_ID]);
  assert.deepEqual(hooks.disconnections, [FRONTEND_ID]);
});

test('sotw: an empty first CDS or LDS request subscribes to every resource of the type', () => {
  const { hooks, snapshot } = setup();
  for (const typeUrl of [CDS, LDS]) {
    const s = sotwStream(hooks);
    s.handle({ node: NODE, type_url: typeUrl, resource_names: [] });
    const [res, ...more] = s.take();
    assert.deepEqual(more, []);
    assert.equal(res!.type_url, typeUrl);
    assert.equal(res!.version_info, typeVersion(snapshot, typeUrl));
    assert.equal(res!.control_plane.identifier, IDENTIFIER);
    assert.ok(res!.nonce);
    assert.deepEqual(names(res!), snapshotNames(snapshot, typeUrl));
    assert.ok(names(res!).length >= 2, `${shortTypeName(typeUrl)}: ${names(res!).join(', ')}`);
  }
});

test('sotw: an empty first EDS request is not a wildcard: no endpoints are delivered', () => {
  const { hooks, snapshot } = setup();
  assert.ok(snapshotNames(snapshot, EDS).length > 0);
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: EDS, resource_names: [] });
  for (const res of s.take()) assert.deepEqual(names(res), []);
  s.handle({ node: NODE, type_url: RDS, resource_names: [] });
  for (const res of s.take()) assert.deepEqual(names(res), []);
});

test('sotw: named EDS and RDS requests get exactly the named resources', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: EDS, resource_names: [BACKEND, 'no-such-cluster'] });
  s.handle({ type_url: RDS, resource_names: ['outbound'] });
  assert.deepEqual(s.take().map((r) => [shortTypeName(r.type_url), names(r)]), [
    ['ClusterLoadAssignment', [BACKEND]],
    ['RouteConfiguration', ['outbound']],
  ]);
});

test('sotw: an ACK records the version the proxy accepted', () => {
  const { hooks, snapshot } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names: [] });
  const [res] = s.take();
  s.handle({ type_url: CDS, version_info: res!.version_info, response_nonce: res!.nonce, resource_names: [] });
  assert.deepEqual(hooks.acks, [{ node: FRONTEND_ID, type: 'Cluster', version: typeVersion(snapshot, CDS) }]);
  assert.deepEqual(hooks.nacks, []);
  assert.deepEqual(s.take(), [], 'an ACK of the current version sends nothing');
});

test('sotw: a request carrying a stale nonce is ignored: nothing sent, no ACK recorded', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: EDS, resource_names: [BACKEND] });
  const [first] = s.take();
  s.handle({ type_url: EDS, version_info: first!.version_info, response_nonce: first!.nonce, resource_names: [BACKEND, FRONTEND] });
  const [second] = s.take();
  assert.deepEqual(names(second!), [BACKEND, FRONTEND]);
  assert.equal(hooks.acks.length, 1);

  // The first nonce is stale now; so is one never sent. Either would change the subscription.
  s.handle({ type_url: EDS, version_info: first!.version_info, response_nonce: first!.nonce, resource_names: [FRONTEND] });
  s.handle({ type_url: EDS, version_info: first!.version_info, response_nonce: 'never-sent', resource_names: [FRONTEND] });
  s.handle({ type_url: EDS, response_nonce: first!.nonce, error_detail: { code: 3, message: 'late' }, resource_names: [] });
  assert.deepEqual(s.take(), []);
  assert.equal(hooks.acks.length, 1);
  assert.deepEqual(hooks.nacks, []);
});

test('sotw: a NACK records the detail and the rejected version, and that version is not sent again', () => {
  const { hooks, snapshot } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names: [] });
  const [res] = s.take();
  s.handle({ type_url: CDS, version_info: '', response_nonce: res!.nonce, resource_names: [], error_detail: { code: 3, message: 'Cluster "x": lb_policy MAGLEV is not supported' } });
  assert.deepEqual(hooks.nacks, [{ node: FRONTEND_ID, type: 'Cluster', version: typeVersion(snapshot, CDS), detail: 'Cluster "x": lb_policy MAGLEV is not supported' }]);
  assert.deepEqual(hooks.acks, []);
  assert.deepEqual(s.take(), [], 'the rejected version is not resent on the NACK');

  // Re-storing the same content changes nothing; a new version is sent.
  hooks.cache.set(FRONTEND_ID, snapshotFor(shop(), FRONTEND_ID, 2));
  assert.deepEqual(s.take(), []);
  const next = snapshotFor(withAdminPort(), FRONTEND_ID, 3);
  hooks.cache.set(FRONTEND_ID, next);
  const [resent, ...more] = s.take();
  assert.deepEqual(more, []);
  assert.equal(resent!.version_info, typeVersion(next, CDS));
  assert.notEqual(resent!.nonce, res!.nonce);
});

test('sotw: changing resource_names resends the type with the new set, at the same version', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: EDS, resource_names: [BACKEND] });
  const [a] = s.take();
  s.handle({ type_url: EDS, version_info: a!.version_info, response_nonce: a!.nonce, resource_names: [FRONTEND, BACKEND] });
  const [b, ...more] = s.take();
  assert.deepEqual(more, []);
  assert.deepEqual(names(b!), [BACKEND, FRONTEND]);
  assert.equal(b!.version_info, a!.version_info);
  assert.notEqual(b!.nonce, a!.nonce);
  // The same names in another order are the same subscription.
  s.handle({ type_url: EDS, version_info: b!.version_info, response_nonce: b!.nonce, resource_names: [BACKEND, FRONTEND] });
  assert.deepEqual(s.take(), []);
  s.handle({ type_url: EDS, version_info: b!.version_info, response_nonce: b!.nonce, resource_names: [FRONTEND] });
  assert.deepEqual(s.take().map(names), [[FRONTEND]]);
});

test('sotw: a CDS ACK with empty resource_names keeps the wildcard subscription', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names: [] });
  const [res] = s.take();
  s.handle({ type_url: CDS, version_info: res!.version_info, response_nonce: res!.nonce, resource_names: [] });
  const next = snapshotFor(withAdminPort(), FRONTEND_ID, 2);
  hooks.cache.set(FRONTEND_ID, next);
  const [pushed] = s.take();
  assert.deepEqual(names(pushed!), snapshotNames(next, CDS));
  assert.ok(names(pushed!).includes('outbound|9000||frontend-admin.shop.svc.cluster.local'));
});

test('sotw: a snapshot change pushes CDS, then EDS, then LDS, then RDS', () => {
  const { hooks } = setup();
  const s = sotwStream(hooks);
  // Subscribe in the "wrong" order, and ACK everything.
  s.handle({ node: NODE, type_url: RDS, resource_names: ['outbound', 'inbound'] });
  s.handle({ type_url: LDS, resource_names: [] });
  s.handle({ type_url: EDS, resource_names: [BACKEND] });
  s.handle({ type_url: CDS, resource_names: [] });
  for (const r of s.take()) s.handle({ type_url: r.type_url, version_info: r.version_info, response_nonce: r.nonce, resource_names: r.type_url === EDS ? [BACKEND] : r.type_url === RDS ? ['outbound', 'inbound'] : [] });
  assert.equal(hooks.acks.length, 4);

  const next = snapshotFor(withAdminPort(), FRONTEND_ID, 2);
  hooks.cache.set(FRONTEND_ID, next);
  const pushed = s.take();
  assert.deepEqual(pushed.map((r) => shortTypeName(r.type_url)), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration']);
  for (const r of pushed) assert.equal(r.version_info, typeVersion(next, r.type_url));
});

test('sotw: a stream that arrives before its snapshot gets every subscribed type once the snapshot is set', () => {
  const hooks = new RecordingHooks();
  const s = sotwStream(hooks);
  s.handle({ node: NODE, type_url: LDS, resource_names: [] });
  s.handle({ type_url: CDS, resource_names: [] });
  assert.deepEqual(s.take(), []);
  hooks.cache.set(FRONTEND_ID, snapshotFor(shop()));
  assert.deepEqual(s.take().map((r) => shortTypeName(r.type_url)), ['Cluster', 'Listener']);
});

// ---- delta ----------------------------------------------------------------------------------

const deltaSummary = (r: DeltaResponse): string =>
  `${shortTypeName(r.type_url)} +[${r.resources.map((x) => x.name).sort().join(' ')}] -[${[...r.removed_resources].sort().join(' ')}]`;

/** Subscribes a delta stream to everything: wildcard on all four types. */
/** Takes what the stream sent and ACKs each response, as a proxy does once it applied them. */
function takeAndAck(s: ReturnType<typeof deltaStream>): DeltaResponse[] {
  const sent = s.take();
  for (const r of sent) s.handle({ type_url: r.type_url, response_nonce: r.nonce });
  return sent;
}

function subscribeAll(s: ReturnType<typeof deltaStream>, initial: Partial<Record<string, Record<string, string>>> = {}): void {
  for (const [i, t] of [CDS, EDS, LDS, RDS].entries()) {
    s.handle({ ...(i === 0 ? { node: NODE } : {}), type_url: t, resource_names_subscribe: ['*'], initial_resource_versions: initial[t] ?? {} });
  }
}

test('delta: a wildcard subscription gets every resource, with per-resource versions equal across streams and restarts', () => {
  const { hooks, snapshot } = setup();
  const a = deltaStream(hooks);
  const b = deltaStream(hooks);
  subscribeAll(a);
  subscribeAll(b);
  // A restarted control plane encodes the same world again, into a new cache.
  const restarted = new RecordingHooks();
  restarted.cache.set(FRONTEND_ID, snapshotFor(shop(), FRONTEND_ID, 99));
  const c = deltaStream(restarted);
  subscribeAll(c);

  const versions = (responses: DeltaResponse[]): Record<string, Record<string, string>> =>
    Object.fromEntries(responses.map((r) => [shortTypeName(r.type_url), Object.fromEntries(r.resources.map((x) => [x.name, x.version]))]));
  const fromA = versions(a.take());
  for (const t of [CDS, EDS, LDS, RDS]) {
    assert.deepEqual(Object.keys(fromA[shortTypeName(t)] ?? {}).sort(), snapshotNames(snapshot, t), shortTypeName(t));
  }
  assert.deepEqual(versions(b.take()), fromA);
  assert.deepEqual(versions(c.take()), fromA);
});

test('delta: an empty first LDS/CDS subscribe is a wildcard; an empty first EDS subscribe is not', () => {
  const { hooks, snapshot } = setup();
  const s = deltaStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names_subscribe: [] });
  s.handle({ type_url: EDS, resource_names_subscribe: [] });
  assert.deepEqual(s.take().map(deltaSummary), [
    `Cluster +[${snapshotNames(snapshot, CDS).join(' ')}] -[]`,
    'ClusterLoadAssignment +[] -[]',
  ]);
});

test('delta: initial_resource_versions matching the snapshot means nothing is resent, only an empty first response', () => {
  const { hooks, snapshot } = setup();
  const held = Object.fromEntries([CDS, EDS, LDS, RDS].map((t) =>
    [t, Object.fromEntries([...snapshot.types.get(t)!.resources.values()].map((r) => [r.name, r.version]))]));
  const s = deltaStream(hooks);
  subscribeAll(s, held);
  const first = s.take();
  assert.deepEqual(first.map(deltaSummary), [
    'Cluster +[] -[]', 'ClusterLoadAssignment +[] -[]', 'Listener +[] -[]', 'RouteConfiguration +[] -[]',
  ]);
  for (const r of first) s.handle({ type_url: r.type_url, response_nonce: r.nonce });
  assert.deepEqual(s.take(), [], 'ACKs of the empty responses send nothing more');
  assert.equal(hooks.acks.length, 4);
});

test('delta: on reconnect only resources that changed are resent, and ones that are gone are removed', () => {
  const { hooks, snapshot } = setup();
  const held = Object.fromEntries([...snapshot.types.get(CDS)!.resources.values()].map((r) => [r.name, r.version]));
  held[BACKEND] = 'an-old-version';
  held['outbound|80||gone.shop.svc.cluster.local'] = 'whatever';
  const s = deltaStream(hooks);
  s.handle({ node: NODE, type_url: CDS, resource_names_subscribe: ['*'], initial_resource_versions: held });
  assert.deepEqual(s.take().map(deltaSummary), [`Cluster +[${BACKEND}] -[outbound|80||gone.shop.svc.cluster.local]`]);
});

test('delta: after unsubscribing a name, changes to it are no longer sent', () => {
  const { hooks } = setup();
  const s = deltaStream(hooks);
  s.handle({ node: NODE, type_url: EDS, resource_names_subscribe: [BACKEND, FRONTEND] });
  const [first] = s.take();
  assert.equal(deltaSummary(first!), `ClusterLoadAssignment +[${BACKEND} ${FRONTEND}] -[]`);
  s.handle({ type_url: EDS, response_nonce: first!.nonce, resource_names_unsubscribe: [FRONTEND] });
  assert.deepEqual(s.take(), [], 'unsubscribing sends nothing');

  // New pods behind both Services: only the still-subscribed assignment is sent.
  hooks.cache.set(FRONTEND_ID, snapshotFor([
    ...shop(),
    pod('frontend-2', '127.0.0.12', { app: 'frontend' }),
    pod('backend-v1b', '127.0.0.23', { app: 'backend', version: 'v1' }),
  ], FRONTEND_ID, 2));
  assert.deepEqual(s.take().map(deltaSummary), [`ClusterLoadAssignment +[${BACKEND}] -[]`]);
});

test('delta: a snapshot change that adds a subset and removes another sends additions in CDS, EDS, LDS, RDS order, then removals in LDS, RDS, CDS, EDS order', () => {
  const v1v2 = [...shop(), policy('backend', 'backend', [split(90, 10)], SUBSETS)];
  const { hooks } = setup(v1v2);
  const s = deltaStream(hooks);
  subscribeAll(s);
  takeAndAck(s);

  const V3 = [SUBSETS[0]!, { name: 'v3', labels: { version: 'v3' } }];
  const v1v3 = [
    ...shop(),
    pod('backend-v3', '127.0.0.23', { app: 'backend', version: 'v3' }),
    policy('backend', 'backend', [{ name: 'default', match: [], backends: [{ kind: 'subset', subset: 'v1', weight: 50 }, { kind: 'subset', subset: 'v3', weight: 50 }] }], V3),
  ];
  hooks.cache.set(FRONTEND_ID, snapshotFor(v1v3, FRONTEND_ID, 2));
  assert.deepEqual(s.take().map(deltaSummary), [
    `Cluster +[outbound|80|v3|${BACKEND_HOST}] -[]`,
    `ClusterLoadAssignment +[outbound|80|v3|${BACKEND_HOST} ${BACKEND}] -[]`,
    'RouteConfiguration +[outbound] -[]',
    `Cluster +[] -[outbound|80|v2|${BACKEND_HOST}]`,
    `ClusterLoadAssignment +[] -[outbound|80|v2|${BACKEND_HOST}]`,
  ]);
});

test('delta: when every type gains and loses a resource, additions go CDS, EDS, LDS, RDS and removals LDS, RDS, CDS, EDS', () => {
  // A proxyless client has one listener and route configuration per Service port, so replacing
  // a Service adds and removes a resource of every type.
  const proxyless = 'proxyless~ads-stream-test';
  const hooks = new RecordingHooks();
  const before = [...shop(), service('cart', [{ port: 80 }]), pod('cart', '127.0.0.31', { app: 'cart' })];
  const after = [...shop(), service('orders', [{ port: 80 }]), pod('orders', '127.0.0.32', { app: 'orders' })];
  hooks.cache.set(proxyless, snapshotFor(before, proxyless));
  const s = deltaStream(hooks);
  for (const [i, t] of [CDS, EDS, LDS, RDS].entries()) {
    s.handle({ ...(i === 0 ? { node: { id: proxyless } } : {}), type_url: t, resource_names_subscribe: ['*'] });
  }
  takeAndAck(s);
  hooks.cache.set(proxyless, snapshotFor(after, proxyless, 2));
  const order = s.take().map((r) => `${shortTypeName(r.type_url)} ${r.resources.length ? 'add' : ''}${r.removed_resources.length ? 'remove' : ''}`);
  assert.deepEqual(order, [
    'Cluster add', 'ClusterLoadAssignment add', 'Listener add', 'RouteConfiguration add',
    'Listener remove', 'RouteConfiguration remove', 'Cluster remove', 'ClusterLoadAssignment remove',
  ]);
});

test('delta: a NACK is recorded with its detail and the rejected system version; an ACK with the version', () => {
  const { hooks, snapshot } = setup();
  const s = deltaStream(hooks);
  subscribeAll(s);
  const byType = new Map(s.take().map((r) => [r.type_url, r]));
  const cds = byType.get(CDS)!;
  const lds = byType.get(LDS)!;
  s.handle({ type_url: CDS, response_nonce: cds.nonce, error_detail: { code: 3, message: 'Cluster "x": transport_socket (TLS) is not supported' } });
  s.handle({ type_url: LDS, response_nonce: lds.nonce });
  s.handle({ type_url: LDS, response_nonce: 'never-sent', error_detail: { code: 3, message: 'ignored' } });
  assert.deepEqual(hooks.nacks, [{ node: FRONTEND_ID, type: 'Cluster', version: typeVersion(snapshot, CDS), detail: 'Cluster "x": transport_socket (TLS) is not supported' }]);
  assert.deepEqual(hooks.acks, [{ node: FRONTEND_ID, type: 'Listener', version: typeVersion(snapshot, LDS) }]);
  assert.deepEqual(s.take(), [], 'a NACK does not make the stream resend');
});

test('delta: what a proxy rejected is offered again on the next push, even if unchanged', () => {
  const v90 = [...shop(), policy('backend', 'backend', [split(90, 10)], SUBSETS)];
  const { hooks } = setup(v90);
  const s = deltaStream(hooks);
  subscribeAll(s);
  takeAndAck(s);
  // The route table changes; the proxy rejects it.
  hooks.cache.set(FRONTEND_ID, snapshotFor([...shop(), policy('backend', 'backend', [split(50, 50)], SUBSETS)], FRONTEND_ID, 2));
  const pushed = s.take();
  for (const r of pushed) {
    s.handle(r.type_url === RDS ? { type_url: RDS, response_nonce: r.nonce, error_detail: { code: 3, message: 'cannot bind' } } : { type_url: r.type_url, response_nonce: r.nonce });
  }
  // An unrelated change (a new endpoint) comes along: the rejected route table is offered again.
  hooks.cache.set(FRONTEND_ID, snapshotFor([...shop(), pod('backend-v2b', '127.0.0.23', { app: 'backend', version: 'v2' }),
    policy('backend', 'backend', [split(50, 50)], SUBSETS)], FRONTEND_ID, 3));
  const again = s.take().map(deltaSummary);
  assert.ok(again.includes('RouteConfiguration +[outbound] -[]'), again.join('\n'));
});

test('delta: a first request without node.id fails the stream', () => {
  const { hooks } = setup();
  const s = deltaStream(hooks);
  s.handle({ type_url: CDS, resource_names_subscribe: ['*'] });
  assert.equal(s.failures.length, 1);
  assert.deepEqual(s.responses, []);
});

test('delta: flow control — changes while a push is unanswered are held, and one catch-up brings the newest snapshot once it is answered', () => {
  const { hooks } = setup();
  const s = deltaStream(hooks);
  subscribeAll(s);
  takeAndAck(s);
  hooks.cache.set(FRONTEND_ID, snapshotFor([...shop(), pod('backend-v1b', '127.0.0.23', { app: 'backend', version: 'v1' })], FRONTEND_ID, 2));
  const first = s.take();
  assert.deepEqual(first.map(deltaSummary), [`ClusterLoadAssignment +[${BACKEND}] -[]`]);
  // Two more changes before the proxy answered: nothing is sent meanwhile.
  hooks.cache.set(FRONTEND_ID, snapshotFor([...shop(), pod('backend-v1b', '127.0.0.23', { app: 'backend', version: 'v1' }), pod('backend-v1c', '127.0.0.24', { app: 'backend', version: 'v1' })], FRONTEND_ID, 3));
  hooks.cache.set(FRONTEND_ID, snapshotFor([...shop(), pod('backend-v1c', '127.0.0.24', { app: 'backend', version: 'v1' })], FRONTEND_ID, 4));
  assert.deepEqual(s.take(), [], 'held while the last push is unanswered');
  s.handle({ type_url: EDS, response_nonce: first[0]!.nonce });
  const catchUp = s.take();
  assert.deepEqual(catchUp.map(deltaSummary), [`ClusterLoadAssignment +[${BACKEND}] -[]`], 'one push, of the newest snapshot');
  const newest = hooks.cache.get(FRONTEND_ID)!.types.get(EDS)!.resources.get(BACKEND)!.version;
  assert.equal(catchUp[0]!.resources[0]!.version, newest);
});
