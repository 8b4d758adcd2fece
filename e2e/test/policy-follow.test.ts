/**
 * Issue 2, "Show it": a sidecar and a grpc-js-xds client (a client we did not write) each follow a
 * TrafficPolicy change within 1 s of the file being written, and split 90/10 within ±3 points
 * over 2,000 requests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import {
  closeServer, controlPlane, eventually, grpcApp, httpApp, MeshClient, podYaml, serviceYaml, share, sidecar, splitPolicyYaml, tempDir, writeManifest,
} from './mesh';

const NS = 'shop';
const CP = '127.10.1.1';
const FRONTEND = { name: 'frontend', ip: '127.10.1.11', labels: { app: 'frontend' } };
const V1 = { name: 'backend-v1', ip: '127.10.1.21', labels: { app: 'backend', version: 'v1' } };
const V2 = { name: 'backend-v2', ip: '127.10.1.22', labels: { app: 'backend', version: 'v2' } };
const HOST = 'backend.shop.svc.cluster.local';

let dir: string;
let cp: ControlPlane;
let sc: Sidecar;
const closers: (() => Promise<void> | void)[] = [];
let client: MeshClient;
let grpcClient: grpc.Client;

before(async () => {
  dir = tempDir('follow');
  writeManifest(dir, 'pods.yaml', [FRONTEND, V1, V2].map((p) => podYaml(NS, p)).join('---\n'));
  writeManifest(dir, 'services.yaml', [
    serviceYaml(NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 9090, targetPort: 9090 }]),
    serviceYaml(NS, 'frontend', { app: 'frontend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
  ].join('---\n'));
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 90, 10));
  for (const p of [V1, V2]) {
    const h = await httpApp(p.ip, 8080, p.name);
    const g = await grpcApp(p.ip, 9090, p.name);
    closers.push(() => closeServer(h), () => { g.forceShutdown(); });
  }
  cp = await controlPlane(dir, CP);
  sc = await sidecar(CP, NS, FRONTEND);
  client = new MeshClient(FRONTEND.ip);

  // grpc-js-xds reads its bootstrap when the first xds: channel is made.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `${CP}:15010`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'proxyless~policy-follow-test', locality: {} },
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@grpc/grpc-js-xds').register();
  grpcClient = new grpc.Client(`xds:///${HOST}:9090`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  grpcClient?.close();
  await sc?.close();
  await cp?.close();
  for (const c of closers) await c();
  fs.rmSync(dir, { recursive: true, force: true });
});

function who(): Promise<string> {
  return new Promise((resolve, reject) => {
    grpcClient.makeUnaryRequest('/weft.test.Echo/Who', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0),
      { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!.toString())));
  });
}

async function grpcSpread(n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i += 20) {
    const batch = await Promise.all(Array.from({ length: Math.min(20, n - i) }, who));
    for (const b of batch) counts.set(b, (counts.get(b) ?? 0) + 1);
  }
  return counts;
}

/** Time from writing the file until `probe` answers v2 ten times in a row. */
async function timeToFollow(probe: () => Promise<string>): Promise<number> {
  const t0 = Date.now();
  let streak = 0;
  await eventually('all traffic on v2', async () => {
    streak = (await probe()) === V2.name ? streak + 1 : 0;
    return streak >= 10;
  }, 5000);
  return Date.now() - t0;
}

test('the sidecar splits 90/10 within ±3 points over 2,000 requests', async () => {
  const { counts, failures } = await client.spread(HOST, 2000);
  assert.deepEqual(failures, []);
  const v1 = share(counts, V1.name);
  assert.ok(Math.abs(v1 - 90) <= 3, `v1 share ${v1.toFixed(1)}%`);
});

test('a grpc-js-xds client splits 90/10 within ±3 points over 2,000 calls', async () => {
  const counts = await grpcSpread(2000);
  const v1 = share(counts, V1.name);
  assert.ok(Math.abs(v1 - 90) <= 3, `v1 share ${v1.toFixed(1)}% (${JSON.stringify([...counts])})`);
});

test('the sidecar and the grpc-js-xds client follow a policy change within 1 s of the file being written', async () => {
  const t0 = Date.now();
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100));
  const [httpMs, grpcMs] = await Promise.all([
    timeToFollow(async () => (await client.get(HOST)).body),
    timeToFollow(who),
  ]);
  const total = Date.now() - t0;
  assert.ok(httpMs < 1000, `sidecar followed after ${httpMs} ms`);
  assert.ok(grpcMs < 1000, `grpc-js-xds followed after ${grpcMs} ms`);
  assert.ok(total < 1500, `both followed after ${total} ms`);
});

test('an added route with a header match reaches sidecar and grpc client alike', async () => {
  const canary = `  - name: canary
    match:
    - headers: [{name: x-canary, exact: "true"}]
    backends: [{subset: v1}]
`;
  writeManifest(dir, 'policy.yaml', splitPolicyYaml(NS, 'backend', 0, 100, canary));
  await eventually('canary route applied', async () => (await client.get(HOST, '/', { 'x-canary': 'true' })).body === V1.name, 2000);
  const plain = await client.spread(HOST, 50);
  assert.equal(plain.counts.get(V2.name), 50);
  const md = new grpc.Metadata();
  md.set('x-canary', 'true');
  const canaryCall = (): Promise<string> => new Promise<string>((resolve, reject) =>
    grpcClient.makeUnaryRequest('/weft.test.Echo/Who', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md,
      { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!.toString()))));
  await eventually('grpc client applies the canary route', async () => (await canaryCall()) === V1.name, 2000);
  assert.deepEqual(await grpcSpread(50), new Map([[V2.name, 50]]));
});
