/**
 * Issue 2, "Show it": bad manifests (a YAML syntax error, an unknown kind, a schema violation) are
 * reported with file, line where known, and reason; everything valid in the directory still
 * applies, and a bad edit never takes down what was working.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, getJson, share, ShopMesh, splitPolicyYaml, writeManifest } from './mesh';

const mesh = new ShopMesh(4, 'bad');
const HOST = ShopMesh.HOST;
type Diagnostic = { file: string; line?: number; reason: string; severity: string };
const diagnostics = (): Promise<Diagnostic[]> => getJson(`http://${mesh.cpIp}:15014/debug/diagnostics`);

before(async () => {
  writeManifest(mesh.dir, 'broken.yaml', 'apiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  labels: {a: b\nspec: {}\n');
  writeManifest(mesh.dir, 'unknown.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: fine, namespace: shop}\nspec:\n  ports: [{port: 81}]\n---\napiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n');
  writeManifest(mesh.dir, 'invalid.yaml', `# a comment\n${splitPolicyYaml('shop', 'other', 50, 50).replace('weight: 50}\n', 'weight: 500}\n')}`);
  await mesh.start([0, 100]);
});
after(() => mesh.close());

test('a YAML syntax error, an unknown kind and a schema violation are each reported with file, line and reason', async () => {
  const diags = await diagnostics();
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
  const { counts, failures } = await mesh.client.spread(HOST, 100);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, mesh.v2.name), 100);
  // The valid Service next to the unknown kind is served too (a route exists for it).
  const fine = await mesh.client.get('fine.shop.svc.cluster.local:81');
  assert.equal(fine.status, 503, fine.body); // known Service, no endpoints: not a 404
});

test('a bad edit to a working policy is reported and the last good policy keeps serving', async () => {
  writeManifest(mesh.dir, 'policy.yaml', splitPolicyYaml('shop', 'backend', 0, 100).replace('kind: Service', 'kind: Deployment'));
  await eventually('the bad edit to be reported', async () => (await diagnostics()).some((d) => d.file === 'policy.yaml'), 2000);
  const { counts, failures } = await mesh.client.spread(HOST, 100);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, mesh.v2.name), 100, JSON.stringify([...counts]));
});
