/**
 * Local mode has no iptables to carry a request's original destination, so a calling sidecar
 * names the app port for the callee's inbound listener. A pod with two app ports behind its own
 * sidecar gets each request on the port its Service port maps to.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import { closeServer, controlPlane, eventually, getJson, httpApp, MeshClient, podYaml, serviceYaml, sidecar, tempDir, writeManifest } from './mesh';

const CP = '127.10.6.1';
const CLIENT = { name: 'client', ip: '127.10.6.11', labels: { app: 'client' } };
const MULTI = { name: 'multi', ip: '127.10.6.31', labels: { app: 'multi' } };
let dir: string;
let cp: ControlPlane;
const sidecars: Sidecar[] = [];
let client: MeshClient;
const apps: Awaited<ReturnType<typeof httpApp>>[] = [];

before(async () => {
  dir = tempDir('ports');
  writeManifest(dir, 'all.yaml', [
    podYaml('shop', CLIENT),
    podYaml('shop', MULTI),
    serviceYaml('shop', 'multi', { app: 'multi' }, [{ name: 'web', port: 80, targetPort: 8080 }, { name: 'admin', port: 81, targetPort: 8081 }]),
  ].join('---\n'));
  apps.push(await httpApp(MULTI.ip, 8080, 'web-8080'), await httpApp(MULTI.ip, 8081, 'admin-8081'));
  cp = await controlPlane(dir, CP);
  sidecars.push(await sidecar(CP, 'shop', MULTI), await sidecar(CP, 'shop', CLIENT));
  client = new MeshClient(CLIENT.ip);
});

after(async () => {
  client?.close();
  for (const s of sidecars) await s.close();
  await cp?.close();
  for (const a of apps) await closeServer(a);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('each Service port reaches its own app port through the callee\'s sidecar', async () => {
  // The callee's endpoint turns into its inbound listener once its sidecar is connected.
  await eventually('the client to reach multi through its sidecar', async () => {
    const dump = await getJson(`http://${CLIENT.ip}:15000/config_dump`);
    const eps = dump.config.endpoints['outbound|80||multi.shop.svc.cluster.local'] ?? [];
    return eps.length === 1 && eps[0].port === 15006;
  });
  const before = apps.map((a) => a.hits);
  assert.equal((await client.get('multi.shop.svc.cluster.local')).body, 'web-8080');
  assert.equal((await client.get('multi.shop.svc.cluster.local:81')).body, 'admin-8081');
  assert.deepEqual(apps.map((a, i) => a.hits - before[i]!), [1, 1]);
});

test('a request to the inbound listener without the port header is told which ports exist', async () => {
  const direct = new MeshClient(MULTI.ip, 15006);
  const r = await direct.get('multi.shop.svc.cluster.local');
  direct.close();
  assert.equal(r.status, 404);
  assert.match(r.body, /x-weft-target-port, one of 8080, 8081/);
});
