/**
 * Tracing end to end (issue 6): a real control plane started with mesh tracing, two sidecars with
 * SPIFFE identities (auto mTLS between them), and an OTLP/HTTP receiver. The HCM `tracing` block
 * the control plane sends reaches both sidecars; a request yields the frontend's client span and
 * the backend's server span, linked, with the callee's view of the caller's mTLS identity; and the
 * sidecars' /metrics carry the tracing counters.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startControlPlane, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { makeCa, StaticIdentity, type TestCa } from '@weft/sidecar/dist/test/tls-fixtures';
import { decodeTraces } from '@weft/cli/dist/src/trace-otlp';
import type { ShownSpan } from '@weft/cli/dist/src/trace-waterfall';
import { closeServer, eventually, getJson, httpApp, log, MeshClient, podYaml, serviceYaml, tempDir, writeManifest } from './mesh';

const CP = '127.0.47.1';
const FRONT = { name: 'frontend-7d9f', ip: '127.0.47.11', labels: { app: 'frontend' }, serviceAccount: 'frontend' };
const BACK = { name: 'backend-5c4b', ip: '127.0.47.21', labels: { app: 'backend' }, serviceAccount: 'backend' };
const HOST = 'backend.shop.svc.cluster.local';

let ca: TestCa;
let cp: ControlPlane;
let receiver: http.Server;
const spans: ShownSpan[] = [];
const sidecars: Sidecar[] = [];
let app: http.Server & { hits: number };
let client: MeshClient;

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      spans.push(...decodeTraces(Buffer.concat(chunks)));
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, CP, () => r()));
  const endpoint = `http://${CP}:${(receiver.address() as AddressInfo).port}/v1/traces`;
  ca = makeCa();
  const dir = tempDir('tracing');
  writeManifest(dir, 'mesh.yaml', [
    podYaml('shop', FRONT), podYaml('shop', BACK),
    serviceYaml('shop', 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
  ].join('---\n'));
  cp = await startControlPlane({ manifestsDir: dir, xdsAddress: `${CP}:15010`, debugAddress: `${CP}:15014`, debounceMs: 50, log: log.child({ c: 'cp' }), tracing: { endpoint, samplingPercent: 100 } });
  app = await httpApp(BACK.ip, 8080, 'backend');
  for (const pod of [BACK, FRONT]) {
    const s = await startSidecar({
      xdsAddress: `${CP}:15010`, podName: pod.name, namespace: 'shop', podIp: pod.ip, serviceAccount: pod.serviceAccount, trustDomain: 'cluster.local',
      drainTimeoutMs: 1000, identityProvider: new StaticIdentity(ca.leaf('shop', pod.serviceAccount)), trustBundles: ca.trust(), log: log.child({ c: `sidecar ${pod.name}` }),
    });
    await s.ready;
    sidecars.push(s);
  }
  client = new MeshClient(FRONT.ip);
  await eventually('the frontend to reach the backend over auto mTLS', async () => {
    const dump = await getJson(`http://${FRONT.ip}:15000/config_dump`);
    return (dump.config.endpoints[`outbound|80||${HOST}`] ?? []).some((e: { transportMatch?: { tlsMode?: string } }) => e.transportMatch?.tlsMode === 'weft');
  }, 10_000);
});

after(async () => {
  client?.close();
  await Promise.all(sidecars.map((s) => s.close()));
  await closeServer(app);
  await cp?.close();
  receiver?.close();
});

test('the control plane\'s tracing reaches both sidecars; a request is a client span and a server span with mTLS identities', async () => {
  for (const ip of [FRONT.ip, BACK.ip]) {
    const dump = await getJson(`http://${ip}:15000/config_dump`);
    assert.equal(dump.config.listeners.virtualOutbound.tracing.samplingRatio, 1, ip);
    assert.equal(dump.config.listeners.virtualInbound.tracing.serviceName, ip === FRONT.ip ? 'frontend' : 'backend');
  }
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const r = await client.get(HOST, '/orders', { traceparent: `00-${traceId}-b7ad6b7169203331-01` });
  assert.equal(r.status, 200);
  // Each sidecar exports within a second (its batch delay); closing the sidecars would flush too.
  const mine = await eventually('both spans exported', () => {
    const got = spans.filter((s) => s.traceId === traceId);
    return got.length >= 2 ? got : undefined;
  }, 10_000);
  const clientSpan = mine.find((s) => s.kind === 'client')!;
  const serverSpan = mine.find((s) => s.kind === 'server')!;
  assert.equal(clientSpan.service, 'frontend');
  assert.equal(serverSpan.service, 'backend');
  assert.equal(clientSpan.parentSpanId, 'b7ad6b7169203331', 'the incoming context is continued');
  assert.equal(serverSpan.parentSpanId, clientSpan.spanId);
  assert.equal(clientSpan.status, '200');
  assert.equal(serverSpan.status, '200');
  // Identities: the caller's own SPIFFE ID on its client span; the callee reads it from the mTLS peer certificate.
  assert.equal(clientSpan.attributes?.['weft.source.identity'], 'spiffe://cluster.local/ns/shop/sa/frontend');
  assert.equal(clientSpan.attributes?.['weft.destination.service'], HOST);
  assert.equal(serverSpan.attributes?.['weft.source.identity'], 'spiffe://cluster.local/ns/shop/sa/frontend');
  assert.equal(serverSpan.attributes?.['weft.source.workload'], 'frontend', 'the caller\'s service account');
  assert.equal(serverSpan.attributes?.['weft.source.namespace'], 'shop');
  // (weft.destination.identity is this sidecar's own SPIFFE ID, set once per process: with two
  // sidecars in one test process it is the last one's, so it is not asserted here.)
  assert.equal(serverSpan.attributes?.['weft.destination.workload'], 'backend');
  assert.equal(serverSpan.attributes?.['url.path'], '/orders');
});

// Both sidecars run in this one process, and tracing's counters are process-wide: they are on the
// registry of the sidecar started last (the frontend). A real sidecar is a process of its own.
test('the sidecars count exported spans on /metrics, and drops from 0', async () => {
  const metrics = await new Promise<string>((resolve, reject) => http.get(`http://${FRONT.ip}:15020/metrics`, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => resolve(body));
  }).on('error', reject));
  assert.match(metrics, /^weft_trace_spans_exported_total [1-9]\d*$/m);
  assert.match(metrics, /^weft_trace_spans_dropped_total 0$/m);
});
