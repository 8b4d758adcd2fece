/**
 * Issue 3, item 5: config changes under load lose no request, and SIGTERM to a callee's sidecar
 * under load loses no request (it drains; the caller's sidecar moves on).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { eventually, getJson, ShopMesh, sleep, steadyTraffic, writeManifest } from './mesh';

const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');
const mesh = new ShopMesh(11, 'lifecycle');
const HOST = ShopMesh.HOST;
let child: ChildProcess | undefined;

before(() => mesh.start([50, 50]));
after(async () => {
  child?.kill('SIGKILL');
  await mesh.close();
});

/** `n` concurrent steady loops. */
function load(n: number): { stop(): Promise<{ ok: number; failures: string[] }> } {
  const loops = Array.from({ length: n }, () => steadyTraffic(mesh.client, HOST, 1));
  return {
    async stop() {
      const results = await Promise.all(loops.map((l) => l.stop()));
      return { ok: results.reduce((a, r) => a + r.ok, 0), failures: results.flatMap((r) => r.failures) };
    },
  };
}

test('twenty policy changes under load lose no request', async (t) => {
  const traffic = load(6);
  const subsetsV3 = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: backend, namespace: shop}
spec:
  targetRef: {kind: Service, name: backend}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: all, labels: {app: backend}}
  routes:
  - name: default
    backends: [{subset: v1, weight: 30}, {subset: all, weight: 70}]
`;
  for (let i = 0; i < 20; i++) {
    if (i % 3 === 2) writeManifest(mesh.dir, 'policy.yaml', subsetsV3); // adds one subset, drops another
    else mesh.setPolicy(i % 2 ? 90 : 10, i % 2 ? 10 : 90);
    await sleep(150);
  }
  const { ok, failures } = await traffic.stop();
  t.diagnostic(`${ok} requests across 20 changes`);
  assert.deepEqual(failures, []);
  assert.ok(ok > 500, `only ${ok} requests`);
});

test('SIGTERM to the callee\'s sidecar under load loses no request, and it exits 0', async (t) => {
  mesh.setPolicy(50, 50);
  const pod = mesh.v1;
  child = spawn(process.execPath, [WEFT, 'sidecar', '--drain-timeout', '2000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, WEFT_XDS_ADDRESS: `${mesh.cpIp}:15010`, POD_NAME: pod.name, POD_NAMESPACE: 'shop', POD_IP: pod.ip, WEFT_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
  // The caller reaches v1 through its sidecar's inbound listener once that sidecar is connected.
  await eventually('v1 to be reached through its sidecar', async () => {
    const dump = await getJson(`http://${mesh.frontend.ip}:15000/config_dump`);
    return (dump.config.endpoints[`outbound|80|v1|${HOST}`] ?? []).some((e: { port: number }) => e.port === 15006);
  }, 5000);

  const traffic = load(6);
  await sleep(500);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  child = undefined;
  await sleep(800); // keep the load on after the sidecar is gone
  const { ok, failures } = await traffic.stop();
  t.diagnostic(`${ok} requests; the callee's sidecar drained and exited meanwhile`);
  assert.deepEqual(failures, []);
  // v1 is still served, now directly (its sidecar is no longer connected).
  const { counts } = await mesh.client.spread(HOST, 100);
  assert.ok((counts.get(pod.name) ?? 0) > 20, JSON.stringify([...counts]));
});
