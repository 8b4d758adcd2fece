/**
 * The Helm chart against a real API server (the test cluster, e2e/cluster): `helm install` lands
 * every object and the control-plane pods pass the `restricted` Pod Security Standard; the API
 * server's own RBAC evaluation gives the chart's ServiceAccount what the control plane needs and
 * refuses the rest; `helm upgrade` keeps the caBundle the control plane wrote (even replacing the
 * objects); a bad value changes nothing; `helm uninstall` removes everything. No kubelet runs, so
 * the control plane itself does not start here: its own cluster tests run it with this RBAC.
 * Skips with the reason printed where the cluster is not built (fails instead under CI).
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, helmAsync, renderChart } from './helm';
import { startKubeCluster, waitUntil, type KubeCluster } from './kube-cluster';

const NS = 'weft-system';
const SA = `system:serviceaccount:${NS}:weft-control-plane`;

let cluster: KubeCluster | undefined;
let skip: string | undefined;

before(async () => {
  const c = await startKubeCluster();
  if (typeof c === 'string') {
    skip = c;
    console.log(`# skipping chart cluster tests: ${c}`);
  } else cluster = c;
});
after(() => cluster?.close());

/** The running cluster, or skips the test with the reason. */
function need(t: TestContext): KubeCluster | undefined {
  if (!cluster) t.skip(skip ?? 'no cluster');
  return cluster;
}

async function kubectlJson(c: KubeCluster, args: string[]): Promise<any> {
  const r = await c.kubectl([...args, '-o', 'json']);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** kind/name of every object the chart renders with its default values. */
const chartObjects = renderChart({ namespace: NS }).map((o) => ({ kind: o.kind, name: o.metadata.name, rendered: o }));

/** metadata.name of every CustomResourceDefinition in the chart's crds/. */
function shippedCrds(): string[] {
  const dir = path.join(CHART_DIR, 'crds');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f))
    .flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS()))
    .filter((o) => o?.kind === 'CustomResourceDefinition').map((o) => o.metadata.name as string);
}

/** The caBundle of each of the chart's webhook configurations, as the API server has it. */
async function caBundles(c: KubeCluster): Promise<[string | undefined, string | undefined]> {
  const m = await kubectlJson(c, ['get', 'mutatingwebhookconfiguration', 'weft-sidecar-injector']);
  const v = await kubectlJson(c, ['get', 'validatingwebhookconfiguration', 'weft-validator']);
  return [m.webhooks[0].clientConfig.caBundle, v.webhooks[0].clientConfig.caBundle];
}

test('helm install lands every object, and the control-plane pods pass the restricted Pod Security Standard', async (t) => {
  const c = need(t);
  if (!c) return;
  // The release namespace enforces `restricted`: a pod that runs as root, keeps a capability or
  // lacks a seccomp profile is refused by the API server (the negative control below shows it).
  assert.equal((await c.kubectl(['create', 'namespace', NS])).code, 0);
  assert.equal((await c.kubectl(['label', 'namespace', NS, 'pod-security.kubernetes.io/enforce=restricted', 'pod-security.kubernetes.io/enforce-version=latest'])).code, 0);
  const rootPod = await c.kubectl(['run', 'root-probe', '-n', NS, '--image=busybox', '--restart=Never']);
  assert.notEqual(rootPod.code, 0);
  assert.match(rootPod.stderr, /violates PodSecurity "restricted:latest"/);

  const install = await helmAsync(['install', 'weft', CHART_DIR, '--namespace', NS], c.kubeconfig);
  assert.equal(install.code, 0, install.stderr);
  assert.match(install.stdout, /STATUS: deployed/);
  assert.match(install.stdout, /kubectl label namespace NAMESPACE weft\.dev\/inject=enabled/);

  for (const o of chartObjects) {
    const live = await kubectlJson(c, ['get', o.kind.toLowerCase(), o.name, '-n', NS]);
    assert.equal(live.metadata.labels['app.kubernetes.io/managed-by'], 'Helm', `${o.kind}/${o.name}`);
    if (o.kind === 'ClusterRole' || o.kind === 'Role') assert.deepEqual(live.rules, o.rendered.rules, `${o.kind} rules as rendered`);
  }
  // Helm installs the chart's crds/ (generated from api/) before the templates.
  for (const crd of shippedCrds()) assert.equal((await c.kubectl(['get', 'crd', crd])).code, 0, `CRD ${crd}`);
  // The Deployment's ReplicaSet creates both pods: the API server's Pod Security admission let
  // them in (a refused pod would leave a FailedCreate condition instead).
  const pods = await waitUntil('two control-plane pods', 30_000, async () => {
    const list = await kubectlJson(c, ['get', 'pods', '-n', NS, '-l', 'app.kubernetes.io/name=weft-control-plane']);
    if (list.items.length === 2) return list.items;
    const rs = await kubectlJson(c, ['get', 'replicasets', '-n', NS]);
    const failure = rs.items.flatMap((r: any) => r.status?.conditions ?? []).find((cond: any) => cond.type === 'ReplicaFailure');
    if (failure) throw new Error(`the ReplicaSet could not create pods: ${failure.message}`);
    return undefined;
  });
  for (const pod of pods) {
    assert.equal(pod.spec.serviceAccountName, 'weft-control-plane');
    // The service-account token is mounted (automountServiceAccountToken: true on the pod).
    assert.ok(pod.spec.volumes.some((v: any) => v.projected?.sources?.some((s: any) => s.serviceAccountToken)), 'token volume');
  }
  // Webhooks: no caBundle from the chart; the control plane writes it.
  assert.deepEqual(await caBundles(c), [undefined, undefined]);
});

test('the API server grants the chart ServiceAccount what the control plane needs and refuses the rest', async (t) => {
  const c = need(t);
  if (!c) return;
  const canI = async (args: string[]): Promise<string> => {
    const r = await c.kubectl(['auth', 'can-i', ...args, '--as', SA]);
    return r.stdout.trim();
  };
  const allowed: string[][] = [
    ['list', 'pods', '-A'], ['watch', 'services', '-A'], ['get', 'namespaces'], ['watch', 'endpointslices.discovery.k8s.io', '-A'],
    ['create', 'tokenreviews.authentication.k8s.io'],
    ['watch', 'mutatingwebhookconfigurations'], ['update', 'mutatingwebhookconfigurations/weft-sidecar-injector'],
    ['patch', 'validatingwebhookconfigurations/weft-validator'],
    ['create', 'configmaps', '-n', 'shop'], ['update', 'configmaps/weft-root-ca', '-n', 'shop'],
    ['get', 'secrets/weft-ca', '-n', NS], ['create', 'secrets', '-n', NS], ['update', 'secrets/weft-ca', '-n', NS],
    ['create', 'leases.coordination.k8s.io', '-n', NS], ['update', 'leases.coordination.k8s.io/weft-control-plane-leader', '-n', NS],
    ['create', 'events', '-n', NS],
  ];
  const refused: string[][] = [
    ['get', 'secrets', '-n', 'default'], ['list', 'secrets', '-A'], ['update', 'secrets/other', '-n', NS], ['delete', 'secrets/weft-ca', '-n', NS],
    ['update', 'configmaps/kube-root-ca.crt', '-n', 'default'], ['delete', 'configmaps/weft-root-ca', '-n', 'shop'],
    ['create', 'pods', '-n', 'shop'], ['update', 'pods', '-n', 'shop'], ['delete', 'pods', '-n', 'shop'], ['create', 'deployments.apps', '-n', NS],
    ['update', 'mutatingwebhookconfigurations/someone-elses'], ['update', 'mutatingwebhookconfigurations/weft-validator'],
    ['create', 'mutatingwebhookconfigurations'], ['delete', 'validatingwebhookconfigurations/weft-validator'],
    ['update', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system'], ['update', 'leases.coordination.k8s.io/other', '-n', NS],
    ['create', 'clusterrolebindings.rbac.authorization.k8s.io'], ['escalate', 'clusterroles.rbac.authorization.k8s.io'],
    ['impersonate', 'serviceaccounts', '-A'], ['create', 'serviceaccounts/token', '-A'],
  ];
  // kubectl resolves weft.dev resources through discovery: only once the chart's CRDs exist.
  if (shippedCrds().length > 0) {
    allowed.push(['watch', 'trafficpolicies.weft.dev', '-A'], ['list', 'authorizationpolicies.weft.dev', '-A'],
      ['update', 'peerauthentications.weft.dev', '--subresource=status', '-n', 'shop']);
    refused.push(['update', 'trafficpolicies.weft.dev', '-n', 'shop'], ['create', 'authorizationpolicies.weft.dev', '-n', 'shop']);
  }
  const wrong: string[] = [];
  for (const a of allowed) if ((await canI(a)) !== 'yes') wrong.push(`should be allowed: ${a.join(' ')}`);
  for (const a of refused) if ((await canI(a)) !== 'no') wrong.push(`should be refused: ${a.join(' ')}`);
  assert.deepEqual(wrong, []);
});

test('helm upgrade keeps the caBundle the control plane wrote, even when it replaces the objects', async (t) => {
  const c = need(t);
  if (!c) return;
  // Act as the leader does: write a CA bundle into both webhook configurations.
  const bundle = readFileSync(path.join(c.dir, 'pki', 'ca.crt')).toString('base64');
  for (const kind of ['mutatingwebhookconfiguration/weft-sidecar-injector', 'validatingwebhookconfiguration/weft-validator']) {
    const r = await c.kubectl(['patch', kind, '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: bundle }])]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(await caBundles(c), [bundle, bundle]);

  const up = await helmAsync(['upgrade', 'weft', CHART_DIR, '--namespace', NS, '--set', 'controlPlane.replicas=3', '--set', 'webhooks.injector.timeoutSeconds=7'], c.kubeconfig);
  assert.equal(up.code, 0, up.stderr);
  assert.deepEqual(await caBundles(c), [bundle, bundle]);
  assert.equal((await kubectlJson(c, ['get', 'deployment', 'weft-control-plane', '-n', NS])).spec.replicas, 3);
  assert.equal((await kubectlJson(c, ['get', 'mutatingwebhookconfiguration', 'weft-sidecar-injector'])).webhooks[0].timeoutSeconds, 7);

  // Replacing the objects (client-side: Helm 4 refuses --force-replace with server-side apply)
  // would lose a field the chart did not render: the chart read it with `lookup` and rendered it.
  const replace = await helmAsync(['upgrade', 'weft', CHART_DIR, '--namespace', NS, '--reuse-values', '--server-side=false', '--force-replace'], c.kubeconfig);
  assert.equal(replace.code, 0, replace.stderr);
  assert.deepEqual(await caBundles(c), [bundle, bundle]);
  const manifest = await helmAsync(['get', 'manifest', 'weft', '--namespace', NS], c.kubeconfig);
  assert.equal(manifest.stdout.split(`caBundle: ${bundle}`).length - 1, 2, 'both webhooks rendered with the live caBundle');
});

test('a bad value fails helm upgrade with the schema message and changes nothing', async (t) => {
  const c = need(t);
  if (!c) return;
  const before = await helmAsync(['history', 'weft', '--namespace', NS, '-o', 'json'], c.kubeconfig);
  const r = await helmAsync(['upgrade', 'weft', CHART_DIR, '--namespace', NS, '--set', 'controlPlane.replica=1'], c.kubeconfig);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /additional properties 'replica' not allowed/);
  const afterHistory = await helmAsync(['history', 'weft', '--namespace', NS, '-o', 'json'], c.kubeconfig);
  assert.equal(afterHistory.stdout, before.stdout, 'no new revision');
  assert.equal((await kubectlJson(c, ['get', 'deployment', 'weft-control-plane', '-n', NS])).spec.replicas, 3);
});

test('helm uninstall removes every object of the chart, cluster-scoped ones included', async (t) => {
  const c = need(t);
  if (!c) return;
  const r = await helmAsync(['uninstall', 'weft', '--namespace', NS], c.kubeconfig);
  assert.equal(r.code, 0, r.stderr);
  for (const o of chartObjects) {
    await waitUntil(`${o.kind}/${o.name} to be gone`, 30_000, async () => {
      const g = await c.kubectl(['get', o.kind.toLowerCase(), o.name, '-n', NS]);
      if (g.code !== 0 && /NotFound|not found/.test(g.stderr)) return true;
      return undefined;
    });
  }
  const left = await helmAsync(['list', '--namespace', NS, '-q'], c.kubeconfig);
  assert.equal(left.stdout.trim(), '');
});
