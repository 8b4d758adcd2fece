/**
 * Issue 2, "Show it": a policy the sidecar cannot apply is NACKed with a reason; the previous
 * config keeps serving with zero failed requests; a fixed policy is taken again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, getJson, share, ShopMesh, steadyTraffic } from './mesh';

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
