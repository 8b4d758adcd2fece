/**
 * The sidecar decodes xDS with its own subset of the Envoy protos (`sidecarXdsRoot()`,
 * api/src/xds-protos-subset.ts), loaded from a descriptor `npm run build` derives from
 * `@grpc/grpc-js-xds`. What the control plane really translates (policies with every feature,
 * each load-balancing algorithm, inbound and outbound listeners, TCP proxies and listener filters) must decode through that subset
 * exactly as through the full protos the control plane encodes with.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  adsClientCodec, packAny, parseKubeObject, parseNodeId, readSidecarDescriptor, SIDECAR_DESCRIPTOR_PATH, sidecarNodeId, sidecarXdsRoot,
  sidecarXdsRootOrigin, TypeUrl, unpackAny, xdsRoot, type KubeObject,
} from '@weft/api';
import { buildWorld, encodeSnapshot, translate } from '@weft/control-plane';

const WORLD = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80, targetPort: 9080}, {name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: shadow, namespace: shop}
spec: {selector: {app: shadow}, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec: {selector: {app: shadow}, ports: [{name: tcp-mysql, port: 3306, targetPort: 3306}]}
---
${['frontend', 'reviews', 'shadow']
  .map(
    (app, i) => `apiVersion: v1
kind: Pod
metadata: {name: ${app}-1, namespace: shop, labels: {app: ${app}, version: v${(i % 2) + 1}}}
spec: {serviceAccountName: ${app}, containers: [{name: app, image: x, ports: [{containerPort: 9080}, {containerPort: 9090}]}]}
status: {podIP: 127.0.0.${11 + i}}
`,
  )
  .join('---\n')}---
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  targetRef: {kind: Service, name: reviews}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  routes:
  - name: canary
    match: [{path: {prefix: /api}, method: GET, headers: [{name: x-canary, exact: "true"}]}, {path: {regex: "^/v[0-9]+/"}}]
    backends: [{subset: v2, weight: 100}]
    fault: {delay: {percent: 10, fixedDelay: 100ms}, abort: {percent: 1, httpStatus: 503}}
  - name: default
    backends: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
    timeout: 3s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: [5xx, reset, retriable-status-codes, unavailable], retriableStatusCodes: [503], backoff: {baseInterval: 25ms, maxInterval: 250ms}}
    mirror: {service: shadow, percent: 5}
  loadBalancer: {algorithm: LeastRequest}
  connectionPool: {maxConnections: 100, maxPendingRequests: 50, maxRequestsPerConnection: 10}
  outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  retryBudget: {percent: 20, minRetriesPerSecond: 10}
`;

function objects(yamlText: string): KubeObject[] {
  return parseAllDocuments(yamlText).map((d) => {
    const r = parseKubeObject(d.toJS());
    assert.equal(r.kind, 'object', JSON.stringify(r));
    return (r as { value: KubeObject }).value;
  });
}

/** Every resource the control plane sends these sidecars, encoded as it sends them. */
function encodedResources(): { type: string; name: string; any: { type_url: string; value: Buffer } }[] {
  const out = [];
  for (const algorithm of ['LeastRequest', 'RoundRobin', 'Random', 'EWMA']) {
    const world = buildWorld(objects(WORLD.replace('algorithm: LeastRequest', `algorithm: ${algorithm}`)), new Set(['shop/reviews-1', 'shop/frontend-1']), 1);
    for (const [pod, ip] of [['frontend-1', '127.0.0.11'], ['reviews-1', '127.0.0.12']] as const) {
      const snap = encodeSnapshot(translate(world, parseNodeId(sidecarNodeId(ip, pod, 'shop'))), 1);
      for (const [type, t] of snap.types) for (const [name, r] of t.resources) out.push({ type, name: `${algorithm} ${pod} ${name}`, any: r.any });
    }
  }
  return out;
}

test('every resource the control plane translates decodes through the sidecar subset exactly as through the full protos', () => {
  const resources = encodedResources();
  const types = new Set(resources.map((r) => r.type));
  for (const t of [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]) assert.ok(types.has(t), `the world yields ${t}`);
  const text = JSON.stringify(resources.map((r) => unpackAny(r.any, sidecarXdsRoot())));
  for (const needle of ['HttpConnectionManager', 'HTTPFault', 'Router', 'LeastRequest', 'TypedStruct', 'ROUND_ROBIN', 'RANDOM', 'request_mirror_policies', 'retry_policy', 'outlier_detection']) {
    assert.ok(text.includes(needle), `the resources exercise ${needle}`);
  }
  for (const r of resources) assert.deepEqual(unpackAny(r.any, sidecarXdsRoot()), unpackAny(r.any), r.name);
});

test('the ADS messages encode to the same bytes with the subset as with the full protos, and decode alike', () => {
  const request = {
    node: { id: 'sidecar~127.0.0.11~frontend-1.shop~shop.svc.cluster.local', user_agent_name: 'weft-sidecar', metadata: { fields: { INTERCEPTION_MODE: { stringValue: 'NONE' } } } },
    type_url: TypeUrl.Cluster,
    resource_names_subscribe: ['*'],
    initial_resource_versions: { a: '1', b: '2' },
    response_nonce: 'n1',
    error_detail: { code: 3, message: 'bad route' },
  };
  const full = adsClientCodec('DeltaAggregatedResources');
  const subset = adsClientCodec('DeltaAggregatedResources', sidecarXdsRoot());
  assert.deepEqual(subset.serialize(request), full.serialize(request));
  const response = xdsRoot().lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
  const bytes = Buffer.from(
    response.encode(response.fromObject({ system_version_info: 'v7', nonce: 'n2', type_url: TypeUrl.Cluster, removed_resources: ['gone'], resources: [{ name: 'c', version: 'h1', resource: packAny(TypeUrl.Cluster, { name: 'c' }) }] })).finish(),
  );
  assert.deepEqual(subset.deserialize(bytes), full.deserialize(bytes));
});

test('an Any of a type outside the subset is not decoded but still names its type, so the sidecar can say what it rejects', () => {
  // A type the sidecar will never decode (Secret, the former example, is in the subset since SDS).
  const OUTSIDE = 'type.googleapis.com/google.protobuf.FileDescriptorProto';
  const outside = packAny(OUTSIDE, { name: 's' });
  const listener = packAny(TypeUrl.Listener, { name: 'l', filter_chains: [{ filters: [{ name: 'tls', typed_config: { '@type': OUTSIDE, name: 's' } }] }] });
  const viaSubset = unpackAny(listener, sidecarXdsRoot()) as any;
  const typed = viaSubset.filter_chains[0].filters[0].typed_config;
  assert.equal(typed['@type'], OUTSIDE);
  assert.equal(typed.type_url, OUTSIDE);
  assert.equal(Buffer.from(typed.value, 'base64').equals(outside.value), true);
  assert.equal((unpackAny(listener) as any).filter_chains[0].filters[0].typed_config.name, 's', 'the full protos decode it');
});

test('the sidecar loads the descriptor the build wrote, not the .proto files; a stale or broken one is refused', () => {
  sidecarXdsRoot();
  assert.equal(sidecarXdsRootOrigin(), 'descriptor', `${SIDECAR_DESCRIPTOR_PATH} is written by npm run build (node api/dist/src/xds-protos-subset.js)`);
  const dir = mkdtempSync(join(tmpdir(), 'weft-descriptor-'));
  try {
    const d = JSON.parse(readFileSync(SIDECAR_DESCRIPTOR_PATH, 'utf8'));
    assert.ok(readSidecarDescriptor(SIDECAR_DESCRIPTOR_PATH));
    writeFileSync(join(dir, 'old.json'), JSON.stringify({ ...d, source: { ...d.source, '@grpc/grpc-js-xds': '0.0.1' } }));
    assert.equal(readSidecarDescriptor(join(dir, 'old.json')), undefined);
    writeFileSync(join(dir, 'fewer.json'), JSON.stringify({ ...d, types: d.types.slice(1) }));
    assert.equal(readSidecarDescriptor(join(dir, 'fewer.json')), undefined);
    writeFileSync(join(dir, 'broken.json'), '{"source":');
    assert.equal(readSidecarDescriptor(join(dir, 'broken.json')), undefined);
    assert.equal(readSidecarDescriptor(join(dir, 'missing.json')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
