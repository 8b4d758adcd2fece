/**
 * The sidecar's XdsClient against the control plane's real AdsServer on 127.0.0.1, with a
 * SnapshotCache the test fills itself. The client validates with the sidecar's real
 * `buildProxyConfig`, so a NACK's detail is what a user would see.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { createLogger, parseNodeId, sidecarNodeId, TypeUrl, type KubeObject, type NodeIdentity } from '@weft/api';
import { AdsServer, buildWorld, encodeSnapshot, SnapshotCache, translate, type AdsHooks, type NodeSnapshot, type Resources } from '@weft/control-plane';
import { buildProxyConfig, XdsClient, type HeldState } from '@weft/sidecar';

const NODE_ID = sidecarNodeId('127.0.0.11', 'frontend', 'shop');
const TYPES = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration];
type Obj = Record<string, unknown>;

// ---- worlds and snapshots -------------------------------------------------------------------

const meta = (name: string, labels: Record<string, string> = {}) => ({ name, namespace: 'shop', labels, annotations: {} });
const service = (name: string, port: number, targetPort: number, app = name): KubeObject =>
  ({ kind: 'Service', meta: meta(name), selector: { app }, ports: [{ name: 'http', port, targetPort, protocol: 'TCP' }] });
const pod = (name: string, ip: string, app: string): KubeObject =>
  ({ kind: 'Pod', meta: meta(name, { app }), serviceAccount: 'default', podIP: ip, ready: true, containerPorts: [] });

const SHOP: KubeObject[] = [
  service('frontend', 80, 8080),
  service('backend', 80, 8080),
  pod('frontend', '127.0.0.11', 'frontend'),
  pod('backend-1', '127.0.0.21', 'backend'),
];

const node = (): NodeIdentity => parseNodeId(NODE_ID);
const resourcesFor = (objects: KubeObject[]): Resources => translate(buildWorld(objects, new Set(), 1), node());
const snapshotOf = (resources: Resources, generation = 1): NodeSnapshot => encodeSnapshot(resources, generation);

/** The translated resources with one more object of `typeUrl` added. */
function withExtra(resources: Resources, typeUrl: string, object: Obj): Resources {
  const copy = new Map([...resources].map(([t, m]) => [t, new Map(m)]));
  copy.get(typeUrl as never)!.set(String(object.name), object);
  return copy;
}

/** name → version of every resource in the snapshot, by type. */
function versionsIn(s: NodeSnapshot): Record<string, Record<string, string>> {
  return Object.fromEntries(TYPES.map((t) => [t, Object.fromEntries([...s.types.get(t)!.resources.values()].map((r) => [r.name, r.version]))]));
}
function versionsHeld(held: HeldState): Record<string, Record<string, string>> {
  return Object.fromEntries(TYPES.map((t) => [t, Object.fromEntries([...(held.get(t) ?? new Map())].map(([n, r]) => [n, r.version]))]));
}

// ---- a control plane the test drives --------------------------------------------------------

interface Recorded {
  readonly hooks: AdsHooks;
  readonly connections: string[];
  readonly sends: { type: string; count: number }[];
  readonly acks: { type: string; version: string }[];
  readonly nacks: { type: string; version: string; detail: string }[];
}

function recordingHooks(cache = new SnapshotCache()): Recorded {
  const r = { connections: [] as string[], sends: [] as Recorded['sends'], acks: [] as Recorded['acks'], nacks: [] as Recorded['nacks'] };
  const hooks: AdsHooks = {
    cache,
    connected: (n) => void r.connections.push(n.id),
    disconnected: () => undefined,
    sent: (_n, type, _v, _nonce, count) => void r.sends.push({ type, count }),
    acked: (_n, type, version) => void r.acks.push({ type, version }),
    nacked: (_n, type, version, detail) => void r.nacks.push({ type, version, detail }),
  };
  return { hooks, ...r };
}

async function startServer(rec: Recorded, port = 0): Promise<AdsServer> {
  const server = new AdsServer(rec.hooks, createLogger({}, () => undefined, 100), 'weft-control-plane@xds-client-test');
  await server.listen(`127.0.0.1:${port}`);
  return server;
}

// ---- the client -------------------------------------------------------------------------------

interface LogLine { readonly at: number; readonly msg: string; readonly [k: string]: unknown }

function heldResources(held: HeldState): { listeners: Obj[]; routes: Obj[]; clusters: Obj[]; assignments: Obj[] } {
  const of = (t: string): Obj[] => [...(held.get(t)?.values() ?? [])].map((r) => r.resource);
  return { listeners: of(TypeUrl.Listener), routes: of(TypeUrl.RouteConfiguration), clusters: of(TypeUrl.Cluster), assignments: of(TypeUrl.ClusterLoadAssignment) };
}

function startClient(port: number, backoff = { baseMs: 40, maxMs: 320 }): { client: XdsClient; log: LogLine[]; applied: string[] } {
  const log: LogLine[] = [];
  const applied: string[] = [];
  const client = new XdsClient({
    address: `127.0.0.1:${port}`,
    nodeId: NODE_ID,
    types: TYPES,
    log: createLogger({}, (line) => log.push({ at: Date.now(), ...JSON.parse(line) }), 0),
    backoff,
    // As the sidecar does: validate the whole candidate, NACK with the errors.
    apply: async (candidate, typeUrl) => {
      applied.push(typeUrl);
      const built = buildProxyConfig(heldResources(candidate));
      return built.ok ? undefined : built.errors.join('; ');
    },
  });
  client.start();
  return { client, log, applied };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, check: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const settled = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true), sleep(ms).then(() => false)]);

// ---- tests ----------------------------------------------------------------------------------

test('synced resolves only once every subscribed type has had its first response applied', async (t) => {
  const rec = recordingHooks();
  const server = await startServer(rec);
  const { client, applied } = startClient(server.port);
  t.after(async () => { client.close(); await server.close(); });

  await eventually('the client to connect', () => rec.connections.includes(NODE_ID));
  assert.equal(await settled(client.synced, 200), false, 'no snapshot yet: not synced');
  assert.deepEqual(applied, []);

  const snapshot = snapshotOf(resourcesFor(SHOP));
  rec.hooks.cache.set(NODE_ID, snapshot);
  await client.synced;
  assert.deepEqual([...applied].sort(), [...TYPES].sort(), 'one apply per type');
  assert.deepEqual(versionsHeld(client.current), versionsIn(snapshot));
  for (const type of TYPES) assert.equal(client.versions.get(type), snapshot.types.get(type)!.version);
  await eventually('four ACKs', () => rec.acks.length === 4);
  assert.deepEqual(rec.nacks, []);
});

test('a config the sidecar cannot honour is NACKed with the reason, and the held state stays as it was', async (t) => {
  const rec = recordingHooks();
  const good = resourcesFor(SHOP);
  rec.hooks.cache.set(NODE_ID, snapshotOf(good));
  const server = await startServer(rec);
  const { client } = startClient(server.port);
  t.after(async () => { client.close(); await server.close(); });
  await client.synced;
  const before = client.current;
  const versionBefore = client.versions.get(TypeUrl.Cluster);

  const bad = withExtra(good, TypeUrl.Cluster, { name: 'ring', type: 'STATIC', lb_policy: 'MAGLEV', load_assignment: { cluster_name: 'ring' } });
  const badSnapshot = snapshotOf(bad, 2);
  rec.hooks.cache.set(NODE_ID, badSnapshot);
  const nack = await eventually('a NACK', () => rec.nacks[0]);
  assert.equal(nack.type, TypeUrl.Cluster);
  assert.equal(nack.version, badSnapshot.types.get(TypeUrl.Cluster)!.version);
  assert.match(nack.detail, /Cluster "ring": lb_policy MAGLEV is not supported/);
  assert.equal(client.current, before, 'the held state is the same object');
  assert.ok(!client.current.get(TypeUrl.Cluster)?.has('ring'));
  assert.equal(client.versions.get(TypeUrl.Cluster), versionBefore);
  assert.equal(client.nacks.get(TypeUrl.Cluster), nack.detail);

  // The next good config is applied and clears the rejection.
  const fixed = snapshotOf(resourcesFor([...SHOP, service('cart', 80, 8080), pod('cart-1', '127.0.0.31', 'cart')]), 3);
  rec.hooks.cache.set(NODE_ID, fixed);
  await eventually('the fixed config to be applied', () => client.versions.get(TypeUrl.Cluster) === fixed.types.get(TypeUrl.Cluster)!.version);
  assert.equal(client.nacks.has(TypeUrl.Cluster), false);
  assert.deepEqual(versionsHeld(client.current), versionsIn(fixed));
});

test('when the control plane goes away the client backs off with jittered exponential delays, then resumes on a new server sending only what changed', async (t) => {
  const rec1 = recordingHooks();
  const first = snapshotOf(resourcesFor(SHOP));
  rec1.hooks.cache.set(NODE_ID, first);
  const server1 = await startServer(rec1);
  const port = server1.port;
  const backoff = { baseMs: 40, maxMs: 320 };
  const { client, log } = startClient(port, backoff);
  let server2: AdsServer | undefined;
  t.after(async () => { client.close(); await server1.close(); await server2?.close(); });
  await client.synced;
  await eventually('four ACKs', () => rec1.acks.length === 4);

  await server1.close();
  const backoffs = (): LogLine[] => log.filter((l) => / -> BACKOFF$/.test(l.msg));
  await eventually('five failed attempts', () => backoffs().length >= 5);

  // The restarted control plane has the same world plus one Service.
  const rec2 = recordingHooks();
  const second = snapshotOf(resourcesFor([...SHOP, service('cart', 80, 8080), pod('cart-1', '127.0.0.31', 'cart')]), 7);
  rec2.hooks.cache.set(NODE_ID, second);
  server2 = await startServer(rec2, port);
  await eventually('the client to resync with the new server', () => rec2.acks.length >= 4);

  // Delays: within [ceiling/2, ceiling] of a ceiling that doubles from baseMs up to maxMs, and
  // each reconnect waited at least that long.
  const tried = backoffs();
  tried.slice(0, 5).forEach((l, i) => {
    const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** i);
    const delay = l.retryInMs as number;
    assert.ok(delay >= ceiling / 2 && delay <= ceiling, `attempt ${i}: ${delay} ms not in [${ceiling / 2}, ${ceiling}]`);
    const next = log.find((x) => x.at >= l.at && log.indexOf(x) > log.indexOf(l) && / -> CONNECTING$/.test(x.msg));
    assert.ok(next, `attempt ${i} was retried`);
    assert.ok(next.at - l.at >= delay - 2, `attempt ${i}: retried after ${next.at - l.at} ms, before its ${delay} ms delay`);
  });

  // Only resources whose content differs (or that are new) were sent again.
  for (const type of TYPES) {
    const had = versionsIn(first)[type]!;
    const changed = Object.entries(versionsIn(second)[type]!).filter(([n, v]) => had[n] !== v).length;
    const sends = rec2.sends.filter((s) => s.type === type);
    assert.equal(sends.reduce((sum, s) => sum + s.count, 0), changed, `${type}: ${changed} changed resources`);
    assert.ok(changed < Object.keys(versionsIn(second)[type]!).length || type === TypeUrl.RouteConfiguration, `${type}: some resources are unchanged`);
  }
  await eventually('the new config to be held', () => isDeepStrictEqual(versionsHeld(client.current), versionsIn(second)));
  assert.ok(log.some((l) => l.msg === 'xds CONNECTING -> READY' && l.at > tried[0]!.at), 'READY again');
});

test('reconnect delays are jittered: two clients do not retry in step', async (t) => {
  const rec = recordingHooks();
  rec.hooks.cache.set(NODE_ID, snapshotOf(resourcesFor(SHOP)));
  const server = await startServer(rec);
  const a = startClient(server.port, { baseMs: 200, maxMs: 200 });
  const b = startClient(server.port, { baseMs: 200, maxMs: 200 });
  t.after(() => { a.client.close(); b.client.close(); });
  await Promise.all([a.client.synced, b.client.synced]);
  await server.close();
  const delays = (l: LogLine[]): number[] => l.filter((x) => / -> BACKOFF$/.test(x.msg)).map((x) => x.retryInMs as number);
  await eventually('three backoffs each', () => delays(a.log).length >= 3 && delays(b.log).length >= 3);
  const da = delays(a.log).slice(0, 3);
  const db = delays(b.log).slice(0, 3);
  for (const d of [...da, ...db]) assert.ok(d >= 100 && d <= 200, String(d));
  assert.notDeepEqual(da, db, `both clients waited ${da.join(', ')} ms`);
});

test('close() is idempotent and stops reconnecting', async (t) => {
  const rec1 = recordingHooks();
  rec1.hooks.cache.set(NODE_ID, snapshotOf(resourcesFor(SHOP)));
  const server1 = await startServer(rec1);
  const port = server1.port;
  const { client, log } = startClient(port, { baseMs: 40, maxMs: 80 });
  let server2: AdsServer | undefined;
  t.after(async () => { client.close(); await server2?.close(); });
  await client.synced;
  await server1.close();
  await eventually('a backoff', () => log.some((l) => / -> BACKOFF$/.test(l.msg)));

  client.close();
  client.close();
  assert.equal(log.filter((l) => / -> CLOSED$/.test(l.msg)).length, 1);

  const rec2 = recordingHooks();
  rec2.hooks.cache.set(NODE_ID, snapshotOf(resourcesFor(SHOP)));
  server2 = await startServer(rec2, port);
  await sleep(500); // several times the longest backoff
  assert.deepEqual(rec2.connections, [], 'a closed client does not reconnect');
  assert.equal(log.filter((l) => / -> CONNECTING$/.test(l.msg) && l.at > log.find((x) => / -> CLOSED$/.test(x.msg))!.at).length, 0);
});

test('close() while connected ends the stream and the server sees the proxy leave', async () => {
  const disconnected: string[] = [];
  const rec = recordingHooks();
  const hooks: AdsHooks = { ...rec.hooks, disconnected: (n) => void disconnected.push(n.id) };
  hooks.cache.set(NODE_ID, snapshotOf(resourcesFor(SHOP)));
  const server = new AdsServer(hooks, createLogger({}, () => undefined, 100), 'weft-control-plane@xds-client-test');
  await server.listen('127.0.0.1:0');
  const { client, log } = startClient(server.port);
  try {
    await client.synced;
    client.close();
    await eventually('the server to see the disconnect', () => disconnected.includes(NODE_ID));
    await sleep(200);
    assert.equal(log.filter((l) => / -> (BACKOFF|CONNECTING)$/.test(l.msg) && l.at > log.find((x) => / -> CLOSED$/.test(x.msg))!.at).length, 0);
  } finally {
    client.close();
    await server.close();
  }
});
