/**
 * trace-config.ts: the HCM `tracing` block → `TracingConfig`, or an error naming the field (a
 * NACK). Inputs are real resources, encoded with the Envoy protos and decoded as the xDS client does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TypeUrl } from '@weft/api';
import { buildProxyConfig } from '../src/config-from-xds';
import { hcm, listenerObject, decoded, resources, type Obj } from './xds-fixtures';

const OTEL = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';
const provider = (config: Obj = {}): Obj => ({
  name: 'envoy.tracers.opentelemetry',
  typed_config: { '@type': OTEL, service_name: 'reviews', http_service: { http_uri: { uri: 'http://127.0.0.1:4318/v1/traces', cluster: 'weft-otlp', timeout: { seconds: 2 } } }, ...config },
});

function build(tracing: Obj | undefined) {
  const manager = { ...hcm('outbound'), ...(tracing ? { tracing } : {}) };
  const listener = decoded(TypeUrl.Listener, listenerObject('out', { filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: manager }] }));
  return buildProxyConfig(resources({ listeners: [listener], routes: [decoded(TypeUrl.RouteConfiguration, { name: 'outbound', virtual_hosts: [] })] }));
}

test('a tracing block becomes endpoint, sampling ratio, service name and timeout', () => {
  const r = build({ random_sampling: { value: 1 }, provider: provider() });
  assert.ok(r.ok, r.ok ? '' : r.errors.join('; '));
  assert.deepEqual(r.config.listeners.get('out')!.tracing, { endpoint: 'http://127.0.0.1:4318/v1/traces', samplingRatio: 0.01, serviceName: 'reviews', timeoutMs: 2000 });
});

test('no tracing block, or one without a provider: no tracing (Envoy traces nothing either)', () => {
  for (const t of [undefined, { random_sampling: { value: 50 } }]) {
    const r = build(t);
    assert.ok(r.ok);
    assert.equal(r.config.listeners.get('out')!.tracing, undefined);
  }
});

test('absent random_sampling is Envoy default 100%', () => {
  const r = build({ provider: provider() });
  assert.ok(r.ok);
  assert.equal(r.config.listeners.get('out')!.tracing!.samplingRatio, 1);
});

const REFUSED: { what: string; tracing: Obj; error: RegExp }[] = [
  { what: 'another tracer', tracing: { provider: { name: 'envoy.tracers.zipkin', typed_config: { '@type': OTEL } } }, error: /tracer envoy\.tracers\.zipkin .*not supported/ },
  { what: 'OTLP over gRPC', tracing: { provider: provider({ http_service: undefined, grpc_service: { envoy_grpc: { cluster_name: 'otel' } } }) }, error: /grpc_service: OTLP over gRPC is not supported/ },
  { what: 'a sampling percentage above 100', tracing: { random_sampling: { value: 150 }, provider: provider() }, error: /random_sampling: must be a percentage from 0 to 100/ },
  { what: 'client_sampling other than 100', tracing: { client_sampling: { value: 10 }, provider: provider() }, error: /client_sampling: only 100/ },
  { what: 'a non-HTTP endpoint', tracing: { provider: provider({ http_service: { http_uri: { uri: 'grpc://collector:4317', cluster: 'x' } } }) }, error: /uri: must be http:\/\/ or https:\/\// },
  { what: 'no endpoint', tracing: { provider: provider({ http_service: { http_uri: { cluster: 'x' } } }) }, error: /http_uri\.uri is required/ },
];

for (const c of REFUSED) {
  test(`refused with the field named: ${c.what}`, () => {
    const r = build(c.tracing);
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.errors.join('; '), c.error);
    assert.match(r.ok ? '' : r.errors.join('; '), /listener "?out"?.*tracing|tracing/);
  });
}
