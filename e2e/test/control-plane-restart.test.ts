/**
 * Issue 2, "Show it": killing and restarting the control plane under steady traffic fails no
 * request through the sidecar, and the sidecar resyncs to the new control plane.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sidecar } from '@weft/sidecar';
import {
  closeServer, eventually, getJson, httpApp, MeshClient, podYaml, serviceYaml, share, sidecar, sleep, splitPolicyYaml, steadyTraffic, tempDir, writeManifest,
} from './mesh';

const NS = 'shop';
const CP = '127.10.3.1';
const FRONTEND = { name: 'frontend', ip: '127.10.3.11', labels: { app: 'frontend' } };
const V1 = { name: 'backend-v1', ip: '127.10.3.21', labels: { app: 'backend', version: 'v1' } };
const V2 = { name: 'backend-v2', ip: '127.10.3.22', labels: { app: 'backend', version: 'v2' } };
const HOST = 'backend.shop.svc.cluster.local';
const NODE = `sidecar~${FRONTEND.ip}~frontend.shop~shop.svc.cluster.local`;
const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');

let dir: string;
let sc: Sidecar;
let client: MeshClient;
let cpProcess: ChildProcess | undefined;
const closers: (() => Promise<void>)[] = [];

function startControlPlaneProcess(): ChildProcess {
  const child = spawn(process.execPath, [WEFT, 'control-plane', '--manifests', dir, '--xds-address', `${CP}:15010`, '--debug-address', `${CP}:15014`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => { if (process.env.WEFT_TEST_LOG) process.stderr.write(d); });
  return child;
}

async function synced(): Promise<boolean> {
  const sync = await getJson(`http://${CP}:15014/debug/syncz`);
  const node = sync.find((n: any) => n.node === NODE);
  const types = Object.values(node?.types ?? {}) as { synced: boolean }[];
  return types.length === 4 && types.every((t) => t.synced);
}

before(async () => {
  dir = tempDir('restart');
  writeManifest(dir, 'pods.yaml', [FRONTEND, V1, V2].map((p) => podYaml(NS, p)).join('---\n'));
  writeManifest(dir, 'services.yaml', serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]));
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 100, 0));
  for (const p of [V1, V2]) {
    const h = await httpApp(p.ip, 8080, p.name);
    closers.push(() => closeServer(h));
  }
  cpProcess = startControlPlaneProcess();
  sc = await sidecar(CP, NS, FRONTEND);
  client = new MeshClient(FRONTEND.ip);
});

after(async () => {
  client?.close();
  await sc?.close();
  cpProcess?.kill('SIGKILL');
  for (const c of closers) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('killing and restarting the control plane under steady traffic fails no request, and the sidecar resyncs', async () => {
  await eventually('the sidecar to be synced', synced);
  const traffic = steadyTraffic(client, HOST, 2);
  await sleep(300);

  const old = cpProcess!;
  const exited = new Promise((r) => old.once('exit', r));
  old.kill('SIGKILL');
  await exited;
  await sleep(1500); // the sidecar serves on its own meanwhile

  cpProcess = startControlPlaneProcess();
  await eventually('the sidecar to resync to the new control plane', synced, 15_000);

  // The new control plane really drives the sidecar: a change made now is followed.
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100));
  await eventually('the new policy to apply', async () => (await client.get(HOST)).body === V2.name, 3000);
  const { ok, failures } = await traffic.stop();
  assert.deepEqual(failures, []);
  assert.ok(ok > 300, `only ${ok} requests were sent`);
  const { counts } = await client.spread(HOST, 100);
  assert.equal(share(counts, V2.name), 100);
});
