/**
 * High availability against a real API server: two control-plane replicas both serve xDS; the
 * Lease elects one to write status; when the leader dies without releasing its Lease, the other
 * takes over within the lease duration (under 15 s with the defaults) and a sidecar connected to
 * it notices nothing. Pods' sidecars and apps run on 10.249.50.x (added to lo: the API server
refuses loopback endpoints), the replicas on 127.0.50.x.
 */
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { KubeClient, startControlPlane, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { closeServer, eventually, getJson, httpApp, log, MeshClient, steadyTraffic } from './mesh';
import { setPodStatus, type KubeCluster } from './kube-cluster';
import { podJson, serviceJson, startMeshCluster, type MeshCluster } from './kube-mesh';

const NS = 'ha';
const HOST = `echo.${NS}.svc.cluster.local:8080`;
const CLIENT = { name: 'client', ip: '10.249.50.10' };
const SERVER = { name: 'echo-0', ip: '10.249.50.11' };

let mesh: MeshCluster | undefined;
let cluster: KubeCluster | undefined;
let skip: string | undefined;
const cps = new Map<string, ControlPlane>();
let side: Sidecar | undefined;
let app: Awaited<ReturnType<typeof httpApp>> | undefined;
const clients: MeshClient[] = [];

const kubectl = (args: string[], input?: string): Promise<string> => mesh!.kubectl(args, input);

async function replica(name: string, ip: string): Promise<ControlPlane> {
  const client = await KubeClient.load({ kubeconfig: cluster!.kubeconfig });
  const cp = await startControlPlane({
    kube: { client, namespace: 'weft-system', identity: name },
    xdsAddress: `${ip}:0`, debugAddress: `${ip}:0`, debounceMs: 20, log: log.child({ c: name }),
    identity: { caAddress: `${ip}:0` },
  });
  cps.set(name, cp);
  return cp;
}

const leaderOf = async (cp: ControlPlane, ip: string): Promise<boolean> => (await getJson(`http://${ip}:${cp.debugPort}/debug/leader`)).leader;

async function holder(): Promise<string> {
  return (await kubectl(['get', 'lease', 'weft-control-plane-leader', '-n', 'weft-system', '-o', 'jsonpath={.spec.holderIdentity}'])).trim();
}

before(async () => {
  const m = await startMeshCluster([CLIENT.ip, SERVER.ip], [NS, 'weft-system']);
  if (typeof m === 'string') {
    skip = m;
    return;
  }
  mesh = m;
  cluster = m.cluster;
  await kubectl(['apply', '-f', '-'], serviceJson(NS, 'echo', { app: 'echo' }, 8080));
  for (const p of [CLIENT, SERVER]) {
    await kubectl(['apply', '-f', '-'], podJson(NS, p.name, { app: p.name === 'client' ? 'client' : 'echo' }));
    await setPodStatus(cluster, NS, p.name, { podIP: p.ip });
  }
  app = await httpApp(SERVER.ip, 8080, 'echo-0');
});

after(async () => {
  for (const c of clients) c.close();
  await side?.close();
  for (const cp of cps.values()) await cp.close();
  await closeServer(app);
  await mesh?.close();
});

test('two replicas: one leader through the Lease; it dies without releasing and the other leads within 15 s while its sidecar\'s traffic loses nothing', async (t) => {
  if (skip) return t.skip(skip);
  const a = await replica('cp-a', '127.0.50.1');
  await eventually('cp-a to lead', () => leaderOf(a, '127.0.50.1'), 10_000);
  const b = await replica('cp-b', '127.0.50.2');
  assert.equal(await holder(), 'cp-a');
  assert.equal(await leaderOf(b, '127.0.50.2'), false, 'one leader at a time');

  // Both serve xDS: the sidecar is connected to the follower.
  side = await startSidecar({ xdsAddress: `127.0.50.2:${b.xdsPort}`, podName: CLIENT.name, namespace: NS, podIp: CLIENT.ip, serviceAccount: 'default', trustDomain: 'cluster.local', drainTimeoutMs: 500, drainAcceptMs: 0, log: log.child({ c: 'sidecar' }) });
  await side.ready;
  const client = new MeshClient(CLIENT.ip);
  clients.push(client);
  await eventually('echo through the sidecar', async () => (await client.get(HOST)).status === 200, 10_000);
  const traffic = steadyTraffic(client, HOST, 5, 40_000);

  const killed = Date.now();
  a.destroy(); // no release: the Lease must lapse
  cps.delete('cp-a');
  await eventually('cp-b to lead', () => leaderOf(b, '127.0.50.2'), 20_000);
  const failover = Date.now() - killed;
  assert.equal(await holder(), 'cp-b');
  assert.ok(failover < 15_000, `failover took ${failover} ms (want < 15 s)`);

  // The new leader writes status.
  await kubectl(['apply', '-f', '-'], `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: echo, namespace: ${NS}}
spec:
  targetRef: {kind: Service, name: echo}
  routes: [{name: default, timeout: 5s, backends: [{service: echo, port: 8080}]}]
`);
  await eventually('Accepted written by the new leader', async () =>
    (await kubectl(['get', 'trafficpolicy', 'echo', '-n', NS, '-o', 'jsonpath={.status.conditions[?(@.type=="Accepted")].status}'])).trim() === 'True', 10_000);
  const { ok, failures } = await traffic.stop();
  assert.deepEqual(failures, [], 'no request failed during the failover');
  assert.ok(ok > 100, `steady traffic ran (${ok} requests)`);
});

test('a replica that stops gracefully releases the Lease: its successor takes over at once', async (t) => {
  if (skip) return t.skip(skip);
  const b = cps.get('cp-b')!;
  const c = await replica('cp-c', '127.0.50.3');
  await eventually('cp-b still leads', () => leaderOf(b, '127.0.50.2'), 5_000);
  const stopped = Date.now();
  await b.close();
  cps.delete('cp-b');
  await eventually('cp-c to lead', () => leaderOf(c, '127.0.50.3'), 10_000);
  const took = Date.now() - stopped;
  assert.ok(took < 4_000, `handover after a graceful stop took ${took} ms (want about one retry period, 2 s)`);
});

test('a root rotation on the leader reaches the other replica through the CA Secret; a follower refuses to rotate', async (t) => {
  if (skip) return t.skip(skip);
  const leader = cps.get('cp-c')!;
  const follower = await replica('cp-d', '127.0.50.4');
  assert.equal(follower.ca!.rootPem(), leader.ca!.rootPem(), 'both replicas sign with the root of the Secret');
  const refused = await fetch(`http://127.0.50.4:${follower.debugPort}/debug/ca/rotate-root`, { method: 'POST' });
  assert.equal(refused.status, 409);
  assert.match(await refused.text(), /not the leader/);
  const rotated = await fetch(`http://127.0.50.3:${leader.debugPort}/debug/ca/rotate-root`, { method: 'POST' });
  assert.equal(rotated.status, 200, await rotated.text());
  const newRoot = leader.ca!.rootPem();
  await eventually('the follower to sign with the new root and trust both', () =>
    follower.ca!.rootPem() === newRoot && follower.ca!.trustBundlePem() === leader.ca!.trustBundlePem(), 10_000);
  assert.equal((follower.ca!.trustBundlePem().match(/BEGIN CERTIFICATE/g) ?? []).length, 2, 'the old root stays trusted for the overlap');
});
