/**
 * Issue 6's metrics end to end (127.0.46.0/24): sidecars with identities from the control plane's
 * CA, real traffic through them, then every `/metrics` endpoint read back. The request counters
 * match what the test sent (per code, labels, gRPC status, mTLS or not, both directions), the
 * duration histogram counts the same requests, and `promtool check metrics` (Debian's
 * `prometheus` package, installed by .ci/run) passes on the sidecars' and the control plane's.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { join } from 'node:path';
import { startControlPlane, tokenPath, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { closeServer, eventually, log, MeshClient, podYaml, runWeft, tempDir, writeManifest } from './mesh';

const NS = 'shop';
const CP = '127.0.46.1';
const PODS = {
  frontend: { name: 'frontend-7f9c-x2x', ip: '127.0.46.11', labels: { app: 'frontend' }, serviceAccount: 'frontend' },
  backend: { name: 'backend-1', ip: '127.0.46.21', labels: { app: 'backend' }, serviceAccount: 'backend' },
  legacy: { name: 'legacy-1', ip: '127.0.46.22', labels: { app: 'legacy' }, serviceAccount: 'legacy' },
  rpc: { name: 'rpc-1', ip: '127.0.46.23', labels: { app: 'rpc' }, serviceAccount: 'rpc' },
};
const HOST = { backend: `backend.${NS}.svc.cluster.local`, legacy: `legacy.${NS}.svc.cluster.local`, rpc: `rpc.${NS}.svc.cluster.local` };

const service = (name: string, portName: string, target: number): string => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${NS}}
spec:
  selector: {app: ${name}}
  ports: [{name: ${portName}, port: 80, targetPort: ${target}}]
`;
/** An opaque (TCP) port on the backend pod: the frontend's per-upstream port 2525 proxies it. */
const MAIL = `apiVersion: v1
kind: Service
metadata: {name: mail, namespace: ${NS}}
spec:
  selector: {app: backend}
  ports: [{name: smtp, port: 2525, targetPort: 2525}]
`;
const MESH = [podYaml(NS, PODS.frontend), podYaml(NS, PODS.backend), podYaml(NS, PODS.legacy), podYaml(NS, PODS.rpc), service('backend', 'http', 8080), service('legacy', 'http', 8080), service('rpc', 'grpc', 9090), MAIL].join('---\n');

let dataDir: string;
let manifests: string;
let cp: ControlPlane;
const apps: http.Server[] = [];
let rpcApp: http2.Http2Server;
let echoApp: net.Server;
const sidecars = new Map<string, Sidecar>();
let front: MeshClient;

/** `/status/NNN` answers NNN; anything else 200. */
async function statusApp(ip: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    req.resume();
    const code = /^\/status\/(\d{3})$/.exec(req.url ?? '')?.[1];
    res.writeHead(code ? Number(code) : 200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(8080, ip, () => r()));
  return server;
}

/** gRPC over h2c: `/weft.test.Echo/Missing` ends with grpc-status 5 (NOT_FOUND), other methods 0. */
async function grpcStatusApp(ip: string): Promise<http2.Http2Server> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': headers[':path'] === '/weft.test.Echo/Missing' ? '5' : '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  });
  await new Promise<void>((r) => server.listen(9090, ip, () => r()));
  return server;
}

/** One unary gRPC call through the frontend's outbound listener (h2c); resolves with its grpc-status. */
function grpcCall(method: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${PODS.frontend.ip}:15001`);
    session.on('error', reject);
    const req = session.request({ ':method': 'POST', ':path': `/weft.test.Echo/${method}`, ':authority': HOST.rpc, 'content-type': 'application/grpc', te: 'trailers' });
    let status = '';
    req.on('response', (h) => (status = String(h['grpc-status'] ?? status)));
    req.on('trailers', (t) => (status = String(t['grpc-status'] ?? status)));
    req.on('error', reject);
    req.resume();
    req.on('end', () => {
      session.close();
      resolve(status);
    });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

async function startPod(pod: (typeof PODS)[keyof typeof PODS], identity: boolean): Promise<Sidecar> {
  const s = await startSidecar({
    xdsAddress: `${CP}:${cp.xdsPort}`, podName: pod.name, namespace: NS, podIp: pod.ip, serviceAccount: pod.serviceAccount, trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log: log.child({ c: `sidecar ${pod.name}` }),
    ...(identity ? { identity: { tokenPath: tokenPath(dataDir, NS, pod.serviceAccount), rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), caAddress: `${CP}:${cp.caPort}` } } : {}),
  });
  await s.ready;
  return s;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `${url}: ${res.status}`);
  return res.text();
}
const sidecarMetrics = (ip: string): Promise<string> => scrape(`http://${ip}:15020/metrics`);

/** The sum of every sample of `name` whose labels include all of `labels` (0 when none). */
function sample(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Map([...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

before(async () => {
  const dir = (manifests = tempDir('met-m'));
  dataDir = tempDir('met-d');
  writeManifest(dir, 'mesh.yaml', MESH);
  cp = await startControlPlane({
    manifestsDir: dir, xdsAddress: `${CP}:0`, debugAddress: `${CP}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    identity: { dataDir, caAddress: `${CP}:0` },
  });
  apps.push(await statusApp(PODS.backend.ip), await statusApp(PODS.legacy.ip));
  rpcApp = await grpcStatusApp(PODS.rpc.ip);
  echoApp = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => echoApp.listen(2525, PODS.backend.ip, () => r()));
  sidecars.set('frontend', await startPod(PODS.frontend, true));
  sidecars.set('backend', await startPod(PODS.backend, true));
  sidecars.set('legacy', await startPod(PODS.legacy, false));
  sidecars.set('rpc', await startPod(PODS.rpc, true));
  front = new MeshClient(PODS.frontend.ip);
  // Auto mTLS and endpoint metadata: wait until the frontend reaches each service.
  for (const host of Object.values(HOST).slice(0, 2)) await eventually(`the frontend to reach ${host}`, async () => (await front.get(host)).status === 200, 10_000);
  await eventually('the frontend to reach rpc', async () => (await grpcCall('Who')) === '0', 10_000);
});

after(async () => {
  front?.close();
  for (const s of sidecars.values()) await s.close();
  await cp?.close();
  for (const a of apps) await closeServer(a);
  rpcApp?.close();
  echoApp?.close();
});

test('request metrics match the traffic sent: counts per code, source and destination labels, gRPC status, mtls true and false, both directions', async () => {
  const out = { direction: 'outbound', source_workload: 'frontend', source_namespace: NS }; // the app label, from the inbound listener's metadata
  const toBackend = { ...out, destination_service: HOST.backend, destination_namespace: NS, destination_workload: 'backend', mtls: 'true' };
  const toLegacy = { ...out, destination_service: HOST.legacy, destination_namespace: NS, destination_workload: 'legacy', mtls: 'false' };
  const toRpc = { ...out, destination_service: HOST.rpc, destination_namespace: NS, destination_workload: 'rpc', mtls: 'true' };
  const inBackend = { direction: 'inbound', source_workload: 'frontend', source_namespace: NS, destination_workload: 'backend', destination_namespace: NS, mtls: 'true' };
  const inLegacy = { direction: 'inbound', source_workload: 'unknown', source_namespace: 'unknown', destination_workload: 'legacy', mtls: 'false' };

  const before = { front: await sidecarMetrics(PODS.frontend.ip), backend: await sidecarMetrics(PODS.backend.ip), legacy: await sidecarMetrics(PODS.legacy.ip) };
  const delta = (now: string, was: string, name: string, labels: Record<string, string>): number => sample(now, name, labels) - sample(was, name, labels);

  for (let i = 0; i < 3; i++) assert.equal((await front.get(HOST.backend, '/status/200')).status, 200);
  for (let i = 0; i < 2; i++) assert.equal((await front.get(HOST.backend, '/status/404')).status, 404);
  assert.equal((await front.get(HOST.backend, '/status/503')).status, 503);
  for (let i = 0; i < 4; i++) assert.equal((await front.get(HOST.legacy, '/')).status, 200);
  for (let i = 0; i < 2; i++) assert.equal(await grpcCall('Who'), '0');
  assert.equal(await grpcCall('Missing'), '5');
  assert.equal((await front.get('nowhere.example', '/')).status, 404, 'no route');

  const now = { front: await sidecarMetrics(PODS.frontend.ip), backend: await sidecarMetrics(PODS.backend.ip), legacy: await sidecarMetrics(PODS.legacy.ip) };
  const R = 'weft_requests_total';
  assert.equal(delta(now.front, before.front, R, { ...toBackend, response_code: '200', grpc_status: '' }), 3);
  assert.equal(delta(now.front, before.front, R, { ...toBackend, response_code: '404' }), 2);
  assert.equal(delta(now.front, before.front, R, { ...toBackend, response_code: '503' }), 1);
  assert.equal(delta(now.front, before.front, R, { ...toLegacy, response_code: '200' }), 4);
  assert.equal(delta(now.front, before.front, R, { ...toRpc, response_code: '200', grpc_status: '0' }), 2);
  assert.equal(delta(now.front, before.front, R, { ...toRpc, response_code: '200', grpc_status: '5' }), 1);
  assert.equal(delta(now.front, before.front, R, { ...out, destination_service: 'unknown', response_code: '404' }), 1, 'no route: destination unknown');
  // The histogram counts the same requests.
  assert.equal(delta(now.front, before.front, 'weft_request_duration_seconds_count', { ...toBackend, response_code: '404' }), 2);
  assert.equal(delta(now.front, before.front, 'weft_request_duration_seconds_bucket', { ...toBackend, response_code: '404', le: '+Inf' }), 2);
  // Inbound: the source from the peer's SPIFFE ID over mTLS; unknown over plaintext.
  assert.equal(delta(now.backend, before.backend, R, { ...inBackend, response_code: '200' }), 3);
  assert.equal(delta(now.backend, before.backend, R, { ...inBackend, response_code: '404' }), 2);
  assert.equal(delta(now.legacy, before.legacy, R, { ...inLegacy, response_code: '200' }), 4);
  // Bounded labels: no path, address or port anywhere in a sample's labels.
  for (const text of Object.values(now)) {
    assert.doesNotMatch(text.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /status\/|127\.0\.46\.|:15001/);
  }
  // xDS state.
  assert.equal(sample(now.front, 'weft_xds_connected', {}), 1);
  assert.ok(sample(now.front, 'weft_xds_updates_applied_total', { type: 'Cluster' }) >= 1);
});

/** One TCP connection through the frontend's port 2525: sends `text`, reads the echo, closes. */
function echoThrough(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(2525, PODS.frontend.ip);
    let got = '';
    c.on('connect', () => c.end(text));
    c.on('data', (d) => (got += d));
    c.on('close', () => resolve(got));
    c.on('error', reject);
  });
}

test('TCP: connections opened and closed and bytes both ways, at the caller (outbound, mtls) and the callee (inbound)', async () => {
  const was = { front: await sidecarMetrics(PODS.frontend.ip), backend: await sidecarMetrics(PODS.backend.ip) };
  assert.equal(await echoThrough('hello'), 'hello');
  assert.equal(await echoThrough('hello again'), 'hello again');
  const out = { direction: 'outbound', destination_service: `mail.${NS}.svc.cluster.local`, mtls: 'true' };
  const inb = { direction: 'inbound', destination_service: 'unknown', mtls: 'true' };
  const delta = (now: string, before: string, name: string, labels: Record<string, string>): number => sample(now, name, labels) - sample(before, name, labels);
  // Both sides' close is seen a moment after the client's.
  const now = await eventually('both connections closed on both sidecars', async () => {
    const n = { front: await sidecarMetrics(PODS.frontend.ip), backend: await sidecarMetrics(PODS.backend.ip) };
    return delta(n.front, was.front, 'weft_tcp_connections_closed_total', out) === 2 && delta(n.backend, was.backend, 'weft_tcp_connections_closed_total', inb) === 2 ? n : undefined;
  }, 5000);
  assert.equal(delta(now.front, was.front, 'weft_tcp_connections_opened_total', out), 2);
  assert.equal(delta(now.front, was.front, 'weft_tcp_sent_bytes_total', out), 16, 'the client\'s bytes');
  assert.equal(delta(now.front, was.front, 'weft_tcp_received_bytes_total', out), 16, 'the echo');
  assert.equal(delta(now.backend, was.backend, 'weft_tcp_connections_opened_total', inb), 2);
  assert.equal(delta(now.backend, was.backend, 'weft_tcp_received_bytes_total', inb), 16);
});

test('promtool check metrics passes on the sidecars\' and the control plane\'s /metrics after traffic', async (t) => {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    console.log(`# skipped: promtool not found (${probe.error.message}); .ci/run installs Debian's prometheus package`);
    return t.skip('promtool not installed');
  }
  const endpoints = {
    'sidecar frontend': `http://${PODS.frontend.ip}:15020/metrics`,
    'sidecar backend': `http://${PODS.backend.ip}:15020/metrics`,
    'sidecar legacy': `http://${PODS.legacy.ip}:15020/metrics`,
    'control plane': `http://${CP}:${cp.debugPort}/metrics`,
  };
  for (const [what, url] of Object.entries(endpoints)) {
    const text = await scrape(url);
    assert.match(text, /^weft_/m, `${what} serves Weft metrics`);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check metrics on ${what}:\n${r.stdout}${r.stderr}`);
  }
});

test('control plane: a manifest change is counted as registry events, and push convergence is observed once per proxy when it acknowledges', async () => {
  const url = `http://${CP}:${cp.debugPort}/metrics`;
  const was = await scrape(url);
  assert.equal(sample(was, 'weft_registry_events_total', { kind: 'Service', event: 'added' }), 4, 'the first load: four Services added');
  writeManifest(manifests, 'extra.yaml', service('extra', 'http', 8080));
  // Every sidecar gets a new outbound cluster for the new Service: four proxies converge.
  const now = await eventually('four proxies to acknowledge the change', async () => {
    const text = await scrape(url);
    return sample(text, 'weft_xds_push_convergence_seconds_count', {}) - sample(was, 'weft_xds_push_convergence_seconds_count', {}) >= 4 ? text : undefined;
  }, 10_000);
  assert.equal(sample(now, 'weft_registry_events_total', { kind: 'Service', event: 'added' }), 5);
  assert.equal(sample(now, 'weft_registry_events_total', { kind: 'Service', event: 'deleted' }), 0);
  const seconds = sample(now, 'weft_xds_push_convergence_seconds_sum', {}) - sample(was, 'weft_xds_push_convergence_seconds_sum', {});
  assert.ok(seconds > 0 && seconds < 40, `convergence took ${seconds} s in all (debounce 20 ms + push + ACK, per proxy)`);
  // Removed again: counted as a deletion.
  const { rmSync } = await import('node:fs');
  rmSync(join(manifests, 'extra.yaml'));
  await eventually('the deletion to be counted', async () => sample(await scrape(url), 'weft_registry_events_total', { kind: 'Service', event: 'deleted' }) === 1, 10_000);
});

test('weft stat shows per workload what the backend served during its window: rps, success and latency', async () => {
  // Steady traffic for the whole window: 3 of 4 requests succeed, 1 of 4 is a 500 (a failure; a
  // 503 would be retried by the caller's default retry policy and reach the backend more often).
  let running = true;
  let sent = 0;
  const load = (async () => {
    while (running) {
      await front.get(HOST.backend, sent % 4 === 3 ? '/status/500' : '/');
      sent++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const r = await runWeft(['stat', '-n', NS, '--window', '2', '--control-plane', `${CP}:${cp.debugPort}`]);
  running = false;
  await load;
  assert.equal(r.code, 0, r.out);
  const row = r.out.split('\n').find((l) => /^shop +backend /.test(l));
  assert.ok(row, r.out);
  const [, , meshed, success, rps, p50, , p99] = row.split(/ +/);
  assert.equal(meshed, '1/1');
  const ok = Number(success!.replace('%', ''));
  assert.ok(ok > 65 && ok < 85, `about 75% success: ${success}\n${r.out}`);
  assert.ok(Number(rps!.replace('rps', '')) > 10, `requests per second: ${rps}`);
  assert.match(p50!, /^\d+ms$/);
  assert.match(p99!, /^\d+ms$/);
  // Every pod with a sidecar has a row, traffic or not.
  // Every pod with a sidecar has a row, traffic served or not; the frontend (pod frontend-7f9c-x2x)
  // is named by its app label, as its outbound series carry it.
  for (const w of ['frontend', 'legacy', 'rpc']) assert.match(r.out, new RegExp(`^shop +${w} +1/1 `, 'm'));
});
