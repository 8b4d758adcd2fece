/**
 * The Helm chart `charts/weft`, checked with the real Helm binary (no cluster): it lints strictly,
 * renders every object of the contract (docs/operations.md, "In a cluster") with the default
 * values and with variations, refuses bad values with the schema's message, grants exactly the
 * least-privilege RBAC of the contract and nothing more, and runs every container locked down.
 * `helm install/upgrade/uninstall` against a real API server: the cluster tests.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { DEFAULT_INJECTION_CONFIG, injectionConfigFromText } from '@weft/control-plane';
import { CHART_DIR, REPO_ROOT, findObject, helm, removeHelmHomes, renderChart, type K8sObject } from './helm';

after(removeHelmHomes);

const NS = 'mesh-ops'; // not weft-system: proves every reference follows the release namespace

/** The injector's own defaults (the contract's), with the Service in the release namespace. */
const INJECTION_DEFAULTS = JSON.parse(JSON.stringify({ ...DEFAULT_INJECTION_CONFIG, xdsAddress: `weft-control-plane.${NS}.svc:15012` }));

/** The rendered InjectionConfig, as the injector's own parser reads it (it throws on anything it refuses). */
function injectionConfig(objects: K8sObject[]): Record<string, any> {
  const text: string = findObject(objects, 'ConfigMap', 'weft-injection').data['config.yaml'];
  injectionConfigFromText(text, 'ConfigMap weft-injection');
  return parseYaml(text);
}
function meshConfig(objects: K8sObject[]): Record<string, any> {
  return parseYaml(findObject(objects, 'ConfigMap', 'weft-mesh').data['mesh.yaml']);
}
function controlPlanePod(objects: K8sObject[]): any {
  return findObject(objects, 'Deployment', 'weft-control-plane').spec.template.spec;
}

describe('helm lint', () => {
  test('helm lint --strict passes', () => {
    const r = helm(['lint', '--strict', CHART_DIR]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });
});

describe('default values', () => {
  const objects = renderChart({ namespace: NS });

  test('render every object of the contract, namespaced ones in the release namespace', () => {
    const got = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(got, [
      'ClusterRole/weft-control-plane', 'ClusterRoleBinding/weft-control-plane',
      'ConfigMap/weft-injection', 'ConfigMap/weft-mesh',
      'Deployment/weft-control-plane',
      'MutatingWebhookConfiguration/weft-sidecar-injector',
      'PodDisruptionBudget/weft-control-plane',
      'Role/weft-control-plane', 'RoleBinding/weft-control-plane',
      'Service/weft-control-plane', 'ServiceAccount/weft-control-plane',
      'ValidatingWebhookConfiguration/weft-validator',
    ]);
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']);
    for (const o of objects) {
      assert.equal(o.metadata.namespace, clusterScoped.has(o.kind) ? undefined : NS, `${o.kind}/${o.metadata.name}`);
      const labels = o.metadata.labels as Record<string, string>;
      assert.equal(labels['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(labels['app.kubernetes.io/instance'], 'weft');
      assert.equal(labels['helm.sh/chart'], 'weft-0.1.0');
    }
  });

  test('weft control-plane accepts the rendered command line and both rendered config files (it stops only at the missing in-cluster credentials)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-chart-args-'));
    try {
      const files: Record<string, string> = {
        '/etc/weft/injection/config.yaml': findObject(objects, 'ConfigMap', 'weft-injection').data['config.yaml'],
        '/etc/weft/mesh/mesh.yaml': findObject(objects, 'ConfigMap', 'weft-mesh').data['mesh.yaml'],
      };
      const local = (f: string): string => path.join(dir, path.basename(f));
      for (const [f, text] of Object.entries(files)) writeFileSync(local(f), text);
      const c = controlPlanePod(objects).containers[0];
      const args = (c.args as string[]).map((a) => (a in files ? local(a) : a.replace('$(POD_NAMESPACE)', NS)));
      // Inside a pod without its service-account files: everything before the client loads is checked.
      const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'cli/dist/src/main.js'), ...args], {
        encoding: 'utf8', timeout: 30_000, env: { ...process.env, KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: '1', POD_NAMESPACE: NS, POD_NAME: 'weft-control-plane-0' },
      });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /^weft control-plane: in-cluster configuration: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the control plane runs as the contract says: args, downward API, probes, ports, config mounts', () => {
    const deploy = findObject(objects, 'Deployment', 'weft-control-plane');
    assert.equal(deploy.spec.replicas, 2);
    assert.deepEqual(deploy.spec.strategy.rollingUpdate, { maxUnavailable: 0, maxSurge: 1 }); // a new replica is ready before an old one stops
    assert.equal(deploy.spec.template.metadata.labels['app.kubernetes.io/name'], 'weft-control-plane');
    const pod = deploy.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'weft-control-plane');
    assert.equal(pod.automountServiceAccountToken, true);
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0];
    assert.equal(c.image, 'ghcr.io/weft-dev/weft:0.1.0');
    assert.deepEqual([...c.command, ...c.args], [
      'node', '/opt/weft/cli/dist/src/main.js', 'control-plane', '--in-cluster',
      '--ca-address', '0.0.0.0:15012', '--debug-address', '0.0.0.0:15014', '--webhook-address', '0.0.0.0:15017',
      '--namespace', '$(POD_NAMESPACE)', '--injection-config', '/etc/weft/injection/config.yaml',
      '--mesh-config', '/etc/weft/mesh/mesh.yaml',
    ]);
    assert.deepEqual(c.env, [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    assert.deepEqual(c.ports.map((p: any) => [p.name, p.containerPort]), [['grpc-xds-tls', 15012], ['http-monitoring', 15014], ['https-webhook', 15017]]);
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/ready', port: 'http-monitoring' });
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'http-monitoring' });
    assert.deepEqual(c.resources, { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } });
    const mounts = Object.fromEntries(c.volumeMounts.map((m: any) => [m.name, m.mountPath]));
    assert.deepEqual(mounts, { tmp: '/tmp', 'injection-config': '/etc/weft/injection', 'mesh-config': '/etc/weft/mesh' });
    const volumes = Object.fromEntries(pod.volumes.map((v: any) => [v.name, v]));
    assert.deepEqual(volumes.tmp.emptyDir, {});
    assert.equal(volumes['injection-config'].configMap.name, 'weft-injection');
    assert.equal(volumes['mesh-config'].configMap.name, 'weft-mesh');
    // Soft anti-affinity on the node by default; no topology spread unless asked.
    const preferred = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    assert.equal(preferred[0].podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(preferred[0].podAffinityTerm.labelSelector.matchLabels, deploy.spec.selector.matchLabels);
    assert.equal(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution, undefined);
    assert.equal(pod.topologySpreadConstraints, undefined);
    // Prometheus finds the control plane's /metrics.
    assert.equal(deploy.spec.template.metadata.annotations['prometheus.io/port'], '15014');
  });

  test('the Service exposes xDS/CA, the webhooks on 443 and monitoring, selecting the control-plane pods', () => {
    const svc = findObject(objects, 'Service', 'weft-control-plane');
    assert.deepEqual(svc.spec.ports.map((p: any) => [p.name, p.port, p.targetPort]), [
      ['grpc-xds-tls', 15012, 15012], ['https-webhook', 443, 15017], ['http-monitoring', 15014, 15014],
    ]);
    assert.deepEqual(svc.spec.selector, findObject(objects, 'Deployment', 'weft-control-plane').spec.selector.matchLabels);
  });

  test('the webhooks follow the contract and leave caBundle to the control plane', () => {
    const mutating = findObject(objects, 'MutatingWebhookConfiguration', 'weft-sidecar-injector');
    assert.equal(mutating.webhooks.length, 1);
    const inj = mutating.webhooks[0];
    assert.equal(inj.name, 'sidecar-injector.weft.dev');
    assert.deepEqual(inj.clientConfig, { service: { name: 'weft-control-plane', namespace: NS, port: 443, path: '/inject' } });
    assert.deepEqual(inj.namespaceSelector, { matchLabels: { 'weft.dev/inject': 'enabled' } });
    assert.deepEqual(inj.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    assert.equal(inj.sideEffects, 'None');
    assert.deepEqual(inj.admissionReviewVersions, ['v1']);
    assert.equal(inj.failurePolicy, 'Fail');
    assert.equal(inj.reinvocationPolicy, 'Never');
    assert.equal(inj.timeoutSeconds, 10);

    const validating = findObject(objects, 'ValidatingWebhookConfiguration', 'weft-validator');
    assert.equal(validating.webhooks.length, 1);
    const val = validating.webhooks[0];
    assert.equal(val.name, 'validation.weft.dev');
    assert.deepEqual(val.clientConfig, { service: { name: 'weft-control-plane', namespace: NS, port: 443, path: '/validate' } });
    assert.deepEqual(val.rules, [{
      operations: ['CREATE', 'UPDATE'], apiGroups: ['weft.dev'], apiVersions: ['v1alpha1'],
      resources: ['trafficpolicies', 'peerauthentications', 'authorizationpolicies'], scope: 'Namespaced',
    }]);
    assert.equal(val.failurePolicy, 'Ignore');
    assert.equal(val.sideEffects, 'None');
  });

  test('the ConfigMaps hold the contract defaults: InjectionConfig and mesh config', () => {
    assert.deepEqual(injectionConfig(objects), INJECTION_DEFAULTS);
    assert.deepEqual(meshConfig(objects), { trustDomain: 'cluster.local', rootNamespace: NS, defaultReach: [] }); // no endpoint: tracing off
  });

  test('a PodDisruptionBudget keeps one of the two replicas', () => {
    const pdb = findObject(objects, 'PodDisruptionBudget', 'weft-control-plane');
    assert.equal(pdb.spec.minAvailable, 1);
    assert.deepEqual(pdb.spec.selector.matchLabels, findObject(objects, 'Deployment', 'weft-control-plane').spec.selector.matchLabels);
  });

  test('NOTES tell how to label a namespace, run weft check and see metrics', () => {
    const r = helm(['install', 'weft', CHART_DIR, '--namespace', NS, '--dry-run=client']);
    assert.equal(r.code, 0, r.stderr);
    const notes = r.stdout.slice(r.stdout.indexOf('NOTES:'));
    assert.match(notes, /kubectl label namespace NAMESPACE weft\.dev\/inject=enabled/);
    assert.match(notes, /weft check --control-plane 127\.0\.0\.1:15014/);
    assert.match(notes, /port-forward service\/weft-control-plane 15014:15014/);
    assert.match(notes, /\/metrics/);
    assert.match(notes, /native sidecars/);
  });
});

describe('value variations', () => {
  test('one replica: no PodDisruptionBudget (minAvailable 1 of 1 would block every node drain)', () => {
    const objects = renderChart({ set: ['controlPlane.replicas=1'] });
    assert.equal(findObject(objects, 'Deployment', 'weft-control-plane').spec.replicas, 1);
    assert.equal(objects.filter((o) => o.kind === 'PodDisruptionBudget').length, 0);
  });

  test('three replicas keep the PDB at minAvailable 1; podDisruptionBudget.enabled=false drops it', () => {
    assert.equal(findObject(renderChart({ set: ['controlPlane.replicas=3'] }), 'PodDisruptionBudget', 'weft-control-plane').spec.minAvailable, 1);
    const off = renderChart({ set: ['controlPlane.replicas=3', 'controlPlane.podDisruptionBudget.enabled=false'] });
    assert.equal(off.filter((o) => o.kind === 'PodDisruptionBudget').length, 0);
  });

  test('a custom image goes to the control plane and the injected sidecar; injection.image overrides the sidecar only', () => {
    const objects = renderChart({ set: ['image.repository=registry.example.com:5000/mesh/weft', 'image.tag=1.2.3', 'image.pullPolicy=Always'] });
    const c = controlPlanePod(objects).containers[0];
    assert.equal(c.image, 'registry.example.com:5000/mesh/weft:1.2.3');
    assert.equal(c.imagePullPolicy, 'Always');
    assert.equal(injectionConfig(objects).image, 'registry.example.com:5000/mesh/weft:1.2.3');
    const split = renderChart({ set: ['image.tag=1.2.3', 'injection.image=proxies.example.com/weft-proxy:7'] });
    assert.equal(controlPlanePod(split).containers[0].image, 'ghcr.io/weft-dev/weft:1.2.3');
    assert.equal(injectionConfig(split).image, 'proxies.example.com/weft-proxy:7');
  });

  test('nativeSidecar=false and other injection values reach the InjectionConfig; nothing else changes', () => {
    const objects = renderChart({
      namespace: NS,
      set: ['injection.nativeSidecar=false', 'injection.proxyUid=2000', 'injection.logLevel=debug', 'injection.capture.excludeInboundPorts=9090\\,9091', 'mesh.trustDomain=example.org'],
      setJson: ['injection.resources={"requests":{"cpu":"20m","memory":"40Mi"},"limits":{"memory":"100Mi"}}'],
    });
    assert.deepEqual(injectionConfig(objects), {
      ...INJECTION_DEFAULTS, nativeSidecar: false, proxyUid: 2000, logLevel: 'debug', trustDomain: 'example.org',
      capture: { ...INJECTION_DEFAULTS.capture, excludeInboundPorts: '9090,9091' },
      // --set-json merges into the default map, as Helm merges values.
      resources: { requests: { cpu: '20m', memory: '40Mi' }, limits: { cpu: '1', memory: '100Mi' } },
    });
    assert.equal(meshConfig(objects).trustDomain, 'example.org');
  });

  test('xdsAddress, rootNamespace and tracing come from values', () => {
    const objects = renderChart({
      set: ['injection.xdsAddress=cp.mesh.example:15012', 'mesh.rootNamespace=mesh-root', 'mesh.tracing.endpoint=http://otel.obs.svc:4318/v1/traces'],
      setJson: ['mesh.tracing.sampling=2.5'],
    });
    assert.equal(injectionConfig(objects).xdsAddress, 'cp.mesh.example:15012');
    assert.deepEqual(meshConfig(objects), {
      trustDomain: 'cluster.local', rootNamespace: 'mesh-root', defaultReach: [], tracing: { endpoint: 'http://otel.obs.svc:4318/v1/traces', sampling: 2.5 },
    });
  });

  test('hard anti-affinity, none, and zone topology spread', () => {
    const hardObjects = renderChart({ set: ['controlPlane.antiAffinity=hard'] });
    const hard = controlPlanePod(hardObjects);
    // A surge replica could find no node left: replace in place instead.
    assert.deepEqual(findObject(hardObjects, 'Deployment', 'weft-control-plane').spec.strategy.rollingUpdate, { maxUnavailable: 1, maxSurge: 0 });
    const required = hard.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    assert.equal(required[0].topologyKey, 'kubernetes.io/hostname');
    assert.equal(hard.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution, undefined);
    assert.equal(controlPlanePod(renderChart({ set: ['controlPlane.antiAffinity=none'] })).affinity, undefined);
    const spread = controlPlanePod(renderChart({ set: ['controlPlane.topologySpread.enabled=true', 'controlPlane.topologySpread.whenUnsatisfiable=DoNotSchedule'] }));
    assert.deepEqual(spread.topologySpreadConstraints.map((t: any) => [t.topologyKey, t.maxSkew, t.whenUnsatisfiable]), [['topology.kubernetes.io/zone', 1, 'DoNotSchedule']]);
  });

  test('scheduling, extra args and annotations pass through; the selector labels cannot be overridden', () => {
    const objects = renderChart({
      set: ['controlPlane.nodeSelector.pool=mesh', 'controlPlane.priorityClassName=system-cluster-critical', 'controlPlane.podLabels.team=net',
        'controlPlane.podLabels.app\\.kubernetes\\.io/name=other',
        'webhooks.injector.failurePolicy=Ignore', 'webhooks.injector.timeoutSeconds=5', 'imagePullSecrets[0].name=regcred'],
      args: ['--set-string', 'controlPlane.podAnnotations.prometheus\\.io/scrape=false'], // annotations are strings: --set would pass a boolean
      setJson: ['controlPlane.extraArgs=["--cert-ttl","12h"]', 'controlPlane.tolerations=[{"key":"dedicated","operator":"Equal","value":"mesh","effect":"NoSchedule"}]'],
    });
    const deploy = findObject(objects, 'Deployment', 'weft-control-plane');
    const pod = deploy.spec.template.spec;
    assert.deepEqual(pod.nodeSelector, { pool: 'mesh' });
    assert.equal(pod.priorityClassName, 'system-cluster-critical');
    assert.deepEqual(pod.tolerations, [{ key: 'dedicated', operator: 'Equal', value: 'mesh', effect: 'NoSchedule' }]);
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }]);
    assert.deepEqual(pod.containers[0].args.slice(-2), ['--cert-ttl', '12h']);
    assert.equal(deploy.spec.template.metadata.labels.team, 'net');
    assert.equal(deploy.spec.template.metadata.labels['app.kubernetes.io/name'], 'weft-control-plane');
    assert.equal(deploy.spec.template.metadata.annotations['prometheus.io/scrape'], 'false');
    const inj = findObject(objects, 'MutatingWebhookConfiguration', 'weft-sidecar-injector').webhooks[0];
    assert.equal(inj.failurePolicy, 'Ignore');
    assert.equal(inj.timeoutSeconds, 5);
  });
});

describe('bad values fail with the schema message and render nothing', () => {
  const cases: { what: string; args: string[]; message: RegExp }[] = [
    { what: 'a misspelt key', args: ['--set', 'controlPlane.replica=3'], message: /at '\/controlPlane': additional properties 'replica' not allowed/ },
    { what: 'a misspelt top-level key', args: ['--set', 'imagee.tag=1'], message: /additional properties 'imagee' not allowed/ },
    { what: 'a misspelt nested key', args: ['--set', 'injection.capture.inboundPort=80'], message: /at '\/injection\/capture': additional properties 'inboundPort' not allowed/ },
    { what: 'a string for an integer', args: ['--set', 'controlPlane.replicas=two'], message: /at '\/controlPlane\/replicas': got string, want integer/ },
    { what: 'a string for a boolean', args: ['--set', 'injection.nativeSidecar=yes'], message: /at '\/injection\/nativeSidecar': got string, want boolean/ },
    { what: 'zero replicas', args: ['--set', 'controlPlane.replicas=0'], message: /at '\/controlPlane\/replicas': minimum: got 0, want 1/ },
    { what: 'an unknown anti-affinity', args: ['--set', 'controlPlane.antiAffinity=sometimes'], message: /at '\/controlPlane\/antiAffinity': value must be one of/ },
    { what: 'a malformed quantity', args: ['--set', 'injection.resources.limits.memory=lots'], message: /at '\/injection\/resources\/limits\/memory': 'lots' does not match pattern/ },
    { what: 'a resource the injector does not take', args: ['--set', 'injection.resources.limits.ephemeral-storage=1Gi'], message: /at '\/injection\/resources\/limits': additional properties 'ephemeral-storage' not allowed/ },
    { what: 'an IPv6 capture range (capture is IPv4 only)', args: ['--set', 'injection.capture.excludeOutboundCidrs=fd00::/8'], message: /at '\/injection\/capture\/excludeOutboundCidrs': 'fd00::\/8' does not match pattern/ },
    { what: 'a wildcard exclusion', args: ['--set', 'injection.capture.excludeInboundPorts=*'], message: /at '\/injection\/capture\/excludeInboundPorts'/ },
    { what: 'an xDS address without a port', args: ['--set', 'injection.xdsAddress=cp.example'], message: /at '\/injection\/xdsAddress'/ },
    { what: 'sampling above 100', args: ['--set', 'mesh.tracing.sampling=150'], message: /at '\/mesh\/tracing\/sampling': maximum: got 150, want 100/ },
  ];
  for (const c of cases) {
    test(c.what, () => {
      const r = helm(['template', 'weft', CHART_DIR, ...c.args]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /values don't meet the specifications of the schema/);
      assert.match(r.stderr, c.message);
      assert.equal(r.stdout.trim(), '');
    });
  }

  test('a typo in a values file fails helm install (dry run) too', (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-chart-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, 'controlPlane:\n  replicas: 2\n  antiAfinity: hard\n');
    const r = helm(['install', 'weft', CHART_DIR, '-n', NS, '--dry-run=client', '-f', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /additional properties 'antiAfinity' not allowed/);
  });
});

/** Every (group, resource, resourceNames, verb) a role grants, as sortable strings. */
function grants(role: K8sObject): string[] {
  const out: string[] = [];
  for (const rule of role.rules as any[]) {
    assert.equal(rule.nonResourceURLs, undefined, 'no non-resource URLs');
    const names = rule.resourceNames ? `[${[...rule.resourceNames].sort().join(',')}]` : '';
    for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) out.push(`${g || 'core'}/${r}${names} ${v}`);
  }
  return out.sort();
}
const expand = (prefix: string, resources: string[], verbs: string[]): string[] => resources.flatMap((r) => verbs.map((v) => `${prefix}/${r} ${v}`));

describe('least privilege', () => {
  const objects = renderChart({ namespace: NS });
  const read = ['get', 'list', 'watch'];
  const crds = ['trafficpolicies', 'peerauthentications', 'authorizationpolicies'];

  test('the ClusterRole grants exactly the contract: reads for discovery, status writes, TokenReviews, its own webhooks and weft-root-ca', () => {
    const expected = [
      ...expand('core', ['services', 'pods', 'namespaces'], read),
      ...expand('discovery.k8s.io', ['endpointslices'], read),
      ...expand('weft.dev', crds, read),
      ...expand('weft.dev', crds.map((c) => `${c}/status`), ['update', 'patch']),
      'authentication.k8s.io/tokenreviews create',
      ...expand('admissionregistration.k8s.io', ['mutatingwebhookconfigurations', 'validatingwebhookconfigurations'], read),
      ...expand('admissionregistration.k8s.io', ['mutatingwebhookconfigurations[weft-sidecar-injector]'], ['update', 'patch']),
      ...expand('admissionregistration.k8s.io', ['validatingwebhookconfigurations[weft-validator]'], ['update', 'patch']),
      ...expand('core', ['configmaps'], [...read, 'create']),
      'core/configmaps[weft-root-ca] update',
    ].sort();
    assert.deepEqual(grants(findObject(objects, 'ClusterRole', 'weft-control-plane')), expected);
  });

  test('the Role grants exactly the contract in the release namespace: weft-ca, the leader Lease, events', () => {
    const role = findObject(objects, 'Role', 'weft-control-plane');
    assert.equal(role.metadata.namespace, NS);
    assert.deepEqual(grants(role), [
      ...expand('core', ['secrets'], [...read, 'create']),
      'core/secrets[weft-ca] update',
      ...expand('coordination.k8s.io', ['leases'], [...read, 'create']),
      'coordination.k8s.io/leases[weft-control-plane-leader] update',
      'core/events create',
    ].sort());
  });

  test('no wildcard, no delete, no escalation verbs, and secrets are never granted cluster-wide', () => {
    for (const kind of ['ClusterRole', 'Role']) {
      for (const g of grants(findObject(objects, kind, 'weft-control-plane'))) {
        assert.doesNotMatch(g, /\*|delete|deletecollection|escalate|bind|impersonate/, `${kind}: ${g}`);
      }
    }
    assert.ok(!grants(findObject(objects, 'ClusterRole', 'weft-control-plane')).some((g) => g.startsWith('core/secrets')));
  });

  test('the bindings give the roles to the chart ServiceAccount only', () => {
    for (const [kind, roleKind] of [['ClusterRoleBinding', 'ClusterRole'], ['RoleBinding', 'Role']] as const) {
      const b = findObject(objects, kind, 'weft-control-plane');
      assert.deepEqual(b.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: 'weft-control-plane' });
      assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'weft-control-plane', namespace: NS }]);
    }
    // Only the control-plane pods mount the token: the ServiceAccount does not by default.
    assert.equal(findObject(objects, 'ServiceAccount', 'weft-control-plane').automountServiceAccountToken, false);
  });

  test('the RBAC covers every weft.dev CRD the chart ships in crds/', () => {
    const dir = path.join(CHART_DIR, 'crds');
    const files = existsSync(dir) ? readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)) : [];
    const shipped = files.flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS()))
      .filter((o) => o?.kind === 'CustomResourceDefinition' && o.spec?.group === 'weft.dev')
      .map((o) => o.spec.names.plural as string);
    const readable = new Set(grants(findObject(objects, 'ClusterRole', 'weft-control-plane')).filter((g) => g.startsWith('weft.dev/')).map((g) => g.slice('weft.dev/'.length, g.indexOf(' '))));
    for (const plural of shipped) {
      assert.ok(readable.has(plural) && readable.has(`${plural}/status`), `CRD ${plural} in crds/ is not read and status-written by the control plane`);
    }
    // With CRDs present, --include-crds renders them ahead of the templates, and lint passes (above).
    const withCrds = renderChart({ args: ['--include-crds'] }).filter((o) => o.kind === 'CustomResourceDefinition');
    assert.equal(withCrds.length, shipped.length);
  });
});

describe('locked-down containers', () => {
  const variations: string[][] = [[], ['controlPlane.replicas=1'], ['injection.nativeSidecar=false'], ['image.tag=9.9.9', 'controlPlane.antiAffinity=hard']];

  test('every container of every pod the chart runs is non-root with a read-only root file system and no privileges', () => {
    let seen = 0;
    for (const set of variations) {
      for (const o of renderChart({ set })) {
        const pod = o.kind === 'Pod' ? o.spec : o.kind === 'CronJob' ? o.spec.jobTemplate.spec.template.spec : o.spec?.template?.spec;
        if (!pod) continue;
        const podSc = pod.securityContext ?? {};
        for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
          const sc = { ...podSc, ...(c.securityContext ?? {}) };
          const where = `${o.kind}/${o.metadata.name} container ${c.name} (--set ${set.join(' ')})`;
          assert.equal(sc.runAsNonRoot, true, where);
          assert.ok(Number.isInteger(sc.runAsUser) && sc.runAsUser > 0, `${where}: runAsUser ${sc.runAsUser}`);
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, where);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, where);
          assert.notEqual(c.securityContext?.privileged, true, where);
          assert.deepEqual(c.securityContext?.capabilities, { drop: ['ALL'] }, where);
          assert.equal(sc.seccompProfile?.type, 'RuntimeDefault', where);
          assert.ok(c.resources?.requests && c.resources?.limits, `${where}: requests and limits`);
          seen++;
        }
      }
    }
    assert.equal(seen, variations.length, 'one control-plane container per rendering');
    const pod = controlPlanePod(renderChart());
    assert.equal(pod.securityContext.runAsUser, 65532);
    assert.equal(pod.containers[0].securityContext.runAsUser, 65532);
  });
});

describe('values documentation', () => {
  const values = parseYaml(readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8'));
  const schema = JSON.parse(readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8'));

  test('the schema says additionalProperties false for every object it defines', () => {
    const open: string[] = [];
    const walk = (s: any, at: string): void => {
      if (!s || typeof s !== 'object') return;
      if (s.properties && s.additionalProperties !== false) open.push(at);
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${at}.${k}`);
      for (const [k, v] of Object.entries(s.definitions ?? {})) walk(v, `#/definitions/${k}`);
      walk(s.items, `${at}[]`);
    };
    walk(schema, '$');
    assert.deepEqual(open, []);
  });

  test('docs/operations.md has a row for every value in values.yaml', () => {
    const ops = readFileSync(path.join(REPO_ROOT, 'docs/operations.md'), 'utf8');
    const start = ops.indexOf('\n### Values\n');
    assert.ok(start >= 0, 'docs/operations.md has a "### Values" section');
    const end = ops.indexOf('\n#', start + 2);
    const doc = ops.slice(start, end < 0 ? undefined : end);
    const rows = new Set([...doc.matchAll(/^\| `([A-Za-z0-9_.]+)` \|/gm)].map((m) => m[1]));
    const leaves: string[] = [];
    const walk = (v: unknown, at: string): void => {
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
        for (const [k, c] of Object.entries(v)) walk(c, at ? `${at}.${k}` : k);
      } else leaves.push(at);
    };
    walk(values, '');
    // A row for a map (e.g. controlPlane.resources) covers its keys.
    const missing = leaves.filter((l) => !l.split('.').some((_, i, parts) => rows.has(parts.slice(0, i + 1).join('.'))));
    assert.deepEqual(missing, []);
    const stale = [...rows].filter((r) => !leaves.some((l) => l === r || l.startsWith(`${r}.`)));
    assert.deepEqual(stale, [], 'rows for values that do not exist');
  });
});
