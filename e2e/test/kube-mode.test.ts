/**
 * Kubernetes mode against a real kube-apiserver, etcd and kube-controller-manager (e2e/cluster):
 * objects applied with kubectl reach a connected sidecar within a second, policies get their
 * status written through the status subresource, a dropped watch recovers without a lost update,
 * the CA lives in a Secret and tokens are checked with TokenReview, and scoped pushes keep other
 * namespaces' Services away from a sidecar. Pods are API objects whose status the test sets as a
 * kubelet would. The control plane runs as the chart's ServiceAccount, with the chart's RBAC. Sidecars and apps run on 10.249.49.x, addresses added to lo
(pod-addresses.ts: the API server refuses loopback endpoints), the control plane on 127.0.49.1.
 */
import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_INJECTION_CONFIG, KubeClient, startControlPlane, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { closeServer, eventually, getJson, httpApp, log, MeshClient, sleep, splitPolicyYaml, tempDir } from './mesh';
import { runCommand, setPodStatus, writeTokenKubeconfig, type KubeCluster } from './kube-cluster';
import { podJson, serviceJson, startMeshCluster, type MeshCluster } from './kube-mesh';
import { renderChart } from './helm';
import { parse as parseYaml } from 'yaml';
import { WEFT } from './netns-pods';

const CP = '127.0.49.1';
const NS = 'shop';
/** The control plane's namespace: not weft-system, so every name that follows it is checked. */
const CP_NS = 'mesh-ops';
const PODS = {
  productpage: { name: 'productpage', ip: '10.249.49.10', labels: { app: 'productpage' }, sa: 'productpage' },
  v1: { name: 'reviews-v1', ip: '10.249.49.11', labels: { app: 'reviews', version: 'v1' }, sa: 'reviews' },
  v2: { name: 'reviews-v2', ip: '10.249.49.12', labels: { app: 'reviews', version: 'v2' }, sa: 'reviews' },
};
const HOST = `reviews.${NS}.svc.cluster.local:9080`;

let mesh: MeshCluster | undefined;
let cluster: KubeCluster | undefined;
let skip: string | undefined;
let cp: ControlPlane | undefined;
let proxy: CuttableProxy | undefined;
let side: Sidecar | undefined;
const apps: Awaited<ReturnType<typeof httpApp>>[] = [];
const clients: MeshClient[] = [];

const policyYaml = (name: string, v1: number, v2: number, extra = ''): string => splitPolicyYaml(NS, 'reviews', v1, v2, extra, name);

const kubectl = (args: string[], input?: string): Promise<string> => mesh!.kubectl(args, input);

async function conditions(kind: string, name: string): Promise<Record<string, { status: string; reason: string; message: string }>> {
  const out = await kubectl(['get', kind, name, '-n', NS, '-o', 'json']);
  const obj = JSON.parse(out) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
  return Object.fromEntries((obj.status?.conditions ?? []).map((c) => [c.type, c]));
}

/** Clusters the sidecar holds now (from its admin config dump). */
async function sidecarClusters(ip: string): Promise<string[]> {
  const dump = await getJson(`http://${ip}:15000/config_dump`);
  return Object.keys(dump.config.clusters ?? {});
}

/**
 * A TCP forwarder between the control plane and the API server that the test can cut: every
 * connection through it is destroyed and new ones are refused until `restore()`, as a network
 * partition or an API server restart would do to the watches.
 */
class CuttableProxy {
  private readonly sockets = new Set<net.Socket>();
  private cut = false;
  readonly server: net.Server;

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((s) => {
      if (this.cut) return s.destroy();
      const up = net.connect(target.port, target.host);
      for (const x of [s, up]) {
        this.sockets.add(x);
        x.on('close', () => this.sockets.delete(x));
        x.on('error', () => undefined);
      }
      s.pipe(up).pipe(s);
      s.on('close', () => up.destroy());
      up.on('close', () => s.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    return (this.server.address() as net.AddressInfo).port;
  }

  drop(): void {
    this.cut = true;
    for (const s of this.sockets) s.destroy();
  }

  restore(): void {
    this.cut = false;
  }

  close(): void {
    this.drop();
    this.server.close();
  }
}

before(async () => {
  const m = await startMeshCluster(Object.values(PODS).map((p) => p.ip), [NS, CP_NS, 'other']);
  if (typeof m === 'string') {
    skip = m;
    return;
  }
  mesh = m;
  cluster = m.cluster;
  for (const sa of ['productpage', 'reviews']) await kubectl(['create', 'serviceaccount', sa, '-n', NS]);
  await kubectl(['apply', '-f', '-'], serviceJson(NS, 'reviews', { app: 'reviews' }, 9080));
  await kubectl(['apply', '-f', '-'], serviceJson('other', 'elsewhere', { app: 'elsewhere' }, 9080));
  for (const p of Object.values(PODS)) {
    await kubectl(['apply', '-f', '-'], podJson(NS, p.name, p.labels, p.sa, 9080));
    await setPodStatus(cluster, NS, p.name, { podIP: p.ip });
  }
  apps.push(await httpApp(PODS.v1.ip, 9080, 'reviews-v1'), await httpApp(PODS.v2.ip, 9080, 'reviews-v2'));

  // The control plane runs as the chart's ServiceAccount with the chart's RBAC, not as admin:
  // everything below (watches, status, the CA Secret, TokenReview, the Lease, ConfigMaps,
  // caBundles) must work with exactly those permissions.
  const rbac = renderChart({ namespace: CP_NS }).filter((o) => ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind));
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }));
  const cpToken = (await kubectl(['create', 'token', 'weft-control-plane', '-n', CP_NS, '--duration', '2h'])).trim();
  // It reaches the API server through a proxy the test can cut.
  const api = new URL(cluster.apiServerUrl);
  proxy = new CuttableProxy({ host: api.hostname, port: Number(api.port) });
  const proxyPort = await proxy.listen();
  const kubeconfig = writeTokenKubeconfig(cluster, cpToken, path.join(tempDir('kube-mode'), 'kubeconfig'));
  fs.writeFileSync(kubeconfig, fs.readFileSync(kubeconfig, 'utf8').replace(cluster.apiServerUrl, `https://127.0.0.1:${proxyPort}`));
  const client = await KubeClient.load({ kubeconfig });
  cp = await startControlPlane({
    kube: { client, namespace: CP_NS, identity: 'cp-test', backoff: { initialMs: 100, maxMs: 500 } },
    xdsAddress: `${CP}:0`, debugAddress: `${CP}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    identity: { caAddress: `${CP}:0` },
    webhooks: { address: `${CP}:0`, injection: DEFAULT_INJECTION_CONFIG },
  });

  // The productpage sidecar proves its identity with a real service-account token (audience weft).
  const dir = tempDir('kube-mode-sa');
  const token = (await kubectl(['create', 'token', 'productpage', '-n', NS, '--audience', 'weft', '--duration', '1h'])).trim();
  fs.writeFileSync(path.join(dir, 'token'), token);
  fs.writeFileSync(path.join(dir, 'root-cert.pem'), cp.ca!.rootPem());
  const p = PODS.productpage;
  // As injected in a cluster: xDS and the CA on the one TLS port (15012), no plaintext xDS.
  side = await startSidecar({
    xdsAddress: `${CP}:${cp.caPort}`, podName: p.name, namespace: NS, podIp: p.ip, serviceAccount: p.sa, trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log: log.child({ c: 'sidecar' }),
    identity: { tokenPath: path.join(dir, 'token'), rootCertPath: path.join(dir, 'root-cert.pem'), caAddress: `${CP}:${cp.caPort}` },
  });
  await side.ready;
});

after(async () => {
  for (const c of clients) c.close();
  await side?.close();
  await cp?.close();
  proxy?.close();
  for (const a of apps) await closeServer(a);
  await mesh?.close();
});

test('the CA keeps its root in the Secret weft-ca, and a sidecar got its certificate with a service-account token checked by TokenReview', async (t) => {
  if (skip) return t.skip(skip);
  // Running with the chart's RBAC only: it leads through the Lease it may write.
  await eventually('the Lease held by the control plane', async () =>
    (await kubectl(['get', 'lease', 'weft-control-plane-leader', '-n', CP_NS, '-o', 'jsonpath={.spec.holderIdentity}'])).trim() === 'cp-test', 10_000);
  await eventually('the LeaderElection Event', async () =>
    (await kubectl(['get', 'events', '-n', CP_NS, '--field-selector', 'reason=LeaderElection', '-o', 'jsonpath={.items[*].message}'])).includes('cp-test became leader'), 5_000);
  const secret = JSON.parse(await kubectl(['get', 'secret', 'weft-ca', '-n', CP_NS, '-o', 'json'])) as { data: Record<string, string> };
  const rootPem = Buffer.from(secret.data['ca-cert.pem']!, 'base64').toString('utf8');
  assert.equal(rootPem, cp!.ca!.rootPem());
  // The sidecar verified 15012 by the Service name in the control plane's namespace.
  const served = await new Promise<string>((resolve, reject) => {
    const sock = tls.connect({ host: CP, port: cp!.caPort!, servername: `weft-control-plane.${CP_NS}.svc`, ca: cp!.ca!.rootPem(), ALPNProtocols: ['h2'] }, () => {
      resolve(sock.getPeerCertificate().subjectaltname ?? '');
      sock.destroy();
    });
    sock.on('error', reject);
  });
  assert.match(served, new RegExp(`DNS:weft-control-plane\\.${CP_NS}\\.svc\\b`));
  const leaf = new X509Certificate(side!.identity!.current()!.chainPem);
  assert.equal(leaf.subjectAltName, `URI:spiffe://cluster.local/ns/${NS}/sa/productpage`);
  assert.ok(leaf.verify(new X509Certificate(rootPem).publicKey));
});

test('a Service applied with kubectl reaches the connected sidecar within a second; traffic follows the EndpointSlices Kubernetes made', async (t) => {
  if (skip) return t.skip(skip);
  const client = new MeshClient(PODS.productpage.ip);
  clients.push(client);
  await eventually('reviews to answer through the sidecar', async () => (await client.get(HOST)).status === 200, 15_000);
  await kubectl(['apply', '-f', '-'], serviceJson(NS, 'ratings', { app: 'ratings' }, 9081));
  const applied = Date.now();
  await eventually('the ratings cluster in the sidecar', async () => (await sidecarClusters(PODS.productpage.ip)).some((n) => n.includes('ratings')), 5_000);
  const took = Date.now() - applied;
  assert.ok(took <= 1000, `the sidecar had the new Service after ${took} ms (want ≤ 1000)`);
});

test('a TrafficPolicy applied with kubectl reaches the sidecar within a second, steers traffic and gets Accepted=True through the status subresource', async (t) => {
  if (skip) return t.skip(skip);
  const subsetCluster = `outbound|9080|v2|reviews.${NS}.svc.cluster.local`;
  assert.equal((await sidecarClusters(PODS.productpage.ip)).includes(subsetCluster), false);
  await kubectl(['apply', '-f', '-'], policyYaml('reviews', 0, 100));
  const applied = Date.now();
  await eventually('the policy\'s subset cluster in the sidecar', async () => (await sidecarClusters(PODS.productpage.ip)).includes(subsetCluster), 5_000);
  const took = Date.now() - applied;
  assert.ok(took <= 1000, `the sidecar had the policy after ${took} ms (want ≤ 1000)`);
  const client = new MeshClient(PODS.productpage.ip);
  clients.push(client);
  await eventually('all traffic on v2', async () => {
    const { counts } = await client.spread(HOST, 20, 4);
    return counts.get('reviews-v2') === 20;
  }, 10_000);
  const c = await eventually('the Accepted condition', async () => (await conditions('trafficpolicy', 'reviews')).Accepted, 5_000);
  assert.equal(c.status, 'True');
  assert.equal(c.reason, 'Accepted');
});

test('a second policy for the same Service is Conflicted; an update the schema admits but Weft refuses is Accepted=False Invalid, never pushed, and the last valid version stays in effect', async (t) => {
  if (skip) return t.skip(skip);
  await kubectl(['apply', '-f', '-'], policyYaml('reviews-late', 100, 0));
  const late = await eventually('the late policy\'s status', async () => (await conditions('trafficpolicy', 'reviews-late')).Accepted, 5_000);
  assert.deepEqual([late.status, late.reason], ['False', 'Conflicted']);
  assert.match(late.message, /older TrafficPolicy reviews/);
  // The older policy still governs: all traffic stays on v2.
  const client = new MeshClient(PODS.productpage.ip);
  clients.push(client);
  assert.equal((await client.spread(HOST, 20, 4)).counts.get('reviews-v2'), 20);
  await kubectl(['delete', 'trafficpolicy', 'reviews-late', '-n', NS]);

  // A regular expression RE2 and JavaScript cannot compile: no schema or CEL rule catches it, the parser does.
  const bad = policyYaml('reviews', 100, 0, '  - name: bad\n    match: [{path: {regex: "(unclosed"}}]\n    backends: [{subset: v1}]\n');
  await kubectl(['apply', '-f', '-'], bad);
  const refused = await eventually('Accepted=False Invalid', async () => {
    const c = (await conditions('trafficpolicy', 'reviews')).Accepted;
    return c?.reason === 'Invalid' ? c : undefined;
  }, 5_000);
  assert.equal(refused.status, 'False');
  assert.match(refused.message, /regex/);
  assert.match(refused.message, /last valid version \(generation 1\) stays in effect/);
  // Never pushed: its 100% to v1 did not reach the sidecar; the last valid version (100% to v2) still rules.
  await sleep(300);
  const after = await client.spread(HOST, 20, 4);
  assert.deepEqual([after.counts.get('reviews-v2'), after.failures], [20, []]);
});

test('a dropped watch recovers: changes made while the API server was unreachable arrive after it comes back', async (t) => {
  if (skip) return t.skip(skip);
  await kubectl(['apply', '-f', '-'], policyYaml('reviews', 0, 100));
  const client = new MeshClient(PODS.productpage.ip);
  clients.push(client);
  await eventually('all traffic on v2', async () => (await client.spread(HOST, 10, 2)).counts.get('reviews-v2') === 10, 10_000);
  proxy!.drop();
  await kubectl(['apply', '-f', '-'], policyYaml('reviews', 100, 0));
  await sleep(1500);
  // Still on the last config while cut off.
  assert.equal((await client.spread(HOST, 10, 2)).counts.get('reviews-v2'), 10);
  proxy!.restore();
  await eventually('all traffic on v1 after the watch came back', async () => (await client.spread(HOST, 10, 2)).counts.get('reviews-v1') === 10, 10_000);
  const metrics = await (await fetch(`http://${CP}:${cp!.debugPort}/metrics`)).text();
  assert.match(metrics, /^weft_informer_watch_failures_total\{kind="TrafficPolicy"\} [1-9]/m);
});

test('a compacted resourceVersion: after an API server restart the watch from the old version gets 410 Gone, the informers relist, and the change made meanwhile arrives', async (t) => {
  if (skip) return t.skip(skip);
  const client = new MeshClient(PODS.productpage.ip);
  clients.push(client);
  await eventually('all traffic on v1', async () => (await client.spread(HOST, 10, 2)).counts.get('reviews-v1') === 10, 10_000);
  const relists = async (): Promise<number> => {
    const text = await (await fetch(`http://${CP}:${cp!.debugPort}/metrics`)).text();
    return [...text.matchAll(/^weft_informer_relists_total\{kind="[A-Za-z]+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  };
  const before = await relists();
  proxy!.drop();
  await kubectl(['apply', '-f', '-'], policyYaml('reviews', 0, 100));
  // Its watch cache starts afresh from etcd's current revision: older versions are gone.
  await cluster!.restartApiServer();
  proxy!.restore();
  await eventually('all traffic on v2 after the relist', async () => (await client.spread(HOST, 10, 2)).counts.get('reviews-v2') === 10, 15_000);
  assert.ok(await relists() > before, 'the informers relisted (410 Gone)');
});

test('scoped pushes: a sidecar is sent its own namespace\'s Services, not another namespace\'s, until its Namespace reaches it', async (t) => {
  if (skip) return t.skip(skip);
  const has = async (): Promise<boolean> => (await sidecarClusters(PODS.productpage.ip)).some((n) => n.includes('elsewhere'));
  assert.equal(await has(), false, 'the sidecar in shop holds no cluster of namespace other');
  await kubectl(['annotate', 'namespace', NS, 'weft.dev/reach=other']);
  await eventually('the other namespace\'s Service in the sidecar', has, 5_000);
  await kubectl(['annotate', 'namespace', NS, 'weft.dev/reach-']);
  await eventually('the other namespace\'s Service gone again', async () => !(await has()), 5_000);
});

test('the leader writes the root certificate ConfigMap weft-root-ca into each namespace labelled for injection, and only there', async (t) => {
  if (skip) return t.skip(skip);
  const get = async (ns: string): Promise<string | undefined> => {
    const r = await cluster!.kubectl(['get', 'configmap', 'weft-root-ca', '-n', ns, '-o', 'jsonpath={.data.root-cert\\.pem}']);
    return r.code === 0 ? r.stdout : undefined;
  };
  await kubectl(['label', 'namespace', NS, 'weft.dev/inject=enabled']);
  const pem = await eventually('the ConfigMap in the labelled namespace', get.bind(null, NS), 5_000);
  assert.equal(pem, cp!.ca!.trustBundlePem());
  assert.equal(await get('other'), undefined, 'no ConfigMap in a namespace without the label');
});

test('the real API server calls the webhooks: a pod created in a labelled namespace comes back injected, an opted-out one does not, and a policy Weft refuses is refused at admission', async (t) => {
  if (skip) return t.skip(skip);
  // As the chart installs them, but pointed at this control plane by URL, with an empty caBundle
  // the leader fills in (the chart's Service reference needs a cluster network).
  const webhook = (path: string): Record<string, unknown> => ({ url: `https://${CP}:${cp!.webhookPort}${path}` });
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'weft-sidecar-injector' },
    webhooks: [{
      name: 'sidecar-injector.weft.dev', clientConfig: webhook('/inject'), admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Fail',
      namespaceSelector: { matchLabels: { 'weft.dev/inject': 'enabled' } }, timeoutSeconds: 10,
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
    }],
  }));
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'weft-validator' },
    webhooks: [{
      name: 'validation.weft.dev', clientConfig: webhook('/validate'), admissionReviewVersions: ['v1'], sideEffects: 'None', failurePolicy: 'Ignore', timeoutSeconds: 10,
      rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: ['weft.dev'], apiVersions: ['v1alpha1'], resources: ['trafficpolicies', 'peerauthentications', 'authorizationpolicies'] }],
    }],
  }));
  const bundle = Buffer.from(cp!.ca!.trustBundlePem()).toString('base64');
  await eventually('the leader to fill in both caBundles', async () => {
    const m = await kubectl(['get', 'mutatingwebhookconfiguration', 'weft-sidecar-injector', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}']);
    const v = await kubectl(['get', 'validatingwebhookconfiguration', 'weft-validator', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}']);
    return m === bundle && v === bundle;
  }, 20_000);
  await kubectl(['label', '--overwrite', 'namespace', NS, 'weft.dev/inject=enabled']);
  const pod = (name: string, annotations: Record<string, string> = {}): string => JSON.stringify({
    apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels: { app: 'details' }, annotations },
    spec: { containers: [{ name: 'app', image: 'details', readinessProbe: { httpGet: { path: '/ready', port: 9080 } } }] },
  });
  const created = JSON.parse(await kubectl(['create', '-o', 'json', '-f', '-'], pod('details-1'))) as { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { initContainers?: { name: string; restartPolicy?: string }[]; containers: { name: string; readinessProbe?: { httpGet?: { port: number } } }[] } };
  assert.deepEqual(created.spec.initContainers?.map((c) => [c.name, c.restartPolicy ?? '']), [['weft-init', ''], ['weft-proxy', 'Always']], 'the iptables init container, then the proxy as a native sidecar');
  assert.equal(created.metadata.labels['security.weft.dev/tlsMode'], 'weft');
  assert.ok(created.metadata.annotations['weft.dev/status'], 'the injection status annotation');
  assert.equal(created.spec.containers[0]!.readinessProbe?.httpGet?.port, 15021, 'the app\'s HTTP probe now goes through the sidecar\'s health port');
  // `weft inject -f` adds exactly what the webhook added (the API server then fills in its defaults).
  const offline = await runCommand(process.execPath, [WEFT, 'inject', '-f', '-'], pod('details-1'));
  assert.equal(offline.code, 0, offline.stderr);
  const printed = parseYaml(offline.stdout) as { metadata: { labels: Record<string, string> }; spec: { initContainers: { name: string; command: string[]; args?: string[]; env?: unknown[] }[]; volumes: { name: string }[] } };
  const live = created as unknown as typeof printed;
  assert.deepEqual(printed.spec.initContainers.map((c) => [c.name, c.command, c.args ?? [], c.env ?? []]), live.spec.initContainers.map((c) => [c.name, c.command, c.args ?? [], c.env ?? []]));
  assert.deepEqual(printed.spec.volumes.map((v) => v.name), live.spec.volumes.map((v) => v.name).filter((n) => !n.startsWith('kube-api-access-')));
  assert.deepEqual(printed.metadata.labels, live.metadata.labels);
  const optedOut = JSON.parse(await kubectl(['create', '-o', 'json', '-f', '-'], pod('details-2', { 'weft.dev/inject': 'false' }))) as { spec: { initContainers?: unknown[]; containers: { name: string }[] } };
  assert.equal(optedOut.spec.initContainers, undefined);
  assert.deepEqual(optedOut.spec.containers.map((c) => c.name), ['app']);

  const bad = policyYaml('refused-at-admission', 100, 0, '  - name: bad\n    match: [{path: {regex: "(unclosed"}}]\n    backends: [{subset: v1}]\n');
  const r = await cluster!.kubectl(['apply', '-f', '-'], bad);
  assert.notEqual(r.code, 0, 'the validating webhook refused it');
  assert.match(r.stderr, /admission webhook "validation\.weft\.dev" denied the request: .*regex/);
});

test('weft check --kubeconfig: the installed mesh as the API server and the control plane see it', async (t) => {
  if (skip) return t.skip(skip);
  // Not spawnSync: the control plane runs in this process and must answer meanwhile.
  const r = await runCommand(process.execPath, [WEFT, 'check', '--kubeconfig', cluster!.kubeconfig, '--namespace', CP_NS, '--control-plane', `${CP}:${cp!.debugPort}`]);
  const out = r.stdout + r.stderr;
  for (const plural of ['trafficpolicies', 'peerauthentications', 'authorizationpolicies']) assert.match(out, new RegExp(`^√ CRD ${plural}\\.weft\\.dev established$`, 'm'));
  assert.match(out, /^√ weft-sidecar-injector: caBundle set$/m);
  assert.match(out, /^√ weft-validator: caBundle set$/m);
  assert.match(out, /^√ leader cp-test \(renewed \d+ s ago\)$/m);
  assert.match(out, new RegExp(`^√ CA Secret ${CP_NS}/weft-ca present$`, 'm'));
  assert.match(out, /^√ 1 of 1 policy accepted$/m);
  assert.match(out, /^√ reachable at 127\.0\.49\.1:\d+$/m, 'the control plane was asked too');
  assert.equal(r.code, 0, out);
});
