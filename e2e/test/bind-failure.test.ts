/**
 * A sidecar whose outbound port is taken by someone else: it NACKs the listener with the reason,
 * stays not ready (so no traffic is sent its way), and recovers without a restart once the port
 * is free and the control plane next pushes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { eventually, getJson, log, ShopMesh } from './mesh';

const WEFT = path.resolve(__dirname, '../../../cli/dist/src/main.js');
const mesh = new ShopMesh(10, 'bind');
let blocker: net.Server | undefined;
let sc: Sidecar | undefined;

before(() => mesh.start([100, 0]));
after(async () => {
  blocker?.close();
  await sc?.close();
  await mesh.close();
});

test('a listener that cannot bind is NACKed, keeps the sidecar unready, and binds after the port frees up', async () => {
  const pod = mesh.v2;
  blocker = net.createServer();
  await new Promise<void>((r) => blocker!.listen(15001, pod.ip, () => r()));
  sc = await startSidecar({
    xdsAddress: `${mesh.cpIp}:15010`, podName: pod.name, namespace: 'shop', podIp: pod.ip,
    serviceAccount: 'default', trustDomain: 'cluster.local', drainTimeoutMs: 500, log: log.child({ c: 'v2' }),
  });
  const nodeId = `sidecar~${pod.ip}~${pod.name}.shop~shop.svc.cluster.local`;
  const nack = await eventually('the listener NACK', async () => {
    const all = await getJson(`http://${mesh.cpIp}:15014/debug/syncz`);
    return all.find((n: any) => n.node === nodeId)?.types?.Listener?.lastNack;
  });
  assert.match(nack.detail, /virtualOutbound.*127\.10\.10\.22:15001.*EADDRINUSE/);
  assert.equal((await fetch(`http://${pod.ip}:15021/healthz/ready`)).status, 503);

  await new Promise<void>((r) => blocker!.close(() => r()));
  blocker = undefined;
  mesh.setPolicy(50, 50); // any change makes the control plane push again
  await eventually('the sidecar to turn ready', async () => (await fetch(`http://${pod.ip}:15021/healthz/ready`)).status === 200, 5000);
  // The Listener version did not change between the NACK and the ACK: proxy-status must say SYNCED.
  const status = await new Promise<string>((resolve) =>
    execFile(process.execPath, [WEFT, 'proxy-status', `--control-plane=${mesh.cpIp}:15014`], (_e, out) => resolve(out)));
  assert.match(status, /backend-v2\.shop\s+sidecar\s+delta\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/);
  const dump = await getJson(`http://${pod.ip}:15000/config_dump`);
  assert.deepEqual(Object.keys(dump.config.listeners).sort(), ['virtualInbound', 'virtualOutbound']);
});
