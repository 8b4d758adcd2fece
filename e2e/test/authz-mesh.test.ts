/**
 * AuthorizationPolicy end to end in local mode: a control plane watching a manifests directory,
 * two sidecars, real apps. The callee's sidecar enforces DENY before ALLOW on the app port the
 * calling sidecar named, counts denials on its /metrics, and follows policy edits; an invalid
 * policy is reported and changes nothing that was enforced. (Principals need mTLS between the
 * sidecars, which comes with the mtls work; sidecar/test/authz.test.ts covers them over TLS.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import { closeServer, controlPlane, eventually, getJson, httpApp, MeshClient, podYaml, serviceYaml, sidecar, tempDir, writeManifest } from './mesh';

const CP = '127.0.43.1';
const CLIENT = { name: 'client', ip: '127.0.43.11', labels: { app: 'client' } };
const MULTI = { name: 'multi', ip: '127.0.43.31', labels: { app: 'multi' } };
const HOST = 'multi.shop.svc.cluster.local';
let dir: string;
let cp: ControlPlane;
const sidecars: Sidecar[] = [];
let client: MeshClient;
const apps: Awaited<ReturnType<typeof httpApp>>[] = [];

const POLICIES = `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin-port, namespace: shop}
spec:
  selector: {matchLabels: {app: multi}}
  action: DENY
  rules: [{to: [{ports: [8081]}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin-path, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {paths: [/admin, /admin/*]}}]}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: allow-public, namespace: shop}
spec:
  selector: {matchLabels: {app: multi}}
  rules: [{to: [{paths: ["/public/*", "/admin/*"]}]}]
`;

before(async () => {
  dir = tempDir('authz');
  writeManifest(dir, 'all.yaml', [
    podYaml('shop', CLIENT),
    podYaml('shop', MULTI),
    serviceYaml('shop', 'multi', { app: 'multi' }, [{ name: 'web', port: 80, targetPort: 8080 }, { name: 'admin', port: 81, targetPort: 8081 }]),
  ].join('---\n'));
  writeManifest(dir, 'authz.yaml', POLICIES);
  apps.push(await httpApp(MULTI.ip, 8080, 'web-8080'), await httpApp(MULTI.ip, 8081, 'admin-8081'));
  cp = await controlPlane(dir, CP);
  sidecars.push(await sidecar(CP, 'shop', MULTI), await sidecar(CP, 'shop', CLIENT));
  client = new MeshClient(CLIENT.ip);
  await eventually('the client to reach multi through its sidecar', async () => {
    const dump = await getJson(`http://${CLIENT.ip}:15000/config_dump`);
    const eps = dump.config.endpoints['outbound|80||multi.shop.svc.cluster.local'] ?? [];
    return eps.length === 1 && eps[0].port === 15006;
  });
});

after(async () => {
  client?.close();
  for (const s of sidecars) await s.close();
  await cp?.close();
  for (const a of apps) await closeServer(a);
  fs.rmSync(dir, { recursive: true, force: true });
});

function metrics(ip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: ip, port: 15020, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('the callee enforces DENY before ALLOW on the app port the caller named; denials are counted by policy', async () => {
  const before = apps.map((a) => a.hits);
  const table: [host: string, path: string, status: number, body?: string][] = [
    [HOST, '/public/x', 200, 'web-8080'],
    [HOST, '/other', 403], // ALLOW policies apply and none matches
    [`${HOST}:81`, '/public/x', 403], // DENY on app port 8081, whatever the path
    [HOST, '/admin/x', 403], // allow-public matches /admin/*, deny-admin-path wins
    [HOST, '/public/../admin/x', 403], // normalized before anything matches it
  ];
  for (const [host, path, status, body] of table) {
    const r = await client.get(host, path);
    assert.equal(r.status, status, `${host}${path}`);
    assert.equal(r.body, body ?? 'RBAC: access denied', `${host}${path}`);
  }
  assert.deepEqual(apps.map((a, i) => a.hits - before[i]!), [1, 0]);
  const m = await metrics(MULTI.ip);
  assert.match(m, /weft_authz_denials_total\{policy="shop\/deny-admin-port",action="DENY"\} 1\n/);
  assert.match(m, /weft_authz_denials_total\{policy="shop\/deny-admin-path",action="DENY"\} 2\n/);
  assert.match(m, /weft_authz_denials_total\{policy="none",action="ALLOW"\} 1\n/);
  // The caller's own sidecar selects no policy: it denied nothing.
  assert.doesNotMatch(await metrics(CLIENT.ip), /weft_authz_denials_total\{/);
  const status = await getJson(`http://${CP}:15014/debug/policies`);
  assert.match(JSON.stringify(status.find((s: { key: string }) => s.key === 'AuthorizationPolicy/shop/allow-public')), /"Accepted".*"True".*ALLOW policy enforced on workloads labelled app=multi in namespace shop/);
});

test('an invalid policy is reported and changes nothing; removing the policies opens the workload again', async () => {
  writeManifest(dir, 'bad.yaml', 'apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: bad, namespace: shop}\nspec: {action: AUDIT}\n');
  await eventually('the bad policy to be reported', async () => {
    const d = await getJson(`http://${CP}:15014/debug/diagnostics`);
    return d.some((x: { file: string; reason: string }) => x.file === 'bad.yaml' && /spec.action: AUDIT is not supported/.test(x.reason));
  });
  assert.equal((await client.get(HOST, '/other')).status, 403);
  assert.equal((await client.get(HOST, '/public/x')).status, 200);
  writeManifest(dir, 'authz.yaml', '');
  await eventually('the policies to be lifted', async () => (await client.get(HOST, '/other')).status === 200);
  assert.equal((await client.get(`${HOST}:81`, '/admin/x')).body, 'admin-8081');
});
