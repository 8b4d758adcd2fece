/**
 * Mesh tracing in translation (docs/tracing.md): the control plane's `tracing` option becomes the
 * HCM `tracing` block of every HTTP connection manager of a sidecar (random_sampling, the
 * `envoy.tracers.opentelemetry` provider with an OTLP `http_service`, the workload as
 * `service_name`), nothing without it, and the sidecar accepts exactly what is sent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, parseNodeId, sidecarNodeId, TypeUrl, unpackAny } from '@weft/api';
import { translate } from '../src/translate';
import { shop, world } from './world-fixtures';

const FRONTEND = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'));
type Obj = Record<string, any>;
const TRACING = { endpoint: 'http://127.0.0.1:4318/v1/traces', samplingPercent: 2.5 };

/** Every HTTP connection manager in a listener's chains. */
function managers(l: Obj): Obj[] {
  const chains: Obj[] = [...l.filter_chains, ...(l.default_filter_chain ? [l.default_filter_chain] : [])];
  return chains.flatMap((c) => c.filters).filter((f: Obj) => f.name === 'envoy.filters.network.http_connection_manager').map((f: Obj) => f.typed_config);
}

test('with mesh tracing, every HCM of a sidecar carries random_sampling and the OpenTelemetry provider', () => {
  const out = translate({ ...world(shop()), tracing: TRACING }, FRONTEND).get(TypeUrl.Listener as never) as Map<string, Obj>;
  const hcms = [...out.values()].flatMap(managers);
  assert.ok(hcms.length >= 2, 'outbound and inbound at least');
  for (const m of hcms) {
    assert.deepEqual(m.tracing, {
      random_sampling: { value: 2.5 },
      provider: {
        name: 'envoy.tracers.opentelemetry',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig',
          service_name: 'frontend',
          http_service: { http_uri: { uri: 'http://127.0.0.1:4318/v1/traces', cluster: 'weft-otlp', timeout: { seconds: 5 } } },
        },
      },
    });
  }
});

test('without mesh tracing no HCM has a tracing block', () => {
  const out = translate(world(shop()), FRONTEND).get(TypeUrl.Listener as never) as Map<string, Obj>;
  for (const m of [...out.values()].flatMap(managers)) assert.equal(m.tracing, undefined);
});

test('the sidecar accepts the tracing block as sent: encoded, decoded, validated', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildProxyConfig } = require('@weft/sidecar') as { buildProxyConfig: (r: Obj) => Obj };
  const out = translate({ ...world(shop()), tracing: TRACING }, FRONTEND);
  const wire = (type: string, o: Obj): Obj => unpackAny(packAny(type, o));
  const rc = wire(TypeUrl.RouteConfiguration, out.get(TypeUrl.RouteConfiguration as never)!.get('outbound') as Obj);
  const listeners = [...(out.get(TypeUrl.Listener as never) as Map<string, Obj>).values()].map((l) => wire(TypeUrl.Listener, l));
  const result = buildProxyConfig({ listeners, routes: [rc], clusters: [], assignments: [] });
  assert.ok(result.ok, result.ok ? '' : result.errors.join('; '));
  const expected = { endpoint: 'http://127.0.0.1:4318/v1/traces', samplingRatio: 0.025, serviceName: 'frontend', timeoutMs: 5000 };
  assert.deepEqual(result.config.listeners.get('virtualOutbound').tracing, expected);
  assert.deepEqual(result.config.listeners.get('virtualInbound').tracing, expected);
});
