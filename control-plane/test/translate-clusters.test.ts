import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, parseNodeId, sidecarNodeId, TypeUrl, unpackAny, type TrafficPolicy } from '@weft/api';
import { translate } from '../src/translate';
import { PEAK_EWMA_TYPE_URL, trafficFields } from '../src/translate-clusters';
import { policy, shop, SUBSETS, split, world } from './world-fixtures';

type Obj = Record<string, any>;
const FRONTEND = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'));
const PROXYLESS = parseNodeId('grpc-client-1');
const BACKEND = 'backend.shop.svc.cluster.local';
const withSpec = (extra: Partial<TrafficPolicy>): TrafficPolicy => ({ ...policy('backend', 'backend', [split(90, 10)], SUBSETS), ...extra });

test('loadBalancer: each algorithm as Envoy fields (table)', () => {
  const rows: [TrafficPolicy['loadBalancer'] | undefined, string, boolean][] = [
    [undefined, 'LEAST_REQUEST', true],
    [{ algorithm: 'EWMA' }, 'LEAST_REQUEST', true],
    [{ algorithm: 'LeastRequest' }, 'LEAST_REQUEST', false],
    [{ algorithm: 'RoundRobin' }, 'ROUND_ROBIN', false],
    [{ algorithm: 'Random' }, 'RANDOM', false],
  ];
  for (const [lb, enumName, ewma] of rows) {
    const f = trafficFields(withSpec(lb ? { loadBalancer: lb } : {}));
    assert.equal(f.lb_policy, enumName, JSON.stringify(lb));
    assert.equal('load_balancing_policy' in f, ewma, JSON.stringify(lb));
  }
  const policies = (trafficFields(undefined) as Obj).load_balancing_policy.policies;
  assert.equal(policies[0].typed_extension_config.typed_config.type_url, PEAK_EWMA_TYPE_URL);
  assert.deepEqual(policies[0].typed_extension_config.typed_config.value.fields.decay, { stringValue: '10s' });
  assert.equal(policies[1].typed_extension_config.name, 'envoy.load_balancing_policies.least_request');
});

test('outlierDetection: consecutive 5xx and gateway failures, interval, ejection time, max percent (table)', () => {
  const rows: [NonNullable<TrafficPolicy['outlierDetection']>, Obj][] = [
    [
      { consecutive5xxErrors: 3, intervalMs: 1500, baseEjectionTimeMs: 60_000, maxEjectionPercent: 50 },
      { c: 3, enforcing: 100, interval: { seconds: 1, nanos: 500_000_000 }, base: { seconds: 60 }, max: 50 },
    ],
    [{}, { c: 5, enforcing: 100, interval: { seconds: 10 }, base: { seconds: 30 }, max: 10 }],
    [{ consecutive5xxErrors: 0 }, { c: 0, enforcing: 0, interval: { seconds: 10 }, base: { seconds: 30 }, max: 10 }],
  ];
  for (const [od, want] of rows) {
    const o = trafficFields(withSpec({ outlierDetection: od })).outlier_detection as Obj;
    assert.deepEqual(o, {
      consecutive_5xx: { value: want.c },
      enforcing_consecutive_5xx: { value: want.enforcing },
      consecutive_gateway_failure: { value: want.c },
      enforcing_consecutive_gateway_failure: { value: want.enforcing },
      enforcing_success_rate: { value: 0 },
      interval: want.interval,
      base_ejection_time: want.base,
      max_ejection_percent: { value: want.max },
    });
  }
  assert.equal(trafficFields(withSpec({})).outlier_detection, undefined);
});

test('connectionPool: circuit breakers and max requests per connection; 0 or omitted sends nothing (table)', () => {
  const rows: [NonNullable<TrafficPolicy['connectionPool']>, Obj | undefined, number | undefined][] = [
    [{ maxConnections: 1, maxPendingRequests: 2, maxRequestsPerConnection: 3 }, { priority: 'DEFAULT', max_connections: { value: 1 }, max_pending_requests: { value: 2 } }, 3],
    [{ maxConnections: 100 }, { priority: 'DEFAULT', max_connections: { value: 100 } }, undefined],
    [{ maxConnections: 0, maxPendingRequests: 0, maxRequestsPerConnection: 0 }, undefined, undefined],
  ];
  for (const [pool, threshold, perConn] of rows) {
    const f = trafficFields(withSpec({ connectionPool: pool })) as Obj;
    assert.deepEqual(f.circuit_breakers, threshold ? { thresholds: [threshold] } : undefined, JSON.stringify(pool));
    const opts = f.typed_extension_protocol_options?.['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
    assert.equal(opts?.common_http_protocol_options.max_requests_per_connection.value, perConn, JSON.stringify(pool));
    if (opts) assert.deepEqual(opts.explicit_http_config, { http_protocol_options: {} });
  }
});

test('every cluster of the Service carries the policy; proxyless clients get round robin and nothing else', () => {
  const p = withSpec({ loadBalancer: { algorithm: 'EWMA' }, outlierDetection: { consecutive5xxErrors: 2 }, connectionPool: { maxConnections: 7 } });
  const w = world([...shop(), p]);
  for (const subset of ['', 'v1', 'v2']) {
    const c = translate(w, FRONTEND).get(TypeUrl.Cluster)!.get(`outbound|80|${subset}|${BACKEND}`) as Obj;
    assert.ok(c.load_balancing_policy && c.outlier_detection && c.circuit_breakers, subset);
  }
  const g = translate(w, PROXYLESS).get(TypeUrl.Cluster)!.get(`outbound|80||${BACKEND}`) as Obj;
  assert.equal(g.lb_policy, 'ROUND_ROBIN');
  for (const f of ['load_balancing_policy', 'outlier_detection', 'circuit_breakers', 'typed_extension_protocol_options']) assert.equal(g[f], undefined, f);
});

test('what is sent encodes as an Envoy v3 Cluster and decodes with its typed configs expanded', () => {
  const p = withSpec({ outlierDetection: { consecutive5xxErrors: 2 }, connectionPool: { maxConnections: 1, maxPendingRequests: 1, maxRequestsPerConnection: 10 } });
  const cluster = translate(world([...shop(), p]), FRONTEND).get(TypeUrl.Cluster)!.get(`outbound|80||${BACKEND}`) as Obj;
  const back = unpackAny(packAny(TypeUrl.Cluster, cluster)) as Obj;
  const [ewma, lr] = back.load_balancing_policy.policies;
  assert.equal(ewma.typed_extension_config.typed_config['@type'], 'type.googleapis.com/xds.type.v3.TypedStruct');
  assert.equal(ewma.typed_extension_config.typed_config.type_url, PEAK_EWMA_TYPE_URL);
  assert.equal(lr.typed_extension_config.typed_config.choice_count.value, 2);
  assert.equal(back.outlier_detection.consecutive_5xx.value, 2);
  assert.equal(back.circuit_breakers.thresholds[0].max_pending_requests.value, 1);
  const opts = back.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  assert.equal(opts.common_http_protocol_options.max_requests_per_connection.value, 10);
});
