/**
 * Issue 2, "Show it": killing and restarting the control plane under steady traffic fails no
 * request through the sidecar, and the sidecar resyncs to the new control plane.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { eventually, share, ShopMesh, sleep, steadyTraffic } from './mesh';

const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');
const mesh = new ShopMesh(3, 'restart');
const HOST = ShopMesh.HOST;
let cpProcess: ChildProcess | undefined;

function startControlPlaneProcess(): ChildProcess {
  // The restarted control plane finds the same CA root in the same data dir.
  const child = spawn(process.execPath, [WEFT, 'control-plane', '--manifests', mesh.dir, '--data-dir', `${mesh.dir}-data`, '--xds-address', `${mesh.cpIp}:15010`, '--debug-address', `${mesh.cpIp}:15014`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d) => { if (process.env.WEFT_TEST_LOG) process.stderr.write(d); });
  return child;
}

async function synced(): Promise<boolean> {
  // Five types: LDS, RDS, CDS, EDS and SDS (the ROOTCA trust bundle).
  const types = Object.values((await mesh.sync())?.types ?? {}) as { synced: boolean }[];
  return types.length === 5 && types.every((t) => t.synced);
}

before(async () => {
  cpProcess = startControlPlaneProcess();
  await mesh.start([100, 0], { controlPlane: false });
});

after(async () => {
  cpProcess?.kill('SIGKILL');
  await mesh.close();
});

test('killing and restarting the control plane under steady traffic fails no request, and the sidecar resyncs', async () => {
  await eventually('the sidecar to be synced', synced);
  const traffic = steadyTraffic(mesh.client, HOST, 2);
  await sleep(300);

  const old = cpProcess!;
  const exited = new Promise((r) => old.once('exit', r));
  old.kill('SIGKILL');
  await exited;
  await sleep(1500); // the sidecar serves on its own meanwhile

  cpProcess = startControlPlaneProcess();
  await eventually('the sidecar to resync to the new control plane', synced, 15_000);

  // The new control plane really drives the sidecar: a change made now is followed.
  mesh.setPolicy(0, 100);
  await eventually('the new policy to apply', async () => (await mesh.client.get(HOST)).body === mesh.v2.name, 3000);
  const { ok, failures } = await traffic.stop();
  assert.deepEqual(failures, []);
  assert.ok(ok > 300, `only ${ok} requests were sent`);
  const { counts } = await mesh.client.spread(HOST, 100);
  assert.equal(share(counts, mesh.v2.name), 100);
});
