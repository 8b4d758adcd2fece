/**
 * What the injector adds actually runs: pods created through the real API server in a labelled
 * namespace come back injected, and this test then plays the kubelet for them — each pod a Linux
 * network namespace, its `weft-init` container's command run in it as root (iptables), its
 * `weft-proxy` container's command run in it as the container's uid with the environment the
 * container declares (downward API resolved, volumes mapped to files: the projected token with
 * audience `weft`, the `weft-root-ca` ConfigMap the leader wrote). An unmodified client then calls
 * the Service's cluster IP: the call crosses both sidecars over mTLS, which got their config over
 * TLS on 15012 and their certificates from the Kubernetes-mode control plane. Needs root, `ip`,
 * iptables and the test cluster; else skipped with the reason printed.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_INJECTION_CONFIG, KubeClient, startControlPlane, type ControlPlane } from '@weft/control-plane';
import { eventually, log, tempDir } from './mesh';
import { setPodStatus } from './kube-cluster';
import { startMeshCluster, type MeshCluster } from './kube-mesh';
import { inNs, NetnsProcesses, netnsSkipReason, sh, WEFT } from './netns-pods';

const id = process.pid % 10000;
const BRIDGE = `wkb${id}`;
const CP_IP = '10.250.54.1';
const NS = 'shop';
const CP_NS = 'mesh-ops';
const PODS = {
  client: { name: 'client', netns: `kcl-${id}`, ip: '10.250.54.11', veth: `kc${id}`, sa: 'client', labels: { app: 'client' } },
  server: { name: 'server', netns: `ksv-${id}`, ip: '10.250.54.21', veth: `ks${id}`, sa: 'server', labels: { app: 'server' } },
};
type PodDef = (typeof PODS)[keyof typeof PODS];
type Container = { name: string; command: string[]; args?: string[]; env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]; securityContext?: { runAsUser?: number } };
type InjectedPod = { metadata: { name: string; annotations: Record<string, string> }; spec: { serviceAccountName: string; initContainers?: Container[]; containers: Container[] } };

let skip: string | false = netnsSkipReason();
let mesh: MeshCluster | undefined;
let cp: ControlPlane | undefined;
let serviceIp = '';
const procs = new NetnsProcesses();
const files = tempDir('kube-injected');

const kubectl = (args: string[], input?: string): Promise<string> => mesh!.kubectl(args, input);

/** A bridge in this namespace (holding the control plane's address) and one namespace per pod on it. */
function network(): void {
  sh('ip', 'link', 'add', BRIDGE, 'type', 'bridge');
  sh('ip', 'addr', 'add', `${CP_IP}/24`, 'dev', BRIDGE);
  sh('ip', 'link', 'set', BRIDGE, 'up');
  for (const p of Object.values(PODS)) {
    sh('ip', 'netns', 'add', p.netns);
    sh('ip', 'link', 'add', 'eth0', 'netns', p.netns, 'type', 'veth', 'peer', 'name', p.veth);
    sh('ip', 'link', 'set', p.veth, 'master', BRIDGE);
    sh('ip', 'link', 'set', p.veth, 'up');
    inNs(p.netns, 'ip', 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0');
    inNs(p.netns, 'ip', 'link', 'set', 'eth0', 'up');
    inNs(p.netns, 'ip', 'link', 'set', 'lo', 'up');
    // The Service range goes to the node too, as kube-proxy's rules would take it; the sidecar captures it first.
    inNs(p.netns, 'ip', 'route', 'add', 'default', 'via', CP_IP);
  }
}

function teardownNetwork(): void {
  for (const p of Object.values(PODS)) {
    try { sh('ip', 'netns', 'del', p.netns); } catch { /* not created */ }
  }
  try { sh('ip', 'link', 'del', BRIDGE); } catch { /* not created */ }
}

/** The command a container declares, with the image's /opt/weft replaced by this repository's build. */
function commandOf(c: Container): string[] {
  const argv = [...c.command, ...(c.args ?? [])];
  assert.equal(argv[0], 'node');
  return argv.slice(1).map((a) => (a === '/opt/weft/cli/dist/src/main.js' ? WEFT : a));
}

/** Plays the kubelet for one injected pod: status, the init container, then the sidecar. */
async function runPod(p: PodDef, pod: InjectedPod): Promise<void> {
  await setPodStatus(mesh!.cluster, NS, p.name, { podIP: p.ip });
  const [init, proxy] = pod.spec.initContainers ?? [];
  assert.deepEqual([init?.name, proxy?.name], ['weft-init', 'weft-proxy']);
  inNs(p.netns, process.execPath, ...commandOf(init!));
  // Volumes, as the kubelet mounts them: the projected token (audience weft, bound to the pod) and the root ConfigMap.
  const dir = path.join(files, p.name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  const token = (await kubectl(['create', 'token', p.sa, '-n', NS, '--audience', 'weft', '--bound-object-kind', 'Pod', '--bound-object-name', p.name])).trim();
  fs.writeFileSync(path.join(dir, 'token'), token, { mode: 0o644 });
  fs.writeFileSync(path.join(dir, 'root-cert.pem'), await kubectl(['get', 'configmap', 'weft-root-ca', '-n', NS, '-o', 'jsonpath={.data.root-cert\\.pem}']), { mode: 0o644 });
  const field: Record<string, string> = { 'metadata.name': p.name, 'metadata.namespace': NS, 'status.podIP': p.ip, 'spec.serviceAccountName': pod.spec.serviceAccountName };
  const mounted: Record<string, string> = { WEFT_TOKEN_PATH: path.join(dir, 'token'), WEFT_CA_ROOT_CERT: path.join(dir, 'root-cert.pem') };
  const env: Record<string, string> = {};
  for (const e of proxy!.env ?? []) {
    const v = mounted[e.name] ?? e.value ?? (e.valueFrom?.fieldRef ? field[e.valueFrom.fieldRef.fieldPath] : undefined);
    assert.ok(v !== undefined, `env ${e.name} of weft-proxy resolves`);
    env[e.name] = v;
  }
  const argv = commandOf(proxy!);
  procs.start(p.netns, argv, env, proxy!.securityContext?.runAsUser);
}

before(async () => {
  if (skip) return;
  const m = await startMeshCluster([], [NS, CP_NS]);
  if (typeof m === 'string') {
    skip = m;
    return;
  }
  mesh = m;
  fs.chmodSync(files, 0o755);
  network();
  const client = await KubeClient.load({ kubeconfig: mesh.cluster.kubeconfig });
  cp = await startControlPlane({
    kube: { client, namespace: CP_NS, identity: 'cp-injected', leaderElection: false },
    xdsAddress: `${CP_IP}:0`, debugAddress: `${CP_IP}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    // Sidecars reach the control plane at its address on the bridge, port 15012, as they would reach its Service.
    identity: { caAddress: `${CP_IP}:15012` },
    webhooks: { address: `${CP_IP}:0`, injection: { ...DEFAULT_INJECTION_CONFIG, xdsAddress: `${CP_IP}:15012`, logLevel: process.env.WEFT_TEST_LOG ? 'debug' : 'warn' } },
  });
  await kubectl(['label', 'namespace', NS, 'weft.dev/inject=enabled']);
  for (const sa of ['client', 'server']) await kubectl(['create', 'serviceaccount', sa, '-n', NS]);
  await kubectl(['apply', '-f', '-'], JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata: { name: 'weft-sidecar-injector' },
    webhooks: [{
      name: 'sidecar-injector.weft.dev', clientConfig: { url: `https://${CP_IP}:${cp.webhookPort}/inject` }, admissionReviewVersions: ['v1'], sideEffects: 'None',
      failurePolicy: 'Fail', namespaceSelector: { matchLabels: { 'weft.dev/inject': 'enabled' } }, timeoutSeconds: 10,
      rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'] }],
    }],
  }));
  await eventually('the caBundle and the root ConfigMap', async () =>
    (await kubectl(['get', 'mutatingwebhookconfiguration', 'weft-sidecar-injector', '-o', 'jsonpath={.webhooks[0].clientConfig.caBundle}'])) !== ''
    && (await mesh!.cluster.kubectl(['get', 'configmap', 'weft-root-ca', '-n', NS])).code === 0, 10_000);
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'server', namespace: NS }, spec: { selector: { app: 'server' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }));
  serviceIp = (await kubectl(['get', 'service', 'server', '-n', NS, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
});

after(async () => {
  procs.kill();
  await cp?.close();
  await mesh?.close();
  if (!skip) teardownNetwork();
  fs.rmSync(files, { recursive: true, force: true });
});

test('pods created through the API come back injected, and their weft-init and weft-proxy containers, run as declared, carry an unmodified client\'s call over mTLS', async (t) => {
  if (skip) return t.skip(skip);
  const injected: Record<string, InjectedPod> = {};
  for (const p of Object.values(PODS)) {
    const created = await kubectl(['create', '-o', 'json', '-f', '-'], JSON.stringify({
      apiVersion: 'v1', kind: 'Pod', metadata: { name: p.name, namespace: NS, labels: p.labels },
      spec: { serviceAccountName: p.sa, containers: [{ name: 'app', image: 'app', ports: [{ containerPort: 8080 }] }] },
    }));
    injected[p.name] = JSON.parse(created) as InjectedPod;
    await runPod(p, injected[p.name]!);
  }
  // The app in the server pod; the kubelet would start it once weft-proxy's startup probe passes.
  procs.start(PODS.server.netns, ['-e', `require('http').createServer((q, s) => s.end('server:' + q.headers.host)).listen(8080, '${PODS.server.ip}')`], {});
  for (const p of Object.values(PODS)) {
    await eventually(`${p.name}'s sidecar ready (its startup probe)`, () => {
      try {
        return inNs(p.netns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${p.ip}:15021/healthz/ready`) === '200';
      } catch {
        return false;
      }
    }, 30_000);
  }
  // An unmodified client (curl, root: captured) calls the Service's cluster IP.
  const body = await eventually('the call through both sidecars', () => {
    try {
      return inNs(PODS.client.netns, 'curl', '-s', '--max-time', '5', `http://${serviceIp}/`) || undefined;
    } catch {
      return undefined;
    }
  }, 20_000);
  assert.equal(body, `server:${serviceIp}`);
  // Over mesh mTLS: the server's sidecar counts it inbound with mtls="true", from the client's workload.
  const metrics = inNs(PODS.server.netns, 'curl', '-s', `http://${PODS.server.ip}:15020/metrics`);
  assert.match(metrics, /^weft_requests_total\{[^}]*direction="inbound"[^}]*mtls="true"[^}]*\} [1-9]/m);
  assert.match(metrics, /^weft_requests_total\{[^}]*source_workload="client"[^}]*\}/m);
});
