import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { matchesSelector, parseDuration, parseKubeObject } from '../src/index';
import type { EndpointSlice, KubeObject, Pod, Service, TrafficPolicy } from '../src/kube-types';

/** Parses YAML text and expects a valid object. */
function valid<T extends KubeObject>(src: string): T {
  const out = parseKubeObject(parseYaml(src));
  assert.equal(out.kind, 'object', JSON.stringify(out));
  return (out as { value: KubeObject }).value as T;
}

function errorsOf(raw: unknown): string[] {
  const out = parseKubeObject(raw);
  assert.equal(out.kind, 'invalid', JSON.stringify(out));
  return (out as { errors: string[] }).errors;
}

const SPEC_POLICY = `
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: reviews, namespace: shop}
spec:
  targetRef: {kind: Service, name: reviews}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  routes:
  - name: canary-by-header
    match:
    - path: {prefix: /api}
      method: GET
      headers: [{name: X-Canary, exact: "true"}]
    backends: [{subset: v2, weight: 100}]
  - name: default
    backends:
    - {subset: v1, weight: 90}
    - {subset: v2, weight: 10}
    timeout: 3s
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: [5xx, gateway-error, reset, connect-failure, retriable-status-codes, unavailable]
      retriableStatusCodes: [503]
      backoff: {baseInterval: 25ms, maxInterval: 250ms}
    fault: {delay: {percent: 10, fixedDelay: 100ms}, abort: {percent: 1, httpStatus: 503}}
    mirror: {service: reviews-shadow, percent: 5}
  loadBalancer: {algorithm: EWMA}
  connectionPool: {maxConnections: 1024, maxPendingRequests: 1024, maxRequestsPerConnection: 0}
  outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  retryBudget: {percent: 20, minRetriesPerSecond: 10}
`;

/** A minimal valid policy with two subsets and two routes, changed by `edit` (on a fresh copy). */
function policy(edit: (p: any) => void): unknown {
  const p: any = {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'TrafficPolicy',
    metadata: { name: 'reviews' },
    spec: {
      targetRef: { kind: 'Service', name: 'reviews' },
      subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      routes: [
        { name: 'canary', match: [{ path: { prefix: '/api' } }], backends: [{ subset: 'v2' }] },
        { name: 'default', backends: [{ subset: 'v1', weight: 90 }, { subset: 'v2', weight: 10 }] },
      ],
    },
  };
  edit(p);
  return p;
}

function service(edit: (s: any) => void): unknown {
  const s: any = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web' }, spec: { selector: { app: 'web' }, ports: [{ port: 80 }] } };
  edit(s);
  return s;
}

test('a Service gets namespace "default", protocol TCP and targetPort = port when omitted', () => {
  const s = valid<Service>('apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}');
  assert.deepEqual(s, {
    kind: 'Service',
    meta: { name: 'web', namespace: 'default', labels: {}, annotations: {} },
    selector: { app: 'web' },
    ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }],
  });
});

test('a Service keeps named target ports, appProtocol and clusterIP; an empty selector means none', () => {
  const s = valid<Service>(`apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop, labels: {app: api}, creationTimestamp: "2024-01-02T03:04:05Z"}
spec:
  type: ClusterIP
  clusterIP: 10.0.0.7
  selector: {}
  ports:
  - {name: http, port: 80, targetPort: web, appProtocol: http}
  - {name: grpc, port: 9090, targetPort: 19090, protocol: TCP}`);
  assert.equal(s.selector, undefined);
  assert.equal(s.clusterIP, '10.0.0.7');
  assert.equal(s.meta.creationTimestamp, '2024-01-02T03:04:05Z');
  assert.deepEqual(s.ports, [
    { name: 'http', port: 80, targetPort: 'web', protocol: 'TCP', appProtocol: 'http' },
    { name: 'grpc', port: 9090, targetPort: 19090, protocol: 'TCP' },
  ]);
});

test('a Pod takes its service account, IP and container ports; readiness follows the Ready condition', () => {
  const p = valid<Pod>(`apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  serviceAccountName: web
  containers:
  - {name: app, image: app, ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]}
  initContainers:
  - {name: init, ports: [{containerPort: 1}]}
  - {name: side, restartPolicy: Always, ports: [{name: admin, containerPort: 9901}]}
status:
  podIP: 127.0.0.5
  conditions: [{type: Initialized, status: "True"}, {type: Ready, status: "False"}]`);
  assert.equal(p.serviceAccount, 'web');
  assert.equal(p.podIP, '127.0.0.5');
  assert.equal(p.ready, false);
  assert.deepEqual(p.containerPorts, [
    { name: 'http', containerPort: 8080, protocol: 'TCP' },
    { containerPort: 53, protocol: 'UDP' },
    { name: 'admin', containerPort: 9901, protocol: 'TCP' },
  ]);
});

test('a Pod without conditions is ready when it has a podIP, and its service account defaults to "default"', () => {
  const withIp = valid<Pod>('apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nstatus: {podIP: 127.0.0.9}');
  assert.equal(withIp.ready, true);
  assert.equal(withIp.serviceAccount, 'default');
  assert.deepEqual(withIp.containerPorts, []);
  const noIp = valid<Pod>('apiVersion: v1\nkind: Pod\nmetadata: {name: b}\nspec: {containers: [{name: app}]}');
  assert.equal(noIp.ready, false);
  assert.equal(noIp.podIP, undefined);
});

test('an EndpointSlice names its Service by label; unset ready counts as ready; targetRef namespace defaults', () => {
  const s = valid<EndpointSlice>(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, appProtocol: http}]
endpoints:
- addresses: [127.0.0.5]
  targetRef: {kind: Pod, name: web-1}
- addresses: [127.0.0.6]
  conditions: {ready: false}`);
  assert.equal(s.serviceName, 'web');
  assert.deepEqual(s.ports, [{ name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http' }]);
  assert.deepEqual(s.endpoints, [
    { addresses: ['127.0.0.5'], ready: true, targetRef: { kind: 'Pod', name: 'web-1', namespace: 'shop' } },
    { addresses: ['127.0.0.6'], ready: false },
  ]);
});

test('the TrafficPolicy of SPEC.md parses, with durations in ms and lowercase header names', () => {
  const p = valid<TrafficPolicy>(SPEC_POLICY);
  assert.deepEqual(p.targetRef, { kind: 'Service', name: 'reviews' });
  assert.deepEqual(p.subsets, [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }]);
  assert.deepEqual(p.routes[0].match, [
    { path: { kind: 'prefix', value: '/api' }, method: 'GET', headers: [{ name: 'x-canary', kind: 'exact', value: 'true' }] },
  ]);
  assert.deepEqual(p.routes[0].backends, [{ kind: 'subset', subset: 'v2', weight: 100 }]);
  assert.equal(p.routes[1].timeoutMs, 3000);
  assert.deepEqual(p.routes[1].retries, {
    attempts: 3,
    perTryTimeoutMs: 1000,
    retryOn: ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'unavailable'],
    retriableStatusCodes: [503],
    backoff: { baseIntervalMs: 25, maxIntervalMs: 250 },
  });
  assert.deepEqual(p.loadBalancer, { algorithm: 'EWMA' });
  assert.deepEqual(p.retryBudget, { percent: 20, minRetriesPerSecond: 10 });
  assert.deepEqual(p.connectionPool, { maxConnections: 1024, maxPendingRequests: 1024, maxRequestsPerConnection: 0 });
  assert.deepEqual(p.outlierDetection, { consecutive5xxErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 });
  assert.deepEqual(p.extra, {});
});

test('every field is enforced: notYetSupported stays empty, fault and mirror become typed values', () => {
  const p = valid<TrafficPolicy>(SPEC_POLICY);
  assert.deepEqual(p.notYetSupported, []);
  assert.deepEqual(p.routes[1]!.fault, { delay: { percent: 10, fixedDelayMs: 100 }, abort: { percent: 1, httpStatus: 503 } });
  assert.deepEqual(p.routes[1]!.mirror, { service: 'reviews-shadow', percent: 5 });
  const out = parseKubeObject(policy((x) => (x.spec.routes[0].mirror = { service: 'shadow', port: 8080 })));
  assert.equal(out.kind, 'object', JSON.stringify(out));
  const noPercent = (out as { value: TrafficPolicy }).value;
  assert.deepEqual(noPercent.routes[0]!.mirror, { service: 'shadow', port: 8080, percent: 100 }, 'percent defaults to 100, as Istio');
  const plain = parseKubeObject(policy(() => undefined));
  assert.equal(plain.kind, 'object');
  assert.deepEqual((plain as { value: TrafficPolicy }).value.notYetSupported, []);
  assert.deepEqual((plain as { value: TrafficPolicy }).value.extra, {});
});

test('policy defaults: a lone backend weighs 100, retryOn follows Istio, maxInterval is ten times baseInterval', () => {
  const out = parseKubeObject(policy((p) => {
    p.spec.routes[1].retries = { attempts: 2, backoff: { baseInterval: '10ms' } };
  }));
  assert.equal(out.kind, 'object', JSON.stringify(out));
  const p = (out as { value: TrafficPolicy }).value;
  assert.equal(p.meta.namespace, 'default');
  assert.deepEqual(p.routes[0].backends, [{ kind: 'subset', subset: 'v2', weight: 100 }]);
  assert.deepEqual(p.routes[1].retries, {
    attempts: 2,
    retryOn: ['connect-failure', 'reset', 'unavailable', 'retriable-status-codes'],
    retriableStatusCodes: [],
    backoff: { baseIntervalMs: 10, maxIntervalMs: 100 },
  });
});

test('retries: the non-idempotent opt-in, the replay buffer and gRPC conditions; retryBudget fields default to 20% + 10/s', () => {
  const out = parseKubeObject(policy((p) => {
    p.spec.routes[1].retries = { attempts: 1, retryOn: ['resource-exhausted', 'cancelled'], retryNonIdempotent: true, bufferLimitBytes: 1024 };
    p.spec.retryBudget = { percent: 50 };
  }));
  assert.equal(out.kind, 'object', JSON.stringify(out));
  const p = (out as { value: TrafficPolicy }).value;
  assert.deepEqual(p.routes[1].retries, { attempts: 1, retryOn: ['resource-exhausted', 'cancelled'], retriableStatusCodes: [], retryNonIdempotent: true, bufferLimitBytes: 1024 });
  assert.deepEqual(p.retryBudget, { percent: 50, minRetriesPerSecond: 10 });
  const bad = parseKubeObject(policy((p) => (p.spec.routes[1].retries = { attempts: 1, retryNonIdempotent: 'yes' })));
  assert.match(JSON.stringify(bad), /spec.routes\[1\].retries.retryNonIdempotent: must be a boolean/);
});

test('kinds Weft does not use in local mode are ignored with a reason', () => {
  for (const [apiVersion, kind] of [
    ['v1', 'Namespace'], ['v1', 'ConfigMap'], ['v1', 'ServiceAccount'], ['apps/v1', 'Deployment'],
  ]) {
    const out = parseKubeObject({ apiVersion, kind, metadata: { name: 'x' } });
    assert.equal(out.kind, 'ignored', `${apiVersion} ${kind}`);
    assert.match((out as { reason: string }).reason, new RegExp(kind));
  }
});

test('unknown kinds, wrong versions, a missing kind and non-objects are invalid', () => {
  const cases: [unknown, string][] = [
    [{ apiVersion: 'x/v1', kind: 'Foo', metadata: { name: 'a' } }, 'unknown kind "Foo" (apiVersion "x/v1")'],
    [{ apiVersion: 'discovery.k8s.io/v1beta1', kind: 'EndpointSlice' },
      'unknown kind "EndpointSlice" (apiVersion "discovery.k8s.io/v1beta1"); Weft reads discovery.k8s.io/v1 EndpointSlice'],
    [{ apiVersion: 'v1', metadata: { name: 'a' } }, 'kind: required (a string)'],
    [{ kind: 'Service' }, 'apiVersion: required (a string)'],
    [['a list'], 'a Kubernetes object must be a mapping'],
    ['text', 'a Kubernetes object must be a mapping'],
  ];
  for (const [raw, error] of cases) assert.deepEqual(errorsOf(raw), [error]);
});

test('schema violations are reported with the path of the field', () => {
  const cases: [string, unknown, string][] = [
    ['missing name', service((s) => delete s.metadata.name), 'metadata.name: required'],
    ['bad namespace', service((s) => (s.metadata.namespace = 'Shop')), 'metadata.namespace: must be a DNS label (lowercase letters, digits, "-"; at most 63)'],
    ['numeric label', service((s) => (s.metadata.labels = { version: 2 })), 'metadata.labels.version: must be a string (quote numbers and booleans)'],
    ['port 0', service((s) => (s.spec.ports[0].port = 0)), 'spec.ports[0].port: must be an integer between 1 and 65535'],
    ['port 65536', service((s) => (s.spec.ports[0].port = 65536)), 'spec.ports[0].port: must be an integer between 1 and 65535'],
    ['missing port', service((s) => (s.spec.ports = [{ name: 'x' }])), 'spec.ports[0].port: required'],
    ['bad protocol', service((s) => (s.spec.ports[0].protocol = 'HTTP')), 'spec.ports[0].protocol: must be one of TCP, UDP, SCTP'],
    ['bad targetPort name', service((s) => (s.spec.ports[0].targetPort = 'Web_Port')),
      'spec.ports[0].targetPort: must be a port name (lowercase letters, digits, "-"; at most 15; at least one letter)'],
    ['unnamed ports', service((s) => s.spec.ports.push({ port: 81 })), 'spec.ports[0].name: required'],
    ['pod IP', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, status: { podIP: 'nope' } }, 'status.podIP: must be an IP address'],
    ['container port', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ ports: [{ containerPort: 0 }] }] } },
      'spec.containers[0].ports[0].containerPort: must be an integer between 1 and 65535'],
    ['slice without service', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's' }, addressType: 'IPv4' },
      'metadata.labels["kubernetes.io/service-name"]: required (the Service this slice belongs to)'],
    ['slice address', { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 's', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4', endpoints: [{ addresses: ['::1'] }] }, 'endpoints[0].addresses[0]: must be an IPv4 address'],

    ['no targetRef', policy((p) => delete p.spec.targetRef), 'spec.targetRef: required'],
    ['targetRef kind', policy((p) => (p.spec.targetRef.kind = 'Deployment')), 'spec.targetRef.kind: must be one of Service'],
    ['duplicate subset', policy((p) => (p.spec.subsets[1].name = 'v1')), 'spec.subsets[1].name: duplicate subset name "v1" (also spec.subsets[0])'],
    ['subset without labels', policy((p) => delete p.spec.subsets[0].labels), 'spec.subsets[0].labels: required'],
    ['subset with empty labels', policy((p) => (p.spec.subsets[0].labels = {})), 'spec.subsets[0].labels: must select at least one label'],
    ['duplicate route', policy((p) => (p.spec.routes[1].name = 'canary')), 'spec.routes[1].name: duplicate route name "canary" (also spec.routes[0])'],
    ['route without name', policy((p) => delete p.spec.routes[0].name), 'spec.routes[0].name: required'],
    ['no backends', policy((p) => delete p.spec.routes[0].backends), 'spec.routes[0].backends: required'],
    ['empty backends', policy((p) => (p.spec.routes[0].backends = [])), 'spec.routes[0].backends: must list at least one backend'],
    ['weight 101', policy((p) => (p.spec.routes[1].backends[0].weight = 101)), 'spec.routes[1].backends[0].weight: must be an integer between 0 and 100'],
    ['weight 1.5', policy((p) => (p.spec.routes[1].backends[0].weight = 1.5)), 'spec.routes[1].backends[0].weight: must be an integer between 0 and 100'],
    ['weight missing among several', policy((p) => delete p.spec.routes[1].backends[1].weight),
      'spec.routes[1].backends[1].weight: required when a route has more than one backend'],
    ['weights sum 0', policy((p) => p.spec.routes[1].backends.forEach((b: any) => (b.weight = 0))),
      'spec.routes[1].backends: backend weights must add up to more than 0'],
    ['subset and service', policy((p) => (p.spec.routes[0].backends[0].service = 'other')),
      'spec.routes[0].backends[0]: must set exactly one of subset, service'],
    ['undeclared subset', policy((p) => (p.spec.routes[0].backends[0].subset = 'v3')),
      'spec.routes[0].backends[0].subset: names no subset declared in spec.subsets: "v3"'],
    ['service backend port', policy((p) => (p.spec.routes[0].backends = [{ service: 'other', port: 0 }])),
      'spec.routes[0].backends[0].port: must be an integer between 1 and 65535'],
    ['two path kinds', policy((p) => (p.spec.routes[0].match[0].path = { prefix: '/a', exact: '/a' })),
      'spec.routes[0].match[0].path: must set exactly one of exact, prefix, regex'],
    ['no path kind', policy((p) => (p.spec.routes[0].match[0].path = {})), 'spec.routes[0].match[0].path: must set exactly one of exact, prefix, regex'],
    ['relative path', policy((p) => (p.spec.routes[0].match[0].path = { exact: 'api' })), 'spec.routes[0].match[0].path.exact: must start with "/"'],
    ['non-RE2 path regex', policy((p) => (p.spec.routes[0].match[0].path = { regex: '/(?=api)' })),
      'spec.routes[0].match[0].path.regex: invalid RE2 regular expression: invalid perl operator: (?='],
    ['lowercase method', policy((p) => (p.spec.routes[0].match[0].method = 'get')),
      'spec.routes[0].match[0].method: must be an uppercase HTTP method token such as GET'],
    ['header without name', policy((p) => (p.spec.routes[0].match[0].headers = [{ exact: 'x' }])), 'spec.routes[0].match[0].headers[0].name: required'],
    ['header with two kinds', policy((p) => (p.spec.routes[0].match[0].headers = [{ name: 'x', exact: 'a', prefix: 'a' }])),
      'spec.routes[0].match[0].headers[0]: must set exactly one of exact, prefix, regex, present'],
    ['header regex', policy((p) => (p.spec.routes[0].match[0].headers = [{ name: 'x', regex: 'a(' }])),
      'spec.routes[0].match[0].headers[0].regex: invalid RE2 regular expression: missing ): a('],
    ['header present false', policy((p) => (p.spec.routes[0].match[0].headers = [{ name: 'x', present: false }])),
      'spec.routes[0].match[0].headers[0].present: must be true (omit the match to accept requests without the header)'],
    ['timeout without unit', policy((p) => (p.spec.routes[1].timeout = '3')), 'spec.routes[1].timeout: must be a duration such as "250ms", "1.5s" or "1m"'],
    ['zero timeout', policy((p) => (p.spec.routes[1].timeout = '0s')), 'spec.routes[1].timeout: must be a positive duration'],
    ['negative attempts', policy((p) => (p.spec.routes[1].retries = { attempts: -1 })), 'spec.routes[1].retries.attempts: must be an integer >= 0'],
    ['retryOn', policy((p) => (p.spec.routes[1].retries = { attempts: 1, retryOn: ['bogus'] })),
      'spec.routes[1].retries.retryOn[0]: must be one of 5xx, gateway-error, reset, connect-failure, retriable-status-codes, unavailable, cancelled, deadline-exceeded, internal, resource-exhausted'],
    ['status code', policy((p) => (p.spec.routes[1].retries = { attempts: 1, retriableStatusCodes: [600] })),
      'spec.routes[1].retries.retriableStatusCodes[0]: must be an integer between 100 and 599'],
    ['perTryTimeout', policy((p) => (p.spec.routes[1].retries = { attempts: 1, perTryTimeout: 'soon' })),
      'spec.routes[1].retries.perTryTimeout: must be a duration such as "250ms", "1.5s" or "1m"'],
    ['backoff order', policy((p) => (p.spec.routes[1].retries = { attempts: 1, backoff: { baseInterval: '1s', maxInterval: '10ms' } })),
      'spec.routes[1].retries.backoff.maxInterval: must not be less than baseInterval'],
    ['algorithm', policy((p) => (p.spec.loadBalancer = { algorithm: 'Fastest' })),
      'spec.loadBalancer.algorithm: must be one of EWMA, RoundRobin, LeastRequest, Random'],
    ['unknown spec field', policy((p) => (p.spec.hosts = ['a'])), 'spec.hosts: unknown field'],
    ['unknown route field', policy((p) => (p.spec.routes[0].weight = 5)), 'spec.routes[0].weight: unknown field'],
    ['unknown top-level field', policy((p) => (p.data = {})), 'data: unknown field'],
    ['fault percent', policy((p) => (p.spec.routes[0].fault = { delay: { percent: 150, fixedDelay: '1s' } })),
      'spec.routes[0].fault.delay.percent: must be a number between 0 and 100'],
    ['empty fault', policy((p) => (p.spec.routes[0].fault = {})), 'spec.routes[0].fault: must set delay, abort or both'],
    ['mirror without service', policy((p) => (p.spec.routes[0].mirror = { percent: 5 })), 'spec.routes[0].mirror.service: required'],
    ['connectionPool', policy((p) => (p.spec.connectionPool = { maxConnections: -1 })), 'spec.connectionPool.maxConnections: must be an integer >= 0'],
    ['outlierDetection', policy((p) => (p.spec.outlierDetection = { interval: '10' })),
      'spec.outlierDetection.interval: must be a duration such as "250ms", "1.5s" or "1m"'],
    ['retryBudget', policy((p) => (p.spec.retryBudget = { percent: 200 })), 'spec.retryBudget.percent: must be a number between 0 and 100'],
  ];
  for (const [name, raw, error] of cases) {
    const errors = errorsOf(raw);
    assert.ok(errors.includes(error), `${name}: want ${JSON.stringify(error)}, got ${JSON.stringify(errors)}`);
  }
});

test('every error of a document is reported at once', () => {
  const errors = errorsOf(policy((p) => {
    p.spec.routes[0].backends[0].subset = 'v9';
    p.spec.routes[1].backends[1].weight = -1;
    p.spec.loadBalancer = { algorithm: 'x' };
  }));
  assert.equal(errors.length, 3, JSON.stringify(errors));
});

test('durations parse to milliseconds; anything without a unit or negative is rejected', () => {
  const cases: [string, number | undefined][] = [
    ['3s', 3000], ['250ms', 250], ['1m', 60_000], ['1.5s', 1500], ['1h', 3_600_000], ['1m30s', 90_000], ['0.1s', 100], ['1.1s', 1100], ['.5s', 500], ['0', 0], ['0s', 0],
    ['3', undefined], ['-1s', undefined], ['1 s', undefined], ['s', undefined], ['', undefined], ['1d', undefined], ['1sm', undefined],
  ];
  for (const [s, ms] of cases) assert.equal(parseDuration(s), ms, s);
});

test('a selector matches labels that contain all its pairs; an empty one matches everything', () => {
  assert.equal(matchesSelector({ app: 'web', version: 'v1' }, { app: 'web' }), true);
  assert.equal(matchesSelector({ app: 'web' }, { app: 'web', version: 'v1' }), false);
  assert.equal(matchesSelector({ app: 'api' }, { app: 'web' }), false);
  assert.equal(matchesSelector({}, {}), true);
  assert.equal(matchesSelector({}, { toString: 'x' }), false);
});
