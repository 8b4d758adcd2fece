import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProxyConfig } from '../src/config-from-xds';
import { PEAK_EWMA_TYPE_URL } from '../src/cluster-from-xds';
import { clusterXds, type Obj } from './xds-fixtures';

const build = (fields: Obj) => buildProxyConfig({ listeners: [], routes: [], clusters: [clusterXds('c', fields)], assignments: [] });
const parsed = (fields: Obj) => {
  const r = build(fields);
  assert.ok(r.ok, r.ok ? '' : r.errors.join('; '));
  return r.config.clusters.get('c')!;
};

const typedStruct = (typeUrl: string, fields: Obj = {}) => ({
  '@type': 'type.googleapis.com/xds.type.v3.TypedStruct',
  type_url: typeUrl,
  value: { fields },
});
const lbp = (...configs: Obj[]) => ({ policies: configs.map((typed_config, i) => ({ typed_extension_config: { name: `p${i}`, typed_config } })) });
const LEAST_REQUEST = { '@type': 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest', choice_count: { value: 2 } };

test('load balancing as the control plane sends it: peak EWMA from load_balancing_policy, else the lb_policy enum', () => {
  const ewma = parsed({ lb_policy: 'LEAST_REQUEST', load_balancing_policy: lbp(typedStruct(PEAK_EWMA_TYPE_URL, { decay: { stringValue: '10s' }, default_rtt: { stringValue: '0.030s' } }), LEAST_REQUEST) });
  assert.equal(ewma.lbPolicy, 'PEAK_EWMA');
  assert.deepEqual(ewma.peakEwma, { decayMs: 10_000, defaultRttMs: 30 });
  assert.equal(parsed({ lb_policy: 'LEAST_REQUEST' }).lbPolicy, 'LEAST_REQUEST');
  assert.equal(parsed({ lb_policy: 'RANDOM' }).lbPolicy, 'RANDOM');
  // The first policy this sidecar implements wins: an unknown TypedStruct is skipped.
  assert.equal(parsed({ load_balancing_policy: lbp(typedStruct('type.example.com/Other'), LEAST_REQUEST) }).lbPolicy, 'LEAST_REQUEST');
});

test('an lb policy the sidecar cannot honour is NACKed', () => {
  for (const [fields, reason] of [
    [{ lb_policy: 'RING_HASH' }, /lb_policy RING_HASH is not supported/],
    [{ load_balancing_policy: lbp(typedStruct('type.example.com/Other')) }, /none of the policies is supported/],
    [{ load_balancing_policy: lbp(typedStruct(PEAK_EWMA_TYPE_URL, { decay: { stringValue: 'soon' } })) }, /PeakEwma decay must be a duration/],
  ] as const) {
    const r = build(fields);
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors.join('; '), reason);
  }
});

test('outlier detection, circuit breakers and max requests per connection become typed fields', () => {
  const c = parsed({
    outlier_detection: {
      consecutive_5xx: { value: 3 },
      consecutive_gateway_failure: { value: 3 },
      enforcing_consecutive_gateway_failure: { value: 100 },
      enforcing_success_rate: { value: 0 },
      interval: { seconds: 1, nanos: 500_000_000 },
      base_ejection_time: { seconds: 60 },
      max_ejection_percent: { value: 50 },
    },
    circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: { value: 9 } }, { max_connections: { value: 1 }, max_pending_requests: { value: 2 } }] },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        common_http_protocol_options: { max_requests_per_connection: { value: 10 } },
        explicit_http_config: { http_protocol_options: {} },
      },
    },
  });
  assert.deepEqual(c.outlierDetection, {
    consecutive5xx: 3,
    consecutiveGatewayFailure: 3,
    intervalMs: 1500,
    baseEjectionTimeMs: 60_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 50,
  });
  assert.deepEqual(c.circuitBreakers, { maxConnections: 1, maxPendingRequests: 2 });
  assert.equal(c.maxRequestsPerConnection, 10);
  // The deprecated cluster field is read too; nothing set means no extra fields at all.
  assert.equal(parsed({ max_requests_per_connection: { value: 4 } }).maxRequestsPerConnection, 4);
  const plain = parsed({});
  for (const f of ['outlierDetection', 'circuitBreakers', 'maxRequestsPerConnection', 'peakEwma']) assert.ok(!(f in plain), f);
});

test('outlier detection the sidecar does not implement is NACKed (Envoy enforces success rate by default)', () => {
  const r = build({ outlier_detection: { consecutive_5xx: { value: 3 } } });
  assert.equal(r.ok, false);
  if (!r.ok) assert.match(r.errors.join('; '), /success-rate ejection is not supported/);
});
