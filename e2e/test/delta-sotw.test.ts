/**
 * Issue 2, "Show it": delta and state-of-the-world clients get the same resources; a delta client
 * is sent only what changed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { TypeUrl, unpackAny } from '@weft/api';
import type { ControlPlane } from '@weft/control-plane';
import { controlPlane, eventually, podYaml, type PodSpec, serviceYaml, sleep, splitPolicyYaml, tempDir, writeManifest } from './mesh';
import { DeltaClient, SotwClient, type Held } from './ads-clients';

const NS = 'shop';
const CP = '127.10.5.1';
const pods: PodSpec[] = [
  { name: 'frontend', ip: '127.10.5.11', labels: { app: 'frontend' } },
  { name: 'backend-v1', ip: '127.10.5.21', labels: { app: 'backend', version: 'v1' } },
  { name: 'backend-v2', ip: '127.10.5.22', labels: { app: 'backend', version: 'v2' } },
];
const NODE = 'sidecar~127.10.5.11~frontend.shop~shop.svc.cluster.local';

let dir: string;
let cp: ControlPlane;
let sotw: SotwClient;
let delta: DeltaClient;

function namesFor(typeUrl: string, held: Held): string[] | undefined {
  if (typeUrl === TypeUrl.ClusterLoadAssignment) {
    const clusters = held.get(TypeUrl.Cluster);
    if (!clusters) return undefined;
    return [...clusters].map(([, b64]) => unpackAny({ type_url: TypeUrl.Cluster, value: Buffer.from(b64, 'base64') }))
      .filter((c: any) => c.type === 'EDS').map((c: any) => c.eds_cluster_config.service_name).sort();
  }
  const listeners = held.get(TypeUrl.Listener);
  if (!listeners) return undefined;
  const names = new Set<string>();
  for (const [, b64] of listeners) {
    const l: any = unpackAny({ type_url: TypeUrl.Listener, value: Buffer.from(b64, 'base64') });
    const hcm = l.filter_chains?.[0]?.filters?.[0]?.typed_config;
    if (hcm?.rds?.route_config_name) names.add(hcm.rds.route_config_name);
  }
  return [...names].sort();
}

before(async () => {
  dir = tempDir('delta');
  writeManifest(dir, 'pods.yaml', pods.map((p) => podYaml(NS, p)).join('---\n'));
  writeManifest(dir, 'services.yaml', [
    serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    serviceYaml(NS, 'frontend', { app: 'frontend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
  ].join('---\n'));
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 90, 10));
  cp = await controlPlane(dir, CP);
  sotw = new SotwClient(`${CP}:15010`, NODE, namesFor);
  delta = new DeltaClient(`${CP}:15010`, NODE);
});

after(async () => {
  sotw?.close();
  delta?.close();
  await cp?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const TYPES = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration];

test('delta and state-of-the-world clients hold the same resources, byte for byte', async () => {
  await eventually('both clients to hold all four types', () =>
    TYPES.every((t) => sotw.held.has(t) && delta.held.has(t)) && sotw.held.get(TypeUrl.ClusterLoadAssignment)!.size > 0);
  await sleep(200);
  for (const t of TYPES) {
    assert.deepEqual(new Map([...sotw.held.get(t)!].sort()), new Map([...delta.held.get(t)!].sort()), t);
  }
  assert.equal(delta.held.get(TypeUrl.Cluster)!.size, 5); // backend: all, v1, v2; frontend: all; inbound|8080||
});

test('a delta client is sent only the resources that changed', async () => {
  const deltaBefore = delta.log.length;
  const sotwBefore = sotw.log.length;
  // One more v2 pod: only the endpoints of "backend" and of its v2 subset change.
  writeManifest(dir, 'pods.yaml', [...pods, { name: 'backend-v2b', ip: '127.10.5.23', labels: { app: 'backend', version: 'v2' } }]
    .map((p) => podYaml(NS, p)).join('---\n'));
  await eventually('the change to arrive', () => delta.log.length > deltaBefore, 2000);
  await sleep(300);
  const sent = delta.log.slice(deltaBefore);
  assert.deepEqual(sent.map((r) => r.typeUrl), [TypeUrl.ClusterLoadAssignment]);
  assert.deepEqual(sent[0]!.names.sort(), ['outbound|80|v2|backend.shop.svc.cluster.local', 'outbound|80||backend.shop.svc.cluster.local']);
  assert.deepEqual(sent[0]!.removed, []);
  // The state-of-the-world client gets the whole type again, and still agrees.
  const sotwSent = sotw.log.slice(sotwBefore);
  assert.deepEqual(sotwSent.map((r) => r.typeUrl), [TypeUrl.ClusterLoadAssignment]);
  assert.equal(sotwSent[0]!.names.length, sotw.held.get(TypeUrl.ClusterLoadAssignment)!.size);
  for (const t of TYPES) assert.deepEqual(new Map([...sotw.held.get(t)!].sort()), new Map([...delta.held.get(t)!].sort()), t);

  // Removing a Service removes its resources from the delta client by name.
  const deltaMid = delta.log.length;
  writeManifest(dir, 'services.yaml', serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]));
  await eventually('the removal to arrive', () => delta.log.slice(deltaMid).some((r) => r.removed.length > 0), 2000);
  await sleep(300);
  const removed = delta.log.slice(deltaMid).flatMap((r) => r.removed);
  assert.ok(removed.includes('outbound|80||frontend.shop.svc.cluster.local'), JSON.stringify(removed));
  assert.ok(!delta.held.get(TypeUrl.Cluster)!.has('outbound|80||frontend.shop.svc.cluster.local'));
});
