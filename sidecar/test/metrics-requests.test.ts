/**
 * The data path's metrics over real sockets (a listener on 127.0.0.1:0, real upstreams): retries
 * and timeouts counted per destination service, codes as the client saw them (0 when it left
 * first), and the series of a destination removed when its cluster leaves the config.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { silentLogger } from '@weft/api';
import type { ProxyConfig, RetryPolicy } from '../src/config';
import { HttpProxyListener } from '../src/listener-http';
import { MetricsRegistry } from '../src/metrics';
import { clusterStats, RequestMetrics, serviceOf, workloadOfPod } from '../src/metrics-requests';
import { RetryBudgets } from '../src/retry-budget';
import { UpstreamPool } from '../src/upstream-pool';
import type { Endpoint } from '../src/config';
import { cluster, proxyConfig, route, routeTable, send, startUpstream, vhost } from './fixtures';
import { retryPolicy } from './retry-fixtures';

const APP = 'outbound|80||app.shop.svc.cluster.local';
const SERVICE = 'app.shop.svc.cluster.local';

function configFor(endpoints: Endpoint[], opts: { retry?: RetryPolicy; timeoutMs?: number } = {}): ProxyConfig {
  const r = { ...route('default', APP, opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}), ...(opts.retry ? { retry: opts.retry } : {}) };
  return proxyConfig({ routeTables: [routeTable('outbound', [vhost('all', ['*'], [r])])], clusters: [cluster(APP)], endpoints: { [APP]: endpoints } });
}

async function startProxy(config: () => ProxyConfig): Promise<{ port: number; registry: MetricsRegistry; metrics: RequestMetrics; close: () => Promise<void> }> {
  const registry = new MetricsRegistry();
  const pool = new UpstreamPool();
  const metrics = new RequestMetrics(registry, { workload: 'client', namespace: 'shop' }, () => clusterStats(config(), pool));
  const l = new HttpProxyListener({ name: 'outbound', direction: 'outbound', address: '127.0.0.1', port: 0, routes: { kind: 'rds', name: 'outbound' } }, config, {
    log: silentLogger, pool, retryBudgets: new RetryBudgets(), requestMetrics: metrics,
  });
  await l.listen();
  return { port: l.address()!.port, registry, metrics, close: async () => { l.destroy(); await l.close(); pool.destroy(); } };
}

/** A sample's value from the text format, by exact label set in any order (0 when absent). */
function value(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.keys(got).length === Object.keys(labels).length && Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return 0;
}

const LABELS = { direction: 'outbound', source_workload: 'client', source_namespace: 'shop', destination_service: SERVICE, destination_namespace: 'shop', destination_workload: 'unknown', grpc_status: '', mtls: 'false' };

test('retries and timeouts are counted per destination service; the request once, with the code the client got', async (t) => {
  const up = await startUpstream('down', (_r, res) => {
    res.writeHead(503);
    res.end();
  });
  t.after(() => up.close());
  const config = configFor([up.endpoint()], { retry: retryPolicy({ backoff: { baseMs: 1, maxMs: 2 } }) });
  const proxy = await startProxy(() => config);
  t.after(() => proxy.close());
  assert.equal((await send(proxy.port, { path: '/' })).status, 503);
  const text = await proxy.registry.render();
  assert.equal(value(text, 'weft_retries_total', { destination_service: SERVICE }), 2, 'two retries after the first try');
  assert.equal(value(text, 'weft_requests_total', { ...LABELS, response_code: '503' }), 1);
  assert.equal(value(text, 'weft_request_duration_seconds_count', { ...LABELS, response_code: '503' }), 1);

  const slow = await startUpstream('slow', () => undefined); // never answers
  t.after(() => slow.close());
  const timed = configFor([slow.endpoint()], { timeoutMs: 50 });
  const proxy2 = await startProxy(() => timed);
  t.after(() => proxy2.close());
  assert.equal((await send(proxy2.port, { path: '/' })).status, 504);
  const text2 = await proxy2.registry.render();
  assert.equal(value(text2, 'weft_request_timeouts_total', { destination_service: SERVICE }), 1);
  assert.equal(value(text2, 'weft_requests_total', { ...LABELS, response_code: '504' }), 1);
});

test('a client that leaves before any response is recorded with response_code 0', async (t) => {
  const slow = await startUpstream('slow', () => undefined);
  t.after(() => slow.close());
  const config = configFor([slow.endpoint()]);
  const proxy = await startProxy(() => config);
  t.after(() => proxy.close());
  await new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: proxy.port, path: '/', agent: false });
    req.on('error', () => resolve());
    setTimeout(() => req.destroy(), 100);
  });
  let text = '';
  for (let i = 0; i < 50 && !value(text, 'weft_requests_total', { ...LABELS, response_code: '0' }); i++) {
    await new Promise((r) => setTimeout(r, 20));
    text = await proxy.registry.render();
  }
  assert.equal(value(text, 'weft_requests_total', { ...LABELS, response_code: '0' }), 1);
});

test('the series of a destination whose cluster left the config are removed; others stay', async (t) => {
  const up = await startUpstream('app');
  t.after(() => up.close());
  let config = configFor([up.endpoint()]);
  const proxy = await startProxy(() => config);
  t.after(() => proxy.close());
  assert.equal((await send(proxy.port, { path: '/' })).status, 200);
  assert.match(await proxy.registry.render(), /destination_service="app\.shop\.svc\.cluster\.local"/);
  proxy.metrics.retain(config);
  assert.match(await proxy.registry.render(), /destination_service="app\.shop\.svc\.cluster\.local"/, 'still configured: kept');
  config = proxyConfig({ routeTables: [routeTable('outbound', [])], clusters: [], endpoints: {} });
  proxy.metrics.retain(config);
  assert.doesNotMatch(await proxy.registry.render(), /app\.shop\.svc\.cluster\.local/);
});

test('label values: service host from the cluster name, workload from the pod name', () => {
  assert.equal(serviceOf('outbound|80|v1|reviews.shop.svc.cluster.local'), 'reviews.shop.svc.cluster.local');
  assert.equal(serviceOf('inbound|8080||'), 'unknown');
  assert.equal(serviceOf('app'), 'unknown');
  assert.equal(workloadOfPod('reviews-v1-7f9c6-x2x4q'), 'reviews-v1-7f9c6');
  assert.equal(workloadOfPod('single'), 'single');
});

test('resolved children update the same series prom-client renders (buckets cumulative, sum, count), also after the series was removed', async () => {
  const registry = new MetricsRegistry();
  const c = registry.counter('weft_test_total', 'Test.', ['a', 'b']);
  const h = registry.histogram('weft_test_seconds', 'Test.', ['a'], [0.1, 1]);
  const cc = c.child({ b: 'y', a: 'x' });
  const hc = h.child({ a: 'x' });
  cc.inc();
  cc.inc(2);
  c.inc({ a: 'x', b: 'y' }); // the labelled path lands on the same series
  for (const v of [0.05, 0.5, 0.5, 5]) hc.observe(v);
  let text = await registry.render();
  assert.match(text, /^weft_test_total\{b="y",a="x"\} 4$/m);
  assert.match(text, /^weft_test_seconds_bucket\{le="0.1",a="x"\} 1$/m);
  assert.match(text, /^weft_test_seconds_bucket\{le="1",a="x"\} 3$/m);
  assert.match(text, /^weft_test_seconds_bucket\{le="\+Inf",a="x"\} 4$/m);
  assert.match(text, /^weft_test_seconds_sum\{a="x"\} 6.05$/m);
  assert.match(text, /^weft_test_seconds_count\{a="x"\} 4$/m);
  c.remove({ a: 'x', b: 'y' });
  h.remove({ a: 'x' });
  cc.inc();
  hc.observe(0.2);
  text = await registry.render();
  assert.match(text, /^weft_test_total\{b="y",a="x"\} 1$/m);
  assert.match(text, /^weft_test_seconds_count\{a="x"\} 1$/m);
  assert.match(text, /^weft_test_seconds_bucket\{le="0.1",a="x"\} 0$/m);
});
