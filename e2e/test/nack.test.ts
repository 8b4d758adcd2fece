/**
 * Issue 2, "Show it": a policy the sidecar cannot apply is NACKed with a reason; the previous
 * config keeps serving with zero failed requests; a fixed policy is taken again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, getJson, share, ShopMesh, sleep, steadyTraffic, writeManifest } from './mesh';

const mesh = new ShopMesh(2, 'nack');
const HOST = ShopMesh.HOST;

before(() => mesh.start([100, 0]));
after(() => mesh.close());

test('a route the sidecar cannot apply is NACKed with a reason while the last good config serves every request', async () => {
  const traffic = steadyTraffic(mesh.client, HOST);
  // Valid RE2 (the control plane accepts it, as Envoy and gRPC would) but not ECMAScript.
  mesh.setPolicy(0, 100, `  - name: case-insensitive
    match:
    - path: {regex: "(?i)/API/.*"}
    backends: [{subset: v2}]
`);
  const nack = await eventually('the NACK to reach the control plane', async () => (await mesh.sync())?.types?.RouteConfiguration?.lastNack);
  assert.match(nack.detail, /route "case-insensitive"/);
  assert.match(nack.detail, /regex "\(\?i\)\/API\/\.\*" is not supported by this sidecar/);

  const metrics = await (await fetch(`http://${mesh.cpIp}:15014/metrics`)).text();
  assert.match(metrics, /weft_xds_nacks_total\{type="RouteConfiguration"\} [1-9]/);

  // The previous route (all to v1) still serves.
  const { counts, failures } = await mesh.client.spread(HOST, 200);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, mesh.v1.name), 100);
  const dump = await getJson(`http://${mesh.frontend.ip}:15000/config_dump`);
  assert.match(JSON.stringify(dump.xds.rejected), /not supported by this sidecar/);

  // A fixed policy is accepted again and served.
  mesh.setPolicy(0, 100);
  await eventually('the fixed policy to apply', async () => (await mesh.client.get(HOST)).body === mesh.v2.name, 2000);
  const { failures: during } = await traffic.stop();
  assert.deepEqual(during, []);
});

test('a rejected route that still sends to a removed subset keeps being served from the retained cluster', async () => {
  mesh.setPolicy(100, 0);
  await eventually('v1 only', async () => (await mesh.client.spread(HOST, 20)).counts.get(mesh.v1.name) === 20, 2000);
  const traffic = steadyTraffic(mesh.client, HOST);
  // The new policy drops subset v1 (its cluster goes) and carries a route the sidecar rejects,
  // so the sidecar keeps its old routes, which still send everything to v1.
  const policy = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: backend, namespace: shop}
spec:
  targetRef: {kind: Service, name: backend}
  subsets:
  - {name: v2, labels: {version: v2}}
  routes:
  - name: bad
    match: [{path: {regex: "(?i)/x"}}]
    backends: [{subset: v2}]
  - name: default
    backends: [{subset: v2}]
`;
  writeManifest(mesh.dir, 'policy.yaml', policy);
  await eventually('the NACK', async () => /route "bad"/.test((await mesh.sync())?.types?.RouteConfiguration?.lastNack?.detail ?? ''));
  await sleep(300); // the cluster removal is applied after the route update
  const { counts, failures } = await mesh.client.spread(HOST, 100);
  assert.deepEqual(failures, []);
  assert.equal(counts.get(mesh.v1.name), 100);
  const { failures: during } = await traffic.stop();
  assert.deepEqual(during, []);
});
