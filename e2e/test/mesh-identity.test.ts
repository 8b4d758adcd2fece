/**
 * Issue 4 end to end with nothing static (127.0.45.0/24): the control plane's CA issues every
 * sidecar its certificate over 15012 from the token it wrote, SDS carries the trust bundle,
 * PeerAuthentication STRICT makes the hop mTLS-only, and AuthorizationPolicy decides on the
 * principal the client's certificate proves. Then, under constant load: workload certificates
 * renew every few seconds and the root is rotated, and no request is lost.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as http from 'node:http';
import { join } from 'node:path';
import { startControlPlane, tokenPath, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { closeServer, eventually, getJson, httpApp, log, MeshClient, podYaml, steadyTraffic, tempDir, writeManifest } from './mesh';

const NS = 'shop';
const CP = '127.0.45.1';
const PODS = {
  frontend: { name: 'frontend-1', ip: '127.0.45.11', labels: { app: 'frontend' }, serviceAccount: 'frontend' },
  other: { name: 'other-1', ip: '127.0.45.12', labels: { app: 'other' }, serviceAccount: 'other' },
  backend: { name: 'backend-1', ip: '127.0.45.21', labels: { app: 'backend' }, serviceAccount: 'backend' },
};
const HOST = `backend.${NS}.svc.cluster.local`;
/** Short enough that certificates renew several times during the load test. */
const WORKLOAD_TTL_MS = 6000;

let dataDir: string;
let cp: ControlPlane;
let app: http.Server & { hits: number };
const sidecars = new Map<string, Sidecar>();
const clients: MeshClient[] = [];

const MESH = `${podYaml(NS, PODS.frontend)}---
${podYaml(NS, PODS.other)}---
${podYaml(NS, PODS.backend)}---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: ${NS}}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: backend-strict, namespace: ${NS}}
spec:
  selector: {matchLabels: {app: backend}}
  mtls: {mode: STRICT}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: backend-from-frontend, namespace: ${NS}}
spec:
  selector: {matchLabels: {app: backend}}
  action: ALLOW
  rules:
  - from: [{principals: ["spiffe://cluster.local/ns/${NS}/sa/frontend"]}]
`;

async function startPod(pod: (typeof PODS)[keyof typeof PODS]): Promise<Sidecar> {
  const s = await startSidecar({
    xdsAddress: `${CP}:${cp.xdsPort}`, podName: pod.name, namespace: NS, podIp: pod.ip, serviceAccount: pod.serviceAccount, trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log: log.child({ c: `sidecar ${pod.name}` }),
    identity: { tokenPath: tokenPath(dataDir, NS, pod.serviceAccount), rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), caAddress: `${CP}:${cp.caPort}` },
  });
  await s.ready;
  return s;
}

async function metrics(ip: string): Promise<string> {
  const res = await fetch(`http://${ip}:15020/metrics`);
  return res.text();
}

before(async () => {
  const dir = tempDir('mid-m');
  dataDir = tempDir('mid-d');
  writeManifest(dir, 'mesh.yaml', MESH);
  cp = await startControlPlane({
    manifestsDir: dir, xdsAddress: `${CP}:0`, debugAddress: `${CP}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    identity: { dataDir, caAddress: `${CP}:0`, workloadTtlMs: WORKLOAD_TTL_MS },
  });
  app = await httpApp(PODS.backend.ip, 8080, 'backend');
  for (const [k, pod] of Object.entries(PODS)) sidecars.set(k, await startPod(pod));
  // Auto mTLS: callers learn the backend has a sidecar with identity.
  await eventually('the frontend to reach the backend over mTLS', async () => (await new MeshClient(PODS.frontend.ip).get(HOST)).status === 200, 10_000);
});

after(async () => {
  for (const c of clients) c.close();
  for (const s of sidecars.values()) await s.close();
  await cp?.close();
  await closeServer(app);
});

test('certificates come from the CA: each sidecar holds its own SPIFFE identity signed by the root the control plane serves', async () => {
  const root = new X509Certificate(cp.ca!.rootPem());
  for (const [k, s] of sidecars) {
    const cert = s.identity!.current()!;
    const leaf = new X509Certificate(cert.chainPem);
    assert.equal(leaf.subjectAltName, `URI:spiffe://cluster.local/ns/${NS}/sa/${k}`);
    assert.ok(leaf.checkIssued(root) && leaf.verify(root.publicKey), `${k}'s certificate is signed by the CA's root`);
  }
});

test('STRICT + ALLOW from frontend: the frontend gets through over mTLS, another workload with a valid mesh certificate gets 403 and the denial is counted', async () => {
  const front = new MeshClient(PODS.frontend.ip);
  const other = new MeshClient(PODS.other.ip);
  clients.push(front, other);
  const ok = await front.get(HOST);
  assert.deepEqual(ok, { status: 200, body: 'backend' });
  const denied = await other.get(HOST);
  assert.deepEqual(denied, { status: 403, body: 'RBAC: access denied' });
  assert.match(await metrics(PODS.backend.ip), /^weft_authz_denials_total\{policy="none",action="ALLOW"\} [1-9]\d*$/m);
  // The hop was mTLS: the backend's inbound chain that served it terminates TLS.
  const dump = await getJson(`http://${PODS.backend.ip}:15000/config_dump`);
  assert.equal(dump.identity.spiffeId, `spiffe://cluster.local/ns/${NS}/sa/backend`);
});

test('a plaintext client (no sidecar) cannot reach the STRICT backend: the connection is refused and counted', async () => {
  const res = await new Promise<string>((resolve) => {
    const req = http.get({ host: PODS.backend.ip, port: 15006, path: '/', headers: { host: HOST, 'x-weft-target-port': '8080' }, timeout: 3000 }, (r) => resolve(`status ${r.statusCode}`));
    req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
  assert.match(res, /^error (ECONNRESET|EPIPE|socket hang up)/);
  assert.match(await metrics(PODS.backend.ip), /^weft_inbound_tls_refusals_total\{reason="[a-z_-]+"\} [1-9]\d*$/m);
});

test('under constant load, workload certificates renew every few seconds and the root is rotated: no request is lost', async () => {
  const client = new MeshClient(PODS.frontend.ip);
  clients.push(client);
  const serial = (k: string): string => new X509Certificate(sidecars.get(k)!.identity!.current()!.chainPem).serialNumber;
  const before = { frontend: serial('frontend'), backend: serial('backend') };
  const load = steadyTraffic(client, HOST, 2, 60_000);
  // Renewal at 80% ± 5% of a 6 s lifetime: a new certificate within ~5 s.
  await eventually('both sidecars to renew', () => serial('frontend') !== before.frontend && serial('backend') !== before.backend, 15_000);

  const oldRoot = new X509Certificate(cp.ca!.rootPem());
  const res = await fetch(`http://${CP}:${cp.debugPort}/debug/ca/rotate-root`, { method: 'POST' });
  assert.equal(res.status, 200);
  const newRoot = new X509Certificate(cp.ca!.rootPem());
  assert.notEqual(newRoot.fingerprint256, oldRoot.fingerprint256);
  // Every sidecar ends up on a certificate from the new root while trusting both roots.
  await eventually('every sidecar to hold a certificate signed by the new root', () =>
    [...sidecars.values()].every((s) => new X509Certificate(s.identity!.current()!.chainPem).checkIssued(newRoot)), 20_000);
  const dump = await getJson(`http://${PODS.frontend.ip}:15000/config_dump`);
  const bundle: string = dump.config.trustBundles.ROOTCA.caPem;
  assert.equal((bundle.match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'old and new roots both trusted during the overlap');
  // A few more renewals on the new root, still under load.
  const onNew = serial('backend');
  await eventually('another renewal after the rotation', () => serial('backend') !== onNew, 15_000);

  const result = await load.stop();
  assert.deepEqual(result.failures, [], `failed requests during rotation (of ${result.ok + result.failures.length})`);
  assert.ok(result.ok > 200, `enough load to mean something: ${result.ok} requests`);
});
