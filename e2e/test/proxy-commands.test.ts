/**
 * `weft proxy-status` and `weft proxy-config` against a running mesh: what a user reads when a
 * proxy is in sync, when it rejected config, and when they name the wrong pod.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { eventually, ShopMesh } from './mesh';

const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');
const mesh = new ShopMesh(7, 'proxy-cmds');

function weft(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT, ...args], (err, stdout, stderr) => resolve({ code: err ? (err.code as number) : 0, stdout, stderr }));
  });
}

before(() => mesh.start([90, 10]));
after(() => mesh.close());

const CP = (): string => `--control-plane=${mesh.cpIp}:15014`;

test('proxy-status lists the sidecar as SYNCED for every type', async () => {
  const r = await eventually('SYNCED', async () => {
    const out = await weft('proxy-status', CP());
    return /frontend\.shop\s+sidecar\s+delta\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/.test(out.stdout) && out;
  });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^NAME\s+KIND\s+XDS\s+CDS\s+EDS\s+LDS\s+RDS/);
});

test('proxy-config shows the listeners, the 90/10 route and the endpoints the sidecar runs', async () => {
  const r = await weft('proxy-config', 'frontend', '-n', 'shop', CP());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /virtualOutbound\s+127\.10\.7\.11:15001\s+outbound/);
  assert.match(r.stdout, /outbound\|80\|v1\|backend\.shop\.svc\.cluster\.local 90%, outbound\|80\|v2\|backend\.shop\.svc\.cluster\.local 10%/);
  assert.match(r.stdout, /outbound\|80\|v2\|backend\.shop\.svc\.cluster\.local\s+127\.10\.7\.22:8080\s+HEALTHY\s+direct/);
  const json = await weft('proxy-config', 'frontend', 'clusters', '-n', 'shop', '-o', 'json', CP());
  assert.ok(JSON.parse(json.stdout)['outbound|80|v1|backend.shop.svc.cluster.local']);
});

test('proxy-status shows a rejected route table as NACKED, with the sidecar\'s reason', async () => {
  mesh.setPolicy(50, 50, '  - name: bad\n    match: [{path: {regex: "\\\\z"}}]\n    backends: [{subset: v1}]\n');
  const r = await eventually('NACKED', async () => {
    const out = await weft('proxy-status', CP());
    return /frontend\.shop\s+sidecar\s+delta\s+SYNCED\s+SYNCED\s+SYNCED\s+NACKED/.test(out.stdout) && out;
  });
  assert.match(r.stdout, /frontend\.shop rejected RDS [0-9a-f]+ at .*:\n  .*route "bad".*is not supported by this sidecar/);
  mesh.setPolicy(90, 10);
  await eventually('SYNCED again', async () => /RDS\n.*SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/s.test((await weft('proxy-status', CP())).stdout));
});

test('naming a pod with no connected sidecar, or an unreachable control plane, is one line and exit 1', async () => {
  const r = await weft('proxy-config', 'nope', '-n', 'shop', CP());
  assert.deepEqual([r.code, r.stderr], [1, `weft proxy-config: no sidecar of pod shop/nope is connected to the control plane at ${mesh.cpIp}:15014\n`]);
  const down = await weft('proxy-status', '--control-plane=127.10.7.99:15014');
  assert.equal(down.code, 1);
  assert.match(down.stderr, /^weft proxy-status: cannot reach the control plane at 127\.10\.7\.99:15014 .*ECONNREFUSED\n$/);
});
