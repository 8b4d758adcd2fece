import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointSlice, Pod, Service } from '@weft/api';
import { DERIVED_MANAGED_BY, deriveEndpointSlices } from '../src/endpoints-derive';
import { meta, pod, service } from './world-fixtures';

const LABEL = 'kubernetes.io/service-name';

function givenSlice(svc: string, namespace = 'shop'): EndpointSlice {
  return {
    kind: 'EndpointSlice',
    meta: meta(`${svc}-abc`, namespace, { [LABEL]: svc }),
    serviceName: svc,
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 9999, protocol: 'TCP' }],
    endpoints: [{ addresses: ['127.0.0.99'], ready: true }],
  };
}

const derived = (out: EndpointSlice[], svc: string): EndpointSlice[] =>
  out.filter((s) => s.serviceName === svc && s.meta.labels['endpointslice.kubernetes.io/managed-by'] === DERIVED_MANAGED_BY);

test('given slices come back first and unchanged, and a Service that has one gets no derived slice', () => {
  const slices = [givenSlice('web')];
  const out = deriveEndpointSlices([service('web', [{ name: 'http', port: 80 }])], [pod('web-1', '127.0.0.5', { app: 'web' })], slices);
  assert.deepEqual(out, slices);
  assert.equal(out[0], slices[0]);
});

test('a slice of the same name in another namespace does not stop derivation', () => {
  const out = deriveEndpointSlices([service('web', [{ name: 'http', port: 80 }])], [pod('web-1', '127.0.0.5', { app: 'web' })], [givenSlice('web', 'other')]);
  assert.equal(derived(out, 'web').length, 1);
});

test('a derived slice holds the selected pods of the namespace that have an IP, with readiness and a targetRef', () => {
  const svc: Service = {
    ...service('web', [{ name: 'http', port: 80, targetPort: 8080 }]),
    ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP', appProtocol: 'http' }],
  };
  const noIp: Pod = { ...pod('web-3', '', { app: 'web' }), podIP: undefined, ready: false };
  const pods = [
    pod('web-1', '127.0.0.5', { app: 'web', version: 'v1' }),
    pod('web-2', '127.0.0.6', { app: 'web' }, { ready: false }),
    noIp,
    pod('api-1', '127.0.0.7', { app: 'api' }),
    pod('web-x', '127.0.0.8', { app: 'web' }, { namespace: 'other' }),
  ];
  assert.deepEqual(deriveEndpointSlices([svc], pods, []), [
    {
      kind: 'EndpointSlice',
      meta: { name: 'web-derived', namespace: 'shop', labels: { [LABEL]: 'web', 'endpointslice.kubernetes.io/managed-by': DERIVED_MANAGED_BY }, annotations: {} },
      serviceName: 'web',
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }],
      endpoints: [
        { addresses: ['127.0.0.5'], ready: true, targetRef: { kind: 'Pod', name: 'web-1', namespace: 'shop' } },
        { addresses: ['127.0.0.6'], ready: false, targetRef: { kind: 'Pod', name: 'web-2', namespace: 'shop' } },
      ],
    },
  ]);
});

test('a Service without a selector gets no derived slice', () => {
  const svc: Service = { ...service('ext', [{ port: 80 }]), selector: undefined };
  assert.deepEqual(deriveEndpointSlices([svc], [pod('ext-1', '127.0.0.5', { app: 'ext' })], []), []);
});

test('a named targetPort resolves per pod: pods resolving it differently get different slices, pods lacking it are left out', () => {
  const svc = service('web', [{ name: 'http', port: 80, targetPort: 'web' }]);
  const udp: Pod = { ...pod('web-udp', '127.0.0.9', { app: 'web' }), containerPorts: [{ name: 'web', containerPort: 8080, protocol: 'UDP' }] };
  const pods = [
    pod('web-1', '127.0.0.5', { app: 'web' }, { ports: [{ name: 'web', containerPort: 8080 }] }),
    pod('web-2', '127.0.0.6', { app: 'web' }, { ports: [{ name: 'web', containerPort: 9090 }] }),
    pod('web-3', '127.0.0.7', { app: 'web' }, { ports: [{ name: 'web', containerPort: 8080 }] }),
    pod('web-4', '127.0.0.8', { app: 'web' }, { ports: [{ name: 'admin', containerPort: 8080 }] }),
    udp,
  ];
  const out = deriveEndpointSlices([svc], pods, []);
  assert.deepEqual(
    out.map((s) => [s.meta.name, s.ports.map((p) => p.port), s.endpoints.map((e) => e.targetRef?.name)]),
    [
      ['web-derived', [8080], ['web-1', 'web-3']],
      ['web-derived-2', [9090], ['web-2']],
    ],
  );
  assert.deepEqual(out[0].ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
});

test('with several Service ports, a pod that resolves only some of them is listed with those ports', () => {
  const svc = service('web', [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'metrics', port: 9100, targetPort: 9100 }]);
  const pods = [
    pod('web-1', '127.0.0.5', { app: 'web' }, { ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('web-2', '127.0.0.6', { app: 'web' }),
  ];
  const out = deriveEndpointSlices([svc], pods, []);
  assert.deepEqual(
    out.map((s) => [s.ports.map((p) => `${p.name}:${p.port}`), s.endpoints.map((e) => e.targetRef?.name)]),
    [
      [['http:8080', 'metrics:9100'], ['web-1']],
      [['metrics:9100'], ['web-2']],
    ],
  );
});

test('a Service without ports gets one slice of all its pods and no ports', () => {
  const out = deriveEndpointSlices([service('headless', [], { app: 'db' })], [pod('db-0', '127.0.0.5', { app: 'db' })], []);
  assert.equal(out.length, 1);
  assert.deepEqual(out[0].ports, []);
  assert.equal(out[0].endpoints.length, 1);
});

test('IPv6 pods go in an IPv6 slice', () => {
  const out = deriveEndpointSlices(
    [service('web', [{ name: 'http', port: 80 }])],
    [pod('web-4', '127.0.0.5', { app: 'web' }), pod('web-6', '::1', { app: 'web' })],
    [],
  );
  assert.deepEqual(out.map((s) => [s.meta.name, s.addressType, s.endpoints[0].addresses[0]]), [
    ['web-derived', 'IPv4', '127.0.0.5'],
    ['web-derived-2', 'IPv6', '::1'],
  ]);
});

test('slices hold at most 100 endpoints', () => {
  const pods = Array.from({ length: 250 }, (_, i) => pod(`web-${i}`, `127.0.${Math.floor(i / 200)}.${(i % 200) + 1}`, { app: 'web' }));
  const out = deriveEndpointSlices([service('web', [{ name: 'http', port: 80 }])], pods, []);
  assert.deepEqual(out.map((s) => [s.meta.name, s.endpoints.length]), [
    ['web-derived', 100],
    ['web-derived-2', 100],
    ['web-derived-3', 50],
  ]);
  assert.equal(out[2].endpoints[49].targetRef?.name, 'web-249');
});

test('the inputs are not modified', () => {
  const services = [service('web', [{ name: 'http', port: 80 }])];
  const pods = [pod('web-1', '127.0.0.5', { app: 'web' })];
  const slices = [givenSlice('api')];
  const before = JSON.stringify([services, pods, slices]);
  deriveEndpointSlices(services, pods, slices);
  assert.equal(JSON.stringify([services, pods, slices]), before);
});
