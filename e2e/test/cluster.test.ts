/**
 * The test cluster itself (SPEC "Test cluster"): `npm run cluster -- up` gives a real
 * kube-apiserver of the pinned release with RBAC on, whose controller manager makes EndpointSlices
 * from pods whose status was set as a kubelet would, and `down` leaves nothing running. Skips
 * with the reason printed where the cluster binary is not built (fails instead under CI).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCommand, setPodStatus, startKubeCluster, waitUntil, writeTokenKubeconfig, type KubeCluster } from './kube-cluster';

const ROOT = path.resolve(__dirname, '../../..');
const CLUSTER_SCRIPT = path.join(ROOT, 'scripts', 'cluster.mjs');
const PINNED = /^\s*k8s\.io\/kubernetes (v\d+\.\d+\.\d+)\s*$/m.exec(fs.readFileSync(path.join(ROOT, 'e2e', 'cluster', 'go.mod'), 'utf8'))![1]!;

let cluster: KubeCluster | undefined;
let skip: string | false = false;

before(async () => {
  const c = await startKubeCluster();
  if (typeof c === 'string') {
    skip = c;
    console.log(`# skipping test cluster tests: ${c}`);
  } else cluster = c;
});
after(() => cluster?.close());

const manifests = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: cart-a, namespace: shop, labels: {app: cart}}
spec:
  containers: [{name: app, image: cart:1, ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: cart-b, namespace: shop, labels: {app: cart}}
spec:
  containers: [{name: app, image: cart:1, ports: [{containerPort: 8080}]}]
`;

interface EndpointSliceList {
  items: { endpoints?: { addresses: string[]; conditions?: { ready?: boolean }; targetRef?: { name: string } }[] }[];
}

test('bad usage of npm run cluster is one line on stderr and a non-zero exit', async () => {
  for (const args of [['up', '--frob'], ['launch'], ['down', 'extra'], ['build', '--no-build']]) {
    const r = await runCommand(process.execPath, [CLUSTER_SCRIPT, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^cluster: (unknown|unexpected|--no-build)/);
  }
});

test('a state.json whose processes are gone is reported stale and cleaned by down, and no live process is touched', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kube-stale-'));
  try {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // exited: its pid is free
    // Our own pid is alive but is not a weft-kube process of this directory: down must not signal it.
    const pids = { etcd: gone, apiServer: process.pid, controllerManager: gone, node: gone };
    fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ dir, apiServerUrl: 'https://127.0.0.1:1', pids }));
    const status = await runCommand(process.execPath, [CLUSTER_SCRIPT, 'status', '--dir', dir]);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /stale state\.json/);
    const down = await runCommand(process.execPath, [CLUSTER_SCRIPT, 'down', '--dir', dir]);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(fs.existsSync(path.join(dir, 'state.json')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('kubectl version shows the pinned Kubernetes release as the server', async (t) => {
  if (skip || !cluster) return t.skip(skip || 'no cluster');
  const r = await cluster.kubectl(['version', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout) as { serverVersion: { gitVersion: string }; clientVersion: { gitVersion: string } };
  assert.equal(v.serverVersion.gitVersion, PINNED);
  assert.equal(v.clientVersion.gitVersion, PINNED);
  assert.equal(cluster.version, PINNED);
});

test('up on a cluster that is already up says so and exits 0', async (t) => {
  if (skip || !cluster) return t.skip(skip || 'no cluster');
  const r = await runCommand(process.execPath, [CLUSTER_SCRIPT, 'up', '--dir', cluster.dir, '--no-build']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /already up/);
});

test('the controller manager lists both pods in the Service\'s EndpointSlice once their status says Ready', async (t) => {
  if (skip || !cluster) return t.skip(skip || 'no cluster');
  const c = cluster;
  const applied = await c.kubectl(['apply', '-f', '-'], manifests);
  assert.equal(applied.code, 0, applied.stderr);

  // Not ready yet: the slice exists (or soon will) but lists no ready address.
  await setPodStatus(c, 'shop', 'cart-a', { podIP: '10.1.0.11' });
  await setPodStatus(c, 'shop', 'cart-b', { podIP: '10.1.0.12' });
  const started = Date.now();
  const ready = await waitUntil('both addresses ready in the EndpointSlice', 10_000, async () => {
    const r = await c.kubectl(['get', 'endpointslices', '-n', 'shop', '-l', 'kubernetes.io/service-name=cart', '-o', 'json']);
    if (r.code !== 0) return undefined;
    const list = JSON.parse(r.stdout) as EndpointSliceList;
    const addrs = list.items.flatMap((s) => s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses).sort();
    return addrs.length === 2 ? addrs : undefined;
  });
  assert.deepEqual(ready, ['10.1.0.11', '10.1.0.12']);
  t.diagnostic(`EndpointSlice ready ${Date.now() - started} ms after the status patches`);

  // Not ready any more: the controller marks the address not ready.
  await setPodStatus(c, 'shop', 'cart-b', { podIP: '10.1.0.12', ready: false });
  await waitUntil('cart-b not ready in the EndpointSlice', 10_000, async () => {
    const r = await c.kubectl(['get', 'endpointslices', '-n', 'shop', '-l', 'kubernetes.io/service-name=cart', '-o', 'json']);
    const eps = (JSON.parse(r.stdout) as EndpointSliceList).items.flatMap((s) => s.endpoints ?? []);
    const b = eps.find((e) => e.targetRef?.name === 'cart-b');
    return b && b.conditions?.ready === false ? true : undefined;
  });

  // Namespace deletion completes (the pods bound to the node are finalised as a kubelet would).
  const deleted = await c.kubectl(['delete', 'namespace', 'shop', '--timeout=60s']);
  assert.equal(deleted.code, 0, deleted.stderr);
  const gone = await c.kubectl(['get', 'namespace', 'shop']);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /NotFound/);
});

test('RBAC is on: a service account token may not list secrets', async (t) => {
  if (skip || !cluster) return t.skip(skip || 'no cluster');
  const c = cluster;
  await c.kubectl(['create', 'namespace', 'rbac-check']);
  const sa = await c.kubectl(['create', 'serviceaccount', 'reader', '-n', 'rbac-check']);
  assert.equal(sa.code, 0, sa.stderr);
  const token = await c.kubectl(['create', 'token', 'reader', '-n', 'rbac-check', '--audience', 'weft']);
  assert.equal(token.code, 0, token.stderr);
  const asReader = ['--kubeconfig', writeTokenKubeconfig(c, token.stdout.trim(), path.join(c.dir, 'reader.kubeconfig'))];
  const kubectl = path.join(c.dir, 'bin', 'kubectl');
  // The token authenticates (audience `weft` is accepted) ...
  const whoami = await runCommand(kubectl, [...asReader, 'auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
  assert.equal(whoami.code, 0, whoami.stderr);
  assert.equal(whoami.stdout, 'system:serviceaccount:rbac-check:reader');
  // ... and is not authorized.
  const secrets = await runCommand(kubectl, [...asReader, 'get', 'secrets', '-n', 'rbac-check']);
  assert.notEqual(secrets.code, 0);
  assert.match(secrets.stderr, /forbidden: User "system:serviceaccount:rbac-check:reader" cannot list resource "secrets"/);
});

test('down stops every process and the API server no longer answers', async (t) => {
  if (skip || !cluster) return t.skip(skip || 'no cluster');
  const c = cluster;
  const pids = Object.values(c.pids);
  assert.equal(pids.length, 4);
  // The binary behind DIR/bin/kubectl, and a copy of the admin kubeconfig: close() removes the directory.
  const weftKube = fs.realpathSync(path.join(c.dir, 'bin', 'kubectl'));
  const kubeconfig = path.join(path.dirname(c.dir), `${path.basename(c.dir)}.kubeconfig`);
  fs.copyFileSync(c.kubeconfig, kubeconfig);
  try {
    await c.close();
    for (const pid of pids) assert.equal(running(pid), false, `pid ${pid} still runs after down`);
    const r = await runCommand(weftKube, ['kubectl', '--kubeconfig', kubeconfig, 'get', 'ns', '--request-timeout=5s']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /was refused|connection refused|Unable to connect/);
  } finally {
    fs.rmSync(kubeconfig, { force: true });
  }
});

/** Whether `pid` runs (a zombie, exited but not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
