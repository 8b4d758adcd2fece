import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeStats, renderStats, scrapeTargets, workloadOfPod } from '../src/cmd-stat';
import { deltas, histogramQuantile, parsePromText } from '../src/prom-text';

test('the Prometheus text format: labels with escapes, special values, comments; a malformed line is an error naming it', () => {
  const s = parsePromText([
    '# HELP weft_requests_total Requests.',
    '# TYPE weft_requests_total counter',
    'weft_requests_total{direction="inbound",path="a\\"b\\\\c\\nd"} 3',
    'weft_up 1 1700000000000',
    'weft_bucket{le="+Inf"} +Inf',
    '',
  ].join('\n'));
  assert.deepEqual(s, [
    { name: 'weft_requests_total', labels: { direction: 'inbound', path: 'a"b\\c\nd' }, value: 3 },
    { name: 'weft_up', labels: {}, value: 1 },
    { name: 'weft_bucket', labels: { le: '+Inf' }, value: Infinity },
  ]);
  assert.throws(() => parsePromText('ok 1\nnot a sample line here'), /^Error: line 2: not a Prometheus sample/);
  assert.throws(() => parsePromText('x{a=b} 1'), /line 1: malformed labels/);
});

test('deltas between scrapes: new series count from 0, a reset counts as the new value', () => {
  const before = parsePromText('a{x="1"} 10\nb 5');
  const after = parsePromText('a{x="1"} 15\nb 2\nc 7');
  assert.deepEqual(deltas(before, after).map((s) => [s.name, s.value]), [['a', 5], ['b', 2], ['c', 7]]);
});

test('histogram quantiles interpolate within a bucket, as histogram_quantile does', () => {
  const b = new Map([[0.01, 50], [0.1, 90], [1, 100], [Infinity, 100]]);
  assert.equal(histogramQuantile(0.5, b), 0.01);
  assert.ok(Math.abs(histogramQuantile(0.7, b) - 0.055) < 1e-9);
  assert.ok(Math.abs(histogramQuantile(0.95, b) - 0.55) < 1e-9);
  assert.ok(Number.isNaN(histogramQuantile(0.5, new Map())));
  assert.equal(histogramQuantile(0.99, new Map([[0.5, 1], [Infinity, 10]])), 0.5, 'the +Inf bucket reports the highest finite bound');
});

test('weft stat computes success, rps, latency and open TCP connections per workload from inbound series', () => {
  const targets = scrapeTargets([
    { node: 'sidecar~127.0.0.21~backend-v1-abc.shop~shop.svc.cluster.local', kind: 'sidecar' },
    { node: 'sidecar~127.0.0.22~backend-v1-def.shop~shop.svc.cluster.local', kind: 'sidecar' },
    { node: 'sidecar~127.0.0.23~idle-7.shop~shop.svc.cluster.local', kind: 'sidecar' },
    { node: 'grpc-client-1', kind: 'proxyless' },
  ]);
  assert.deepEqual(targets.map((t) => `${t.namespace}/${t.pod}@${t.ip}`), ['shop/backend-v1-abc@127.0.0.21', 'shop/backend-v1-def@127.0.0.22', 'shop/idle-7@127.0.0.23']);
  const lbl = (code: string, grpc = ''): string => `direction="inbound",destination_workload="backend",destination_namespace="shop",response_code="${code}",grpc_status="${grpc}"`;
  const scrape = (ok: number, err: number, grpcErr: number, fast: number, slow: number, tcp: [number, number]): ReturnType<typeof parsePromText> => parsePromText([
    `weft_requests_total{${lbl('200')}} ${ok}`,
    `weft_requests_total{${lbl('503')}} ${err}`,
    `weft_requests_total{${lbl('200', '14')}} ${grpcErr}`,
    `weft_requests_total{direction="outbound",destination_workload="other",response_code="500"} 1000`,
    `weft_request_duration_seconds_bucket{direction="inbound",le="0.01"} ${fast}`,
    `weft_request_duration_seconds_bucket{direction="inbound",le="0.1"} ${fast + slow}`,
    `weft_request_duration_seconds_bucket{direction="inbound",le="+Inf"} ${fast + slow}`,
    `weft_tcp_connections_opened_total{direction="inbound"} ${tcp[0]}`,
    `weft_tcp_connections_closed_total{direction="inbound"} ${tcp[1]}`,
  ].join('\n'));
  const before = [scrape(100, 0, 0, 100, 0, [1, 0]), scrape(0, 0, 0, 0, 0, [0, 0]), []];
  // 10 s later: pod 1 served 90 ok + 5 errors + 5 gRPC errors; pod 2 (new) 100 ok; the idle pod's sidecar did not answer.
  const after = [scrape(190, 5, 5, 180, 20, [3, 1]), scrape(100, 0, 0, 80, 20, [1, 1]), undefined];
  const stats = computeStats(targets, before, after, 10);
  assert.equal(stats.length, 2);
  const [backend, idle] = stats;
  assert.equal(backend!.workload, 'backend');
  assert.equal(backend!.meshed, '2/2');
  assert.equal(backend!.success, 190 / 200);
  assert.equal(backend!.rps, 20);
  assert.ok(backend!.p50 <= 0.01 && backend!.p99 > 0.01 && backend!.p99 <= 0.1, `${backend!.p50} ${backend!.p99}`);
  assert.equal(backend!.tcpOpen, 2);
  assert.deepEqual([idle!.workload, idle!.meshed, Number.isNaN(idle!.success), idle!.rps], ['idle', '0/1', true, 0]);
  const out = renderStats(stats, 10);
  assert.match(out, /^NAMESPACE +WORKLOAD +MESHED +SUCCESS +RPS +LATENCY_P50 +LATENCY_P95 +LATENCY_P99 +TCP_CONN$/m);
  assert.match(out, /^shop +backend +2\/2 +95\.00% +20\.0rps +\d+ms +\d+ms +\d+ms +2$/m);
  assert.match(out, /^shop +idle +0\/1 +- +0\.0rps +- +- +- +0$/m);
  assert.equal(workloadOfPod('reviews-v1-5d8f'), 'reviews-v1');
  assert.equal(workloadOfPod('single'), 'single');
});
