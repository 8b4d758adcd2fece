/**
 * Golden tests of the admission webhooks on recorded-shape AdmissionReview v1 requests
 * (fixtures/admission/*.request.json, in the shape kube-apiserver sends: k8s.io/api
 * admission/v1 AdmissionReview with defaults and the ServiceAccount admission's volume applied).
 * Each case checks the whole response byte for byte, decodes its patch, applies it with an
 * independent applier and checks the result against the injected pod's golden YAML (the decoded
 * patch has a golden file of its own, for reading).
 * `UPDATE_GOLDEN=1` rewrites the expected files (then review the diff).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { DEFAULT_INJECTION_CONFIG, parseInjectionConfig, type InjectionConfig } from '../src/inject-config';
import { injectPod } from '../src/inject-pod';
import { parseAdmissionReview, reviewInject, reviewValidate } from '../src/webhook-admission';
import { applyPatch, golden, readFixture } from './inject-fixtures';

const regular = parseInjectionConfig({ nativeSidecar: false });
assert.ok(regular.ok);

interface Case {
  readonly name: string;
  readonly request: string;
  readonly config?: InjectionConfig;
  /** What the response must say, beyond the golden comparison (so a wrong golden cannot pass). */
  readonly expect: 'patched' | 'allowed' | 'denied';
}

const INJECT: readonly Case[] = [
  { name: 'pod-deployment', request: 'pod-deployment', expect: 'patched' },
  { name: 'pod-deployment-regular-sidecar', request: 'pod-deployment', config: regular.value, expect: 'patched' },
  { name: 'pod-probes', request: 'pod-probes', expect: 'patched' },
  { name: 'pod-annotations', request: 'pod-annotations', expect: 'patched' },
  { name: 'pod-job', request: 'pod-job', expect: 'patched' },
  { name: 'pod-opt-out', request: 'pod-opt-out', expect: 'allowed' },
  { name: 'pod-already-injected', request: 'pod-already-injected', expect: 'allowed' },
  { name: 'pod-host-network', request: 'pod-host-network', expect: 'allowed' },
  { name: 'pod-not-a-create', request: 'pod-not-a-create', expect: 'allowed' },
  { name: 'pod-bad-annotation', request: 'pod-bad-annotation', expect: 'denied' },
];

const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

/** The injected pod: the request's object with the response's patch applied. */
function patchedPod(request: any, response: any): any {
  const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'));
  return applyPatch(request.request.object, ops);
}

describe('POST /inject on AdmissionReview v1 requests (golden)', () => {
  for (const c of INJECT) {
    it(`${c.name}: ${c.expect}`, () => {
      const request = readFixture(`${c.request}.request.json`);
      const decision = reviewInject(parseAdmissionReview(JSON.stringify(request)), c.config ?? DEFAULT_INJECTION_CONFIG);
      const response = decision.review.response;
      assert.equal(decision.review.apiVersion, 'admission.k8s.io/v1');
      assert.equal(decision.review.kind, 'AdmissionReview');
      assert.equal(response.uid, request.request.uid, 'the uid is echoed');
      golden(`${c.name}.response.json`, json(decision.review));
      if (c.expect === 'denied') {
        assert.equal(response.allowed, false);
        assert.equal(response.patch, undefined);
        return;
      }
      assert.equal(response.allowed, true);
      if (c.expect === 'allowed') {
        assert.equal(response.patch, undefined, 'no patch');
        assert.equal(response.patchType, undefined);
        return;
      }
      assert.equal(response.patchType, 'JSONPatch');
      // The decoded patch too, so a reviewer reads what the API server is told to do.
      golden(`${c.name}.patch.json`, json(JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8'))));
      const pod = patchedPod(request, response);
      const direct = injectPod(request.request.object, request.request.namespace, c.config ?? DEFAULT_INJECTION_CONFIG);
      assert.equal(direct.kind, 'injected');
      assert.deepEqual(pod, JSON.parse(JSON.stringify((direct as { pod: unknown }).pod)), 'the patch applied to the request object gives the injected pod');
      golden(`${c.name}.pod.yaml`, stringify(pod, { lineWidth: 0, aliasDuplicateObjects: false }));
    });
  }

  it('the injected pods have what the contract says, wherever the sidecar goes', () => {
    const job = patchedPod(readFixture('pod-job.request.json'), reviewInject(parseAdmissionReview(JSON.stringify(readFixture('pod-job.request.json'))), DEFAULT_INJECTION_CONFIG).review.response);
    // Native: weft-init, then the proxy (restartPolicy Always, startup probe on 15021), then the Job's own init container.
    assert.deepEqual(job.spec.initContainers.map((x: any) => x.name), ['weft-init', 'weft-proxy', 'wait-db']);
    const proxy = job.spec.initContainers[1];
    assert.equal(proxy.restartPolicy, 'Always');
    assert.deepEqual(proxy.startupProbe.httpGet, { path: '/healthz/ready', port: 15021, scheme: 'HTTP' });
    assert.deepEqual(job.spec.containers.map((x: any) => x.name), ['migrate'], 'the app containers are untouched, so the Job completes when migrate exits');
    assert.equal(job.spec.restartPolicy, 'Never');
    assert.deepEqual(proxy.command, ['node', '--max-semi-space-size=2', '--v8-pool-size=1', '--single-threaded-gc', '--no-expose-wasm', '/opt/weft/cli/dist/src/main.js', 'sidecar']);
    const env = Object.fromEntries(proxy.env.map((e: any) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
    assert.deepEqual(env, {
      WEFT_XDS_ADDRESS: 'weft-control-plane.weft-system.svc:15012', WEFT_TRUST_DOMAIN: 'cluster.local', POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace', POD_IP: 'status.podIP', SERVICE_ACCOUNT: 'spec.serviceAccountName',
      WEFT_TOKEN_PATH: '/var/run/secrets/tokens/weft-token', WEFT_CA_ROOT_CERT: '/var/run/weft/ca/root-cert.pem', WEFT_CAPTURE: 'true', WEFT_LOG_LEVEL: 'info',
    });
    assert.deepEqual(proxy.securityContext, { runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, privileged: false, capabilities: { drop: ['ALL'] } });
    const init = job.spec.initContainers[0];
    assert.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
    assert.equal(init.securityContext.runAsUser, 0);
    assert.equal(init.securityContext.runAsNonRoot, false);
    const token = job.spec.volumes.find((v: any) => v.name === 'weft-token');
    assert.deepEqual(token.projected.sources[0].serviceAccountToken, { audience: 'weft', expirationSeconds: 3600, path: 'weft-token' });
    assert.deepEqual(job.spec.volumes.find((v: any) => v.name === 'weft-root-ca').configMap, { name: 'weft-root-ca' });
    assert.deepEqual(JSON.parse(job.metadata.annotations['weft.dev/status']), { initContainers: ['weft-init', 'weft-proxy'], containers: [], volumes: ['weft-token', 'weft-root-ca', 'weft-tmp'] });
    assert.equal(job.metadata.annotations['batch.kubernetes.io/job-tracking'], '', 'existing annotations are kept');

    const reg = patchedPod(readFixture('pod-deployment.request.json'), reviewInject(parseAdmissionReview(JSON.stringify(readFixture('pod-deployment.request.json'))), regular.value).review.response);
    assert.deepEqual(reg.spec.containers.map((x: any) => x.name), ['weft-proxy', 'web'], 'nativeSidecar: false puts the proxy first among the containers');
    assert.deepEqual(reg.spec.initContainers.map((x: any) => x.name), ['weft-init']);
    assert.equal(reg.spec.containers[0].restartPolicy, undefined);
  });

  it('annotations override capture and resources; probes are rewritten to the sidecar', () => {
    const run = (name: string): any => {
      const r = readFixture(`${name}.request.json`);
      return patchedPod(r, reviewInject(parseAdmissionReview(JSON.stringify(r)), DEFAULT_INJECTION_CONFIG).review.response);
    };
    const a = run('pod-annotations');
    assert.deepEqual(a.spec.initContainers[0].args, ['--proxy-uid', '1337', '--inbound-ports=8080,9090', '--outbound-cidrs=*', '--exclude-outbound-cidrs=169.254.169.254/32,10.96.0.1', '--exclude-outbound-ports=5432']);
    assert.deepEqual(a.spec.initContainers[1].resources, { limits: { cpu: '1', memory: '512Mi' }, requests: { cpu: '200m', memory: '64Mi' } });
    const p = run('pod-probes');
    const web = p.spec.containers[0];
    assert.deepEqual(web.livenessProbe, { initialDelaySeconds: 5, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3, httpGet: { path: '/app-health/web/livez', port: 15021, scheme: 'HTTP' } });
    assert.equal(web.readinessProbe.httpGet.path, '/app-health/web/readyz');
    assert.equal(web.startupProbe.httpGet.path, '/app-health/web/startupz');
    assert.deepEqual(p.spec.containers[1].livenessProbe.exec, { command: ['cat', '/tmp/alive'] }, 'exec probes stay');
    const probes = JSON.parse(p.spec.initContainers[1].env.find((e: any) => e.name === 'WEFT_APP_PROBES').value);
    assert.deepEqual(probes['/app-health/web/livez'], { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: 'kubelet' }] }, timeoutSeconds: 1 });
    assert.deepEqual(probes['/app-health/web/startupz'], { grpc: { port: 9090, service: '' }, timeoutSeconds: 1 });
  });

  it('a probe that cannot be rewritten is left as it is, with a warning kubectl shows', () => {
    const r = readFixture('pod-deployment.request.json');
    r.request.object.spec.containers[0].livenessProbe = { httpGet: { path: '/live', port: 'admin', scheme: 'HTTP' }, timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 };
    const res = reviewInject(parseAdmissionReview(JSON.stringify(r)), DEFAULT_INJECTION_CONFIG).review.response;
    assert.equal(res.allowed, true);
    assert.deepEqual(res.warnings, ['weft injection: container web livenessProbe: port "admin" is not a port of the container; probe left unchanged']);
    const pod = patchedPod(r, res);
    assert.deepEqual(pod.spec.containers[0].livenessProbe.httpGet, { path: '/live', port: 'admin', scheme: 'HTTP' });
  });

  it('a malformed pod is refused with the field, never a crash', () => {
    const cases: [unknown, RegExp][] = [
      [{ metadata: { name: 'p' } }, /the pod has no spec/],
      [{ metadata: 'x', spec: { containers: [] } }, /metadata must be an object/],
      [{ metadata: { annotations: ['a'] }, spec: { containers: [] } }, /metadata\.annotations must be an object/],
      [{ spec: { containers: { name: 'a' } } }, /spec\.containers must be a list/],
      [{ spec: { containers: [{ name: 'a' }], initContainers: [null] } }, /spec\.initContainers\[0\] must be an object/],
      [{ spec: { containers: [{ name: 'a' }], volumes: 'v' } }, /spec\.volumes must be a list/],
    ];
    for (const [pod, reason] of cases) {
      const out = injectPod(pod as Record<string, unknown>, 'shop', DEFAULT_INJECTION_CONFIG);
      assert.equal(out.kind, 'refused', JSON.stringify(pod));
      assert.match((out as { reason: string }).reason, reason);
      const review = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'shop', object: pod } };
      const res = reviewInject(parseAdmissionReview(JSON.stringify(review)), DEFAULT_INJECTION_CONFIG).review.response;
      assert.equal(res.allowed, false);
      assert.match(res.status.message, reason);
    }
  });

  it('a bad injector annotation refuses the pod, naming each annotation', () => {
    const r = readFixture('pod-bad-annotation.request.json');
    const res = reviewInject(parseAdmissionReview(JSON.stringify(r)), DEFAULT_INJECTION_CONFIG).review.response;
    assert.equal(res.status.code, 400);
    assert.match(res.status.message, /traffic\.weft\.dev\/excludeInboundPorts: "70000" is not a port/);
    assert.match(res.status.message, /sidecar\.weft\.dev\/proxyMemory: "lots" is not a Kubernetes quantity/);
  });

  it('injecting an injected pod changes nothing, for every injected case', () => {
    for (const c of INJECT.filter((x) => x.expect === 'patched')) {
      const r = readFixture(`${c.request}.request.json`);
      const config = c.config ?? DEFAULT_INJECTION_CONFIG;
      const once = patchedPod(r, reviewInject(parseAdmissionReview(JSON.stringify(r)), config).review.response);
      const again = reviewInject(parseAdmissionReview(JSON.stringify({ ...r, request: { ...r.request, object: once } })), config);
      assert.equal(again.result, 'skipped', c.name);
      assert.equal(again.review.response.patch, undefined, c.name);
      // And even with the status annotation gone, the weft-proxy container marks the pod injected.
      const stripped = structuredClone(once);
      delete stripped.metadata.annotations['weft.dev/status'];
      assert.equal(injectPod(stripped, 'shop', config).kind, 'skipped', c.name);
    }
  });
});

describe('POST /validate on AdmissionReview v1 requests (golden)', () => {
  const VALIDATE: readonly Case[] = [
    { name: 'validate-trafficpolicy-ok', request: 'validate-trafficpolicy-ok', expect: 'allowed' },
    { name: 'validate-trafficpolicy-bad', request: 'validate-trafficpolicy-bad', expect: 'denied' },
    { name: 'validate-peerauthentication-bad', request: 'validate-peerauthentication-bad', expect: 'denied' },
    { name: 'validate-delete', request: 'validate-delete', expect: 'allowed' },
  ];
  for (const c of VALIDATE) {
    it(`${c.name}: ${c.expect}`, () => {
      const request = readFixture(`${c.request}.request.json`);
      const decision = reviewValidate(parseAdmissionReview(JSON.stringify(request)));
      golden(`${c.name}.response.json`, json(decision.review));
      assert.equal(decision.review.response.uid, request.request.uid);
      assert.equal(decision.review.response.allowed, c.expect === 'allowed');
      assert.equal(decision.review.response.patch, undefined);
    });
  }

  it('a refusal names every bad field', () => {
    const message = reviewValidate(parseAdmissionReview(JSON.stringify(readFixture('validate-trafficpolicy-bad.request.json')))).review.response.status.message;
    assert.match(message, /^TrafficPolicy shop\/web is invalid: /);
    assert.match(message, /spec\.routes\[0\]\.backends\[0\]\.weight: must be an integer between 0 and 100/);
    assert.match(message, /spec\.routes\[0\]\.timeout: must be a duration/);
  });
});

describe('parseAdmissionReview', () => {
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{"kind":', /the body is not JSON/],
    ['v1beta1', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }), /expected apiVersion admission\.k8s\.io\/v1/],
    ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request: required/],
    ['no uid', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE' } }), /request\.uid: required/],
    ['array object', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', object: [] } }), /request\.object: must be an object/],
  ];
  for (const [name, body, message] of cases) {
    it(`refuses ${name}`, () => assert.throws(() => parseAdmissionReview(body), (e: Error & { code?: string }) => message.test(e.message) && e.code === 'ADMISSION_BODY_INVALID'));
  }
});
