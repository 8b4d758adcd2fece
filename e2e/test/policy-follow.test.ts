/**
 * Issue 2, "Show it": a sidecar and a grpc-js-xds client (a client we did not write) each follow a
 * TrafficPolicy change within 1 s of the file being written, and split 90/10 within ±3 points
 * over 2,000 requests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { eventually, share, ShopMesh } from './mesh';

const mesh = new ShopMesh(1, 'follow');
const HOST = ShopMesh.HOST;
const V1 = mesh.v1;
const V2 = mesh.v2;
let client: ShopMesh['client'];
let grpcClient: grpc.Client;

before(async () => {
  await mesh.start([90, 10], { grpc: true });
  client = mesh.client;
  // grpc-js-xds reads its bootstrap when the first xds: channel is made.
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `${mesh.cpIp}:15010`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'proxyless~policy-follow-test', locality: {} },
  });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@grpc/grpc-js-xds').register();
  grpcClient = new grpc.Client(`xds:///${HOST}:9090`, grpc.credentials.createInsecure());
});

after(async () => {
  grpcClient?.close();
  await mesh.close();
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

test('the sidecar splits 90/10 within ±3 points over 2,000 requests', async (t) => {
  const { counts, failures } = await client.spread(HOST, 2000);
  assert.deepEqual(failures, []);
  const v1 = share(counts, V1.name);
  t.diagnostic(`sidecar: v1 ${v1.toFixed(1)}% of 2000`);
  assert.ok(Math.abs(v1 - 90) <= 3, `v1 share ${v1.toFixed(1)}%`);
});

test('a grpc-js-xds client splits 90/10 within ±3 points over 2,000 calls', async (t) => {
  const counts = await grpcSpread(2000);
  const v1 = share(counts, V1.name);
  t.diagnostic(`grpc-js-xds: v1 ${v1.toFixed(1)}% of 2000`);
  assert.ok(Math.abs(v1 - 90) <= 3, `v1 share ${v1.toFixed(1)}% (${JSON.stringify([...counts])})`);
});

test('the sidecar and the grpc-js-xds client follow a policy change within 1 s of the file being written', async (t) => {
  const t0 = Date.now();
  mesh.setPolicy(0, 100);
  const [httpMs, grpcMs] = await Promise.all([
    timeToFollow(async () => (await client.get(HOST)).body),
    timeToFollow(who),
  ]);
  const total = Date.now() - t0;
  t.diagnostic(`followed the policy after: sidecar ${httpMs} ms, grpc-js-xds ${grpcMs} ms`);
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
  mesh.setPolicy(0, 100, canary);
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
