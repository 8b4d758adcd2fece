/**
 * Issue 2, "Show it": bad manifests (a YAML syntax error, an unknown kind, a schema violation) are
 * reported with file, line where known, and reason; everything valid in the directory still
 * applies, and a bad edit never takes down what was working.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import {
  closeServer, controlPlane, eventually, getJson, httpApp, MeshClient, podYaml, serviceYaml, share, sidecar, splitPolicyYaml, tempDir, writeManifest,
} from './mesh';

const NS = 'shop';
const CP = '127.10.4.1';
const FRONTEND = { name: 'frontend', ip: '127.10.4.11', labels: { app: 'frontend' } };
const V1 = { name: 'backend-v1', ip: '127.10.4.21', labels: { app: 'backend', version: 'v1' } };
const V2 = { name: 'backend-v2', ip: '127.10.4.22', labels: { app: 'backend', version: 'v2' } };
const HOST = 'backend.shop.svc.cluster.local';

let dir: string;
let cp: ControlPlane;
let sc: Sidecar;
let client: MeshClient;
const closers: (() => Promise<void>)[] = [];

before(async () => {
  dir = tempDir('bad');
  writeManifest(dir, 'pods.yaml', [FRONTEND, V1, V2].map((p) => podYaml(NS, p)).join('---\n'));
  writeManifest(dir, 'services.yaml', serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]));
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100));
  writeManifest(dir, 'broken.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  labels: {a: b\nspec: {}\n');
  writeManifest(dir, 'unknown.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: fine, namespace: shop}\nspec:\n  ports: [{port: 81}]\n---\napiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n');
  writeManifest(dir, 'invalid.yaml', `# a comment\n${splitPolicyYaml(NS, 'other', 50, 50).replace('weight: 50}\n', 'weight: 500}\n')}`);
  for (const p of [V1, V2]) {
    const h = await httpApp(p.ip, 8080, p.name);
    closers.push(() => closeServer(h));
  }
  cp = await controlPlane(dir, CP);
  sc = await sidecar(CP, NS, FRONTEND);
  client = new MeshClient(FRONTEND.ip);
});

after(async () => {
  client?.close();
  await sc?.close();
  await cp?.close();
  for (const c of closers) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a YAML syntax error, an unknown kind and a schema violation are each reported with file, line and reason', async () => {
  const diags: { file: string; line?: number; reason: string; severity: string }[] = await getJson(`http://${CP}:15014/debug/diagnostics`);
  const broken = diags.find((d) => d.file === 'broken.yaml');
  assert.ok(broken, JSON.stringify(diags));
  assert.equal(broken.severity, 'error');
  assert.equal(typeof broken.line, 'number');
  const gizmo = diags.find((d) => d.file === 'unknown.yaml');
  assert.ok(gizmo && /Gizmo/.test(gizmo.reason), JSON.stringify(diags));
  assert.equal(gizmo.line, 7);
  const weight = diags.find((d) => d.file === 'invalid.yaml');
  assert.ok(weight && /spec\.routes\[0\]\.backends\[0\]\.weight/.test(weight.reason), JSON.stringify(diags));
  assert.equal(weight.line, 2);
});

test('everything valid in the directory still applies', async () => {
  const { counts, failures } = await client.spread(HOST, 100);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, V2.name), 100);
  // The valid Service next to the unknown kind is served too (a route exists for it).
  const fine = await client.get('fine.shop.svc.cluster.local:81');
  assert.equal(fine.status, 503, fine.body); // known Service, no endpoints: not a 404
});

test('a bad edit to a working policy is reported and the last good policy keeps serving', async () => {
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100).replace('kind: Service', 'kind: Deployment'));
  await eventually('the bad edit to be reported', async () => {
    const diags: { file: string; reason: string }[] = await getJson(`http://${CP}:15014/debug/diagnostics`);
    return diags.some((d) => d.file === 'policy.yaml');
  }, 2000);
  const { counts, failures } = await client.spread(HOST, 100);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, V2.name), 100, JSON.stringify([...counts]));
});
