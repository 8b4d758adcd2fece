/**
 * Issue 2, "Show it": a policy the sidecar cannot apply is NACKed with a reason; the previous
 * config keeps serving with zero failed requests; a fixed policy is taken again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import {
  closeServer, controlPlane, eventually, getJson, httpApp, MeshClient, podYaml, serviceYaml, share, sidecar, splitPolicyYaml, steadyTraffic, tempDir, writeManifest,
} from './mesh';

const NS = 'shop';
const CP = '127.10.2.1';
const FRONTEND = { name: 'frontend', ip: '127.10.2.11', labels: { app: 'frontend' } };
const V1 = { name: 'backend-v1', ip: '127.10.2.21', labels: { app: 'backend', version: 'v1' } };
const V2 = { name: 'backend-v2', ip: '127.10.2.22', labels: { app: 'backend', version: 'v2' } };
const HOST = 'backend.shop.svc.cluster.local';
const NODE = `sidecar~${FRONTEND.ip}~frontend.shop~shop.svc.cluster.local`;

let dir: string;
let cp: ControlPlane;
let sc: Sidecar;
let client: MeshClient;
const closers: (() => Promise<void>)[] = [];

before(async () => {
  dir = tempDir('nack');
  writeManifest(dir, 'pods.yaml', [FRONTEND, V1, V2].map((p) => podYaml(NS, p)).join('---\n'));
  writeManifest(dir, 'services.yaml', serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]));
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 100, 0));
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

test('a route the sidecar cannot apply is NACKed with a reason while the last good config serves every request', async () => {
  const traffic = steadyTraffic(client, HOST);
  // Valid RE2 (the control plane accepts it, as Envoy and gRPC would) but not ECMAScript.
  const unsupported = `  - name: case-insensitive
    match:
    - path: {regex: "(?i)/API/.*"}
    backends: [{subset: v2}]
`;
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100, unsupported));

  const nack = await eventually('the NACK to reach the control plane', async () => {
    const sync = await getJson(`http://${CP}:15014/debug/syncz`);
    return sync.find((n: any) => n.node === NODE)?.types?.RouteConfiguration?.lastNack;
  });
  assert.match(nack.detail, /case-insensitive/);
  assert.match(nack.detail, /regex "\(\?i\)\/API\/\.\*" is not supported by this sidecar/);

  const metrics = await (await fetch(`http://${CP}:15014/metrics`)).text();
  assert.match(metrics, /weft_xds_nacks_total\{type="RouteConfiguration"\} [1-9]/);

  // The previous route (all to v1) still serves.
  const { counts, failures } = await client.spread(HOST, 200);
  assert.deepEqual(failures, []);
  assert.equal(share(counts, V1.name), 100);
  const dump = await getJson(`http://${FRONTEND.ip}:15000/config_dump`);
  assert.match(JSON.stringify(dump), /not supported by this sidecar/);

  // A fixed policy is accepted again and served.
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100));
  await eventually('the fixed policy to apply', async () => (await client.get(HOST)).body === V2.name, 2000);
  const { failures: during } = await traffic.stop();
  assert.deepEqual(during, []);
});
