import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '@weft/api';
import { AdminServer, HealthServer, MetricsServer, renderClusters, type ServerState } from '../src/admin';
import { MetricsRegistry } from '../src/metrics';
import { cluster, endpoint, proxyConfig, send, sleep, startUpstream } from './fixtures';

const config = proxyConfig({
  clusters: [
    cluster('outbound|9080||reviews.shop.svc.cluster.local', { edsServiceName: 'reviews' }),
    cluster('inbound|8080||', { discovery: 'STATIC', staticEndpoints: [endpoint('127.0.0.5', 8080)], lbPolicy: 'RANDOM' }),
  ],
  endpoints: { reviews: [endpoint('127.0.0.2', 15006, { targetPort: 9080, weight: 2 }), endpoint('127.0.0.3', 15006, { healthy: false })] },
});

test('the admin server serves config_dump, clusters, ready, drain and quitquitquit', async (t) => {
  let state: ServerState = 'INITIALIZING';
  let drains = 0;
  let quits = 0;
  const admin = new AdminServer({
    address: '127.0.0.1',
    port: 0,
    log: silentLogger,
    dump: () => ({ version: '7', config }),
    config: () => config,
    state: () => state,
    drain: () => {
      drains++;
    },
    quit: () => {
      quits++;
    },
  });
  await admin.listen();
  t.after(() => admin.destroy());
  const port = admin.address()!.port;

  const dump = await send(port, { path: '/config_dump' });
  assert.equal(dump.status, 200);
  assert.equal(dump.headers['content-type'], 'application/json');
  const parsed = JSON.parse(dump.body);
  assert.equal(parsed.version, '7');
  assert.equal(parsed.config.clusters['inbound|8080||'].lbPolicy, 'RANDOM');
  assert.equal(parsed.config.endpoints.reviews[0].targetPort, 9080);

  const clusters = await send(port, { path: '/clusters' });
  assert.equal(clusters.status, 200);
  assert.match(clusters.body, /^outbound\|9080\|\|reviews\.shop\.svc\.cluster\.local::127\.0\.0\.2:15006::health_flags::healthy$/m);
  assert.match(clusters.body, /::127\.0\.0\.2:15006::weight::2$/m);
  assert.match(clusters.body, /::127\.0\.0\.2:15006::target_port::9080$/m);
  assert.match(clusters.body, /::127\.0\.0\.3:15006::health_flags::\/failed_eds_health$/m);
  assert.match(clusters.body, /^inbound\|8080\|\|::127\.0\.0\.5:8080::health_flags::healthy$/m);

  assert.deepEqual(await statusAndBody(port, '/ready'), [503, 'INITIALIZING\n']);
  state = 'LIVE';
  assert.deepEqual(await statusAndBody(port, '/ready'), [200, 'LIVE\n']);

  assert.equal((await send(port, { path: '/drain' })).status, 405);
  assert.equal((await send(port, { path: '/drain', method: 'POST' })).status, 200);
  await sleep(5);
  assert.equal(drains, 1);

  assert.equal((await send(port, { path: '/quitquitquit', method: 'POST' })).status, 200);
  await sleep(5);
  assert.equal(quits, 1);

  assert.equal((await send(port, { path: '/nope' })).status, 404);
});

test('an admin callback that throws gets a 500, not a crash', async (t) => {
  const admin = new AdminServer({
    address: '127.0.0.1',
    port: 0,
    log: silentLogger,
    dump: () => {
      throw new Error('no config yet');
    },
    config: () => config,
    state: () => 'LIVE',
    drain: () => undefined,
    quit: () => undefined,
  });
  await admin.listen();
  t.after(() => admin.destroy());
  assert.deepEqual(await statusAndBody(admin.address()!.port, '/config_dump'), [500, 'no config yet\n']);
});

test('the health server answers /healthz/ready 503 until ready, then 200', async (t) => {
  let ready = false;
  const health = new HealthServer({ address: '127.0.0.1', port: 0, log: silentLogger, ready: () => ready });
  await health.listen();
  t.after(() => health.destroy());
  const port = health.address()!.port;
  assert.equal((await send(port, { path: '/healthz/ready' })).status, 503);
  ready = true;
  assert.equal((await send(port, { path: '/healthz/ready' })).status, 200);
  assert.equal((await send(port, { path: '/healthz/live' })).status, 404);
});

test('admin and health close() are idempotent and release the port; listen() on a taken port fails clearly', async (t) => {
  const squatter = await startUpstream('squatter');
  t.after(() => squatter.close());
  const health = new HealthServer({ address: '127.0.0.1', port: squatter.port, log: silentLogger, ready: () => true });
  await assert.rejects(health.listen(), /health: cannot bind 127\.0\.0\.1:\d+: address already in use/);

  const admin = new AdminServer({
    address: '127.0.0.1',
    port: 0,
    log: silentLogger,
    dump: () => ({}),
    config: () => config,
    state: () => 'LIVE',
    drain: () => undefined,
    quit: () => undefined,
  });
  await admin.listen();
  const port = admin.address()!.port;
  await Promise.all([admin.close(), admin.close()]);
  await admin.close();
  admin.destroy();
  await assert.rejects(send(port, { path: '/ready' }), /ECONNREFUSED/);
  await health.close();
  await health.close();
});

test('renderClusters lists nothing for an empty config', () => {
  assert.equal(renderClusters(proxyConfig({})), '');
});

async function statusAndBody(port: number, path: string): Promise<[number, string]> {
  const r = await send(port, { path });
  return [r.status, r.body];
}

test('the metrics server serves counters and gauges in the Prometheus text format; other paths 404, POST 405', async (t) => {
  const registry = new MetricsRegistry();
  const denials = registry.counter('weft_test_denials_total', 'Requests denied.', ['policy', 'kind']);
  const expiry = registry.gauge('weft_test_expiry_seconds', 'When it expires.');
  denials.inc({ policy: 'shop/deny "admin"', kind: 'http' });
  denials.inc({ policy: 'shop/deny "admin"', kind: 'http' }, 2);
  denials.inc({ policy: 'shop/other', kind: 'tcp' });
  expiry.set({}, 1.7e9);
  const server = new MetricsServer({ address: '127.0.0.1', port: 0, log: silentLogger, registry });
  await server.listen();
  t.after(() => server.destroy());
  const port = server.address()!.port;
  const r = await send(port, { path: '/metrics' });
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] as string, /^text\/plain; version=0\.0\.4/);
  assert.equal(r.body, [
    '# HELP weft_test_denials_total Requests denied.',
    '# TYPE weft_test_denials_total counter',
    'weft_test_denials_total{policy="shop/deny \\"admin\\"",kind="http"} 3',
    'weft_test_denials_total{policy="shop/other",kind="tcp"} 1',
    '', // prom-client separates metrics by an empty line
    '# HELP weft_test_expiry_seconds When it expires.',
    '# TYPE weft_test_expiry_seconds gauge',
    'weft_test_expiry_seconds 1700000000',
    '',
  ].join('\n'));
  assert.equal((await send(port, { path: '/stats' })).status, 404);
  assert.equal((await send(port, { path: '/metrics', method: 'POST' })).status, 405);
  assert.throws(() => registry.counter('weft_test_denials_total', 'again'), /already been registered/);
  assert.throws(() => registry.counter('weft_test_requests', 'no suffix'), /must end in _total/);
});
