/**
 * The `weft sidecar` process: it turns ready after its first config, and exits 0 soon after an
 * app calls `POST /quitquitquit` (how a Job's pod completes; FIELD-NOTES 1), even with its stdin
 * held open as the demo holds it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { eventually, ShopMesh } from './mesh';

const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');
const mesh = new ShopMesh(9, 'sidecar-process');
let child: ChildProcess | undefined;

before(() => mesh.start([100, 0]));
after(async () => {
  child?.kill('SIGKILL');
  await mesh.close();
});

test('a sidecar process turns ready, then exits 0 within 5 s of POST /quitquitquit', async () => {
  const pod = mesh.v1;
  child = spawn(process.execPath, [WEFT, 'sidecar', '--exit-with-parent'], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env: { ...process.env, WEFT_XDS_ADDRESS: `${mesh.cpIp}:15010`, POD_NAME: pod.name, POD_NAMESPACE: 'shop', POD_IP: pod.ip, WEFT_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
  await eventually('the sidecar to be ready', async () => (await fetch(`http://${pod.ip}:15021/healthz/ready`)).status === 200, 5000);

  const t0 = Date.now();
  const res = await fetch(`http://${pod.ip}:15000/quitquitquit`, { method: 'POST' });
  assert.equal(res.status, 200);
  const code = await exited;
  assert.equal(code, 0, stderr);
  assert.ok(Date.now() - t0 < 5000, `exited after ${Date.now() - t0} ms`);
  child = undefined;
});
