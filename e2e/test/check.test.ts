/**
 * `weft check` against a running local-mode mesh (127.0.44.0/24): a real control plane with its
 * CA, a sidecar with identity, and the CLI as a user runs it. FIELD-NOTES 13: certificate and
 * root expiry are warned about 30 days ahead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startControlPlane, tokenPath, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { log, podYaml, serviceYaml, tempDir, writeManifest, eventually, runWeft } from './mesh';

const NS = 'shop';


function trafficPolicy(name: string, created: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: ${name}, namespace: ${NS}, creationTimestamp: "${created}"}
spec:
  targetRef: {kind: Service, name: frontend}
  routes:
  - name: default
    backends: [{service: frontend}]
`;
}

async function mesh(cpIp: string, podIp: string, operatorCa?: { certFile: string; keyFile: string; rootFile: string }): Promise<{ cp: ControlPlane; sidecar: Sidecar; dir: string; close(): Promise<void> }> {
  const dir = tempDir('check-m');
  writeManifest(dir, 'app.yaml', podYaml(NS, { name: 'frontend-1', ip: podIp, labels: { app: 'frontend' }, serviceAccount: 'frontend' }) + '---\n' +
    serviceYaml(NS, 'frontend', { app: 'frontend' }, [{ name: 'http', port: 8080, targetPort: 8080 }]));
  const dataDir = tempDir('check-d');
  const cp = await startControlPlane({
    manifestsDir: dir, xdsAddress: `${cpIp}:0`, debugAddress: `${cpIp}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    identity: { dataDir, caAddress: `${cpIp}:0`, ...(operatorCa ? { operatorCa: { certFile: operatorCa.certFile, keyFile: operatorCa.keyFile } } : {}) },
  });
  const sidecar = await startSidecar({
    xdsAddress: `${cpIp}:${cp.xdsPort}`, podName: 'frontend-1', namespace: NS, podIp, serviceAccount: 'frontend', trustDomain: 'cluster.local',
    drainTimeoutMs: 200, drainAcceptMs: 0, log: log.child({ c: 'sidecar' }),
    // With an operator's CA, WEFT_CA_ROOT_CERT is the operator's root (docs/operations.md).
    identity: { tokenPath: tokenPath(dataDir, NS, 'frontend'), rootCertPath: operatorCa?.rootFile ?? join(dataDir, 'ca', 'root-cert.pem'), caAddress: `${cpIp}:${cp.caPort}` },
  });
  await sidecar.ready;
  return { cp, sidecar, dir, close: async () => { await sidecar.close(); await cp.close(); } };
}

test('weft check passes on a healthy mesh and fails, naming it, on a policy that is not accepted', async () => {
  const m = await mesh('127.0.44.10', '127.0.44.11');
  try {
    const address = `127.0.44.10:${m.cp.debugPort}`;
    const ok = await runWeft(['check', '--control-plane', address]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /^√ reachable at 127\.0\.44\.10:\d+$/m);
    assert.match(ok.out, /^√ 1 of 1 proxy in sync$/m);
    assert.match(ok.out, /^√ root O=Weft, CN=.* valid for 36\d\d more days$/m);
    assert.match(ok.out, /^√ frontend-1\.shop: spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend, expires in 2[34] h$/m);
    assert.match(ok.out, /^Status check results are √$/m);

    // Two policies for one Service: the younger is Conflicted, and check fails on it.
    writeManifest(m.dir, 'p1.yaml', trafficPolicy('first', '2026-01-01T00:00:00Z'));
    writeManifest(m.dir, 'p2.yaml', trafficPolicy('second', '2026-02-01T00:00:00Z'));
    const bad = await eventually('check to see the conflict', async () => {
      const r = await runWeft(['check', '--control-plane', address]);
      return r.code === 1 ? r : undefined;
    });
    assert.match(bad.out, /^× TrafficPolicy\/shop\/second not accepted \(Conflicted\): Service shop\/frontend is already governed by the older TrafficPolicy first$/m);
    assert.match(bad.out, /^√ 1 of 2 policies accepted$/m);
    assert.match(bad.out, /^Status check results are × \(1 failed, 0 warnings\)$/m);
  } finally {
    await m.close();
  }
});

test('weft check warns about a root expiring within --warn-days, and fails when the control plane is unreachable', async () => {
  // An operator's root (made with openssl) that expires in 10 days.
  const dir = tempDir('check-ca');
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  };
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root.key']);
  openssl(['req', '-x509', '-new', '-key', 'root.key', '-subj', '/O=Example/CN=Short Root', '-days', '10', '-out', 'root.pem',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const m = await mesh('127.0.44.20', '127.0.44.21', { certFile: join(dir, 'root.pem'), keyFile: join(dir, 'root.key'), rootFile: join(dir, 'root.pem') });
  const address = `127.0.44.20:${m.cp.debugPort}`;
  try {
    const r = await runWeft(['check', '--control-plane', address]);
    assert.equal(r.code, 0, `warnings do not fail the check\n${r.out}`);
    assert.match(r.out, /^‼ root O=Example, CN=Short Root expires in 9 days \(.*\)$/m);
    assert.match(r.out, /^ {4}see: renew it in your PKI and restart with the new --ca-cert\/--ca-key\/--ca-chain$/m);
    assert.match(r.out, /^Status check results are √ \(1 warnings\)$/m);
    const quiet = await runWeft(['check', '--control-plane', address, '--warn-days', '5']);
    assert.match(quiet.out, /^√ root O=Example, CN=Short Root valid for 9 more days$/m);
  } finally {
    await m.close();
  }
  // The control plane is gone now: its debug port refuses connections.
  const down = await runWeft(['check', '--control-plane', address]);
  assert.equal(down.code, 1);
  assert.ok(down.out.includes(`× cannot reach the control plane at ${address} (http://${address}/debug/syncz): ECONNREFUSED\n`), down.out);
  assert.match(down.out, /^ {4}see: is `weft control-plane` running\? --control-plane takes its --debug-address$/m);
  const usage = await runWeft(['check', '--warn-days', 'soon']);
  assert.equal(usage.code, 2);
  assert.equal(usage.out.trim().split('\n').length, 1, usage.out);
});
