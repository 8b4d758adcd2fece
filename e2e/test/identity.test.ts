/**
 * Workload identity end to end, on real sockets and real TLS (127.0.41.0/24): the control plane's
 * CA, a sidecar's certificate manager, SDS delivery of the trust bundle, rotation without
 * dropping a connection, and a CA outage.
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import * as tls from 'node:tls';
import { join } from 'node:path';
import { startControlPlane, tokenPath, type ControlPlane } from '@weft/control-plane';
import { CertManager, MetricsRegistry, startSidecar, type WorkloadCertificate } from '@weft/sidecar';
import { copyFileSync } from 'node:fs';
import { eventually, log, podYaml, sleep, tempDir, writeManifest, runWeft } from './mesh';



const NS = 'shop';
const SPIFFE = 'spiffe://cluster.local/ns/shop/sa/frontend';

function manifests(ip: string): string {
  const dir = tempDir('id-m');
  writeManifest(dir, 'pods.yaml', podYaml(NS, { name: 'frontend-1', ip, labels: { app: 'frontend' }, serviceAccount: 'frontend' }));
  return dir;
}

async function controlPlane(dir: string, dataDir: string, cpIp: string, extra: { workloadTtlMs?: number; caPort?: number } = {}): Promise<ControlPlane> {
  return startControlPlane({
    manifestsDir: dir, xdsAddress: `${cpIp}:0`, debugAddress: `${cpIp}:0`, debounceMs: 20, log: log.child({ c: 'cp' }),
    identity: { dataDir, caAddress: `${cpIp}:${extra.caPort ?? 0}`, workloadTtlMs: extra.workloadTtlMs },
  });
}

const certsIn = (pem: string): X509Certificate[] => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));

test('a sidecar with identity holds its certificate before it turns ready, gets ROOTCA over SDS, and never shows its key', async () => {
  const dir = manifests('127.0.41.11');
  const dataDir = tempDir('id-d');
  const cp = await controlPlane(dir, dataDir, '127.0.41.10');
  const s = await startSidecar({
    xdsAddress: `127.0.41.10:${cp.xdsPort}`, podName: 'frontend-1', namespace: NS, podIp: '127.0.41.11', serviceAccount: 'frontend', trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log: log.child({ c: 'sidecar' }),
    identity: { tokenPath: tokenPath(dataDir, NS, 'frontend'), rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), caAddress: `127.0.41.10:${cp.caPort}` },
  });
  try {
    await s.ready;
    const cert = s.identity!.current()!;
    assert.ok(cert, 'ready implies a certificate');
    assert.equal(cert.spiffeId, SPIFFE);
    const leaf = new X509Certificate(cert.chainPem);
    assert.equal(leaf.subjectAltName, `URI:${SPIFFE}`);
    assert.ok(leaf.checkPrivateKey(require('node:crypto').createPrivateKey(cert.keyPem)));
    assert.equal((await fetch('http://127.0.41.11:15021/healthz/ready')).status, 200);

    const dump = await (await fetch('http://127.0.41.11:15000/config_dump')).text();
    assert.doesNotMatch(dump, /PRIVATE KEY/, 'the key is not in /config_dump');
    assert.ok(!dump.includes(cert.keyPem.split('\n')[1]!), 'not even a line of it');
    const parsed = JSON.parse(dump);
    assert.equal(parsed.identity.spiffeId, SPIFFE);
    assert.equal(parsed.identity.serial, leaf.serialNumber);
    assert.equal(certsIn(parsed.config.trustBundles.ROOTCA.caPem)[0]!.toString(), cp.ca!.rootPem());

    const metrics = await (await fetch('http://127.0.41.11:15020/metrics')).text();
    assert.match(metrics, new RegExp(`^weft_workload_certificate_expiry_timestamp_seconds ${Math.floor(Date.parse(leaf.validTo) / 1000)}$`, 'm'));
    assert.match(metrics, /^weft_workload_certificate_rotations_total 1$/m);

    // What a user sees: `weft proxy-config POD secrets` shows the certificate and the root, no key.
    const cli = await runWeft(['proxy-config', 'frontend-1', 'secrets', '-n', NS, '--control-plane', `127.0.41.10:${cp.debugPort}`]);
    assert.equal(cli.code, 0, cli.out);
    assert.match(cli.out, new RegExp(`default +workload certificate +${SPIFFE.replace(/[/.]/g, '\\$&')} +${leaf.serialNumber}`));
    assert.match(cli.out, /ROOTCA +trust bundle root +O=Weft, CN=Weft root CA/);
    assert.doesNotMatch(cli.out, /PRIVATE KEY/);

    // Root rotation: the sidecar's ROOTCA now holds both roots (SDS push, no restart).
    const oldRoot = cp.ca!.rootPem();
    const r = await fetch(`http://127.0.41.10:${cp.debugPort}/debug/ca/rotate-root`, { method: 'POST' });
    assert.equal(r.status, 200);
    await eventually('both roots in the sidecar trust bundle', async () => {
      const d = JSON.parse(await (await fetch('http://127.0.41.11:15000/config_dump')).text());
      const roots = certsIn(d.config.trustBundles?.ROOTCA?.caPem ?? '').map((c) => c.toString());
      return roots.length === 2 && roots.includes(oldRoot) && roots.includes(cp.ca!.rootPem());
    });
  } finally {
    await s.close();
    await cp.close();
  }
});

test('the sidecar is not ready while it has config but no certificate, and turns ready once it gets one', async () => {
  const dir = manifests('127.0.41.61');
  const dataDir = tempDir('id-d');
  const cp = await controlPlane(dir, dataDir, '127.0.41.60');
  const rootCopy = join(tempDir('id-r'), 'root.pem');
  const s = await startSidecar({
    xdsAddress: `127.0.41.60:${cp.xdsPort}`, podName: 'frontend-1', namespace: NS, podIp: '127.0.41.61', serviceAccount: 'frontend', trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log,
    // The root file is not there yet: every request fails until it is.
    identity: { tokenPath: tokenPath(dataDir, NS, 'frontend'), rootCertPath: rootCopy, caAddress: `127.0.41.60:${cp.caPort}` },
  });
  try {
    await eventually('all five types applied', async () => {
      const d = JSON.parse(await (await fetch('http://127.0.41.61:15000/config_dump')).text());
      return Object.keys(d.xds.versions).length === 5;
    });
    assert.equal((await fetch('http://127.0.41.61:15021/healthz/ready')).status, 503, 'config alone is not ready');
    assert.equal(s.identity!.current(), undefined);
    copyFileSync(join(dataDir, 'ca', 'root-cert.pem'), rootCopy);
    await s.ready;
    assert.equal((await fetch('http://127.0.41.61:15021/healthz/ready')).status, 200);
    assert.equal(s.identity!.current()!.spiffeId, SPIFFE);
  } finally {
    await s.close();
    await cp.close();
  }
});

test('a sidecar without WEFT_TOKEN_PATH runs without identity, as before', async () => {
  const dir = manifests('127.0.41.21');
  const cp = await startControlPlane({ manifestsDir: dir, xdsAddress: '127.0.41.20:0', debugAddress: '127.0.41.20:0', debounceMs: 20, log });
  const s = await startSidecar({
    xdsAddress: `127.0.41.20:${cp.xdsPort}`, podName: 'frontend-1', namespace: NS, podIp: '127.0.41.21', serviceAccount: 'frontend', trustDomain: 'cluster.local',
    drainTimeoutMs: 500, drainAcceptMs: 0, log,
  });
  try {
    await s.ready;
    assert.equal(s.identity, undefined);
    const d = JSON.parse(await (await fetch('http://127.0.41.21:15000/config_dump')).text());
    assert.equal(d.config.trustBundles, undefined, 'a control plane without a CA sends no ROOTCA');
  } finally {
    await s.close();
    await cp.close();
  }
});

/** A TLS server that serves the manager's current certificate and swaps it for new handshakes only (what mTLS does). */
function rotatingServer(m: CertManager, ip: string): Promise<tls.Server> {
  const ctx = (c: WorkloadCertificate) => ({ key: c.keyPem, cert: c.chainPem });
  const server = tls.createServer({ ...ctx(m.current()!) }, (sock) => sock.on('data', (d) => sock.write(d)));
  m.onChange((c) => server.setSecureContext(ctx(c)));
  return new Promise((r) => server.listen(0, ip, () => r(server)));
}

function connect(port: number, ip: string, rootPem: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: ip, port, ca: rootPem, checkServerIdentity: () => undefined }, () => resolve(s));
    s.once('error', reject);
  });
}

function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    s.once('data', (d) => resolve(String(d)));
    s.write(text);
  });
}

test('with a 3 s lifetime the certificate is renewed before it expires, and a connection held open across renewals keeps working', async () => {
  const dir = manifests('127.0.41.31');
  const dataDir = tempDir('id-d');
  const cp = await controlPlane(dir, dataDir, '127.0.41.30', { workloadTtlMs: 3000 });
  const metrics = new MetricsRegistry();
  const m = new CertManager({
    caAddress: `127.0.41.30:${cp.caPort}`, rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), tokenPath: tokenPath(dataDir, NS, 'frontend'),
    spiffeId: SPIFFE, metrics, log,
  });
  const serials: string[] = [];
  m.onChange(() => serials.push(m.describe()!.serial));
  m.start();
  let server: tls.Server | undefined;
  try {
    await m.ready;
    const first = m.current()!;
    server = await rotatingServer(m, '127.0.41.31');
    const port = (server.address() as { port: number }).port;
    const held = await connect(port, '127.0.41.31', cp.ca!.rootPem());
    const heldSerial = held.getPeerX509Certificate()!.serialNumber;
    assert.equal(heldSerial, m.describe()!.serial);
    await eventually('two renewals', () => serials.length >= 3, 8000);
    assert.equal(new Set(serials).size, serials.length, 'each renewal is a new certificate');
    assert.ok(m.current()!.notAfter > first.notAfter);
    // Renewed at ~80%: never after the previous one expired.
    assert.ok(Date.now() < m.current()!.notAfter.getTime());
    assert.equal(await echo(held, 'still here'), 'still here', 'the held connection was not dropped');
    assert.equal(heldSerial, serials[0], 'it was made with the first certificate');
    const fresh = await connect(port, '127.0.41.31', cp.ca!.rootPem());
    assert.equal(fresh.getPeerX509Certificate()!.serialNumber, m.describe()!.serial, 'new handshakes get the new certificate');
    held.destroy();
    fresh.destroy();
    assert.match((await metrics.render()), /^weft_workload_certificate_rotation_failures_total 0$/m);
  } finally {
    m.close();
    server?.close();
    await cp.close();
  }
});

test('CA unreachable: the current certificate is kept, retries back off, and an expired certificate recovers when the CA returns', async () => {
  const dir = manifests('127.0.41.41');
  const dataDir = tempDir('id-d');
  let cp = await controlPlane(dir, dataDir, '127.0.41.40', { workloadTtlMs: 2000, caPort: 15012 });
  const metrics = new MetricsRegistry();
  const m = new CertManager({
    caAddress: '127.0.41.40:15012', rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), tokenPath: tokenPath(dataDir, NS, 'frontend'),
    spiffeId: SPIFFE, metrics, log, backoff: { baseMs: 200, maxMs: 800 },
  });
  m.start();
  try {
    await m.ready;
    await cp.close();
    const held = m.current()!;
    await eventually('failed attempts while the CA is away', async () => /^weft_workload_certificate_rotation_failures_total [3-9]\d*$/m.test((await metrics.render())), 8000);
    assert.equal(m.current(), held, 'the certificate in use is kept');
    await sleep(Math.max(0, held.notAfter.getTime() - Date.now() + 100));
    assert.ok(m.current()!.notAfter.getTime() < Date.now(), 'it has expired meanwhile');
    cp = await controlPlane(dir, dataDir, '127.0.41.40', { workloadTtlMs: 2000, caPort: 15012 });
    await eventually('a fresh certificate after the CA returns', () => m.current()!.notAfter.getTime() > Date.now(), 5000);
    assert.notEqual(m.current(), held);
  } finally {
    m.close();
    await cp.close();
  }
});

for (const [random, edge] of [[0, 'early'], [1, 'late']] as const) {
  test(`renewal is scheduled at 80% of the remaining lifetime, within the ±5% jitter window (${edge} edge, fake timers)`, async () => {
    const dir = manifests(`127.0.41.5${random + 1}`);
    const dataDir = tempDir('id-d');
    const cp = await controlPlane(dir, dataDir, `127.0.41.5${random + 5}`, { workloadTtlMs: 3600_000 });
    mock.timers.enable({ apis: ['setTimeout'] });
    const metrics = new MetricsRegistry();
    const m = new CertManager({
      caAddress: `127.0.41.5${random + 5}:${cp.caPort}`, rootCertPath: join(dataDir, 'ca', 'root-cert.pem'), tokenPath: tokenPath(dataDir, NS, 'frontend'),
      spiffeId: SPIFFE, metrics, log, random: () => random,
    });
    try {
      m.start();
      await m.ready;
      const remaining = m.current()!.notAfter.getTime() - Date.now();
      const fraction = random === 0 ? 0.8 * 0.95 : 0.8 * 1.05;
      mock.timers.tick(Math.floor(remaining * fraction) - 5000);
      await immediate(50);
      assert.match((await metrics.render()), /^weft_workload_certificate_rotations_total 1$/m, 'not renewed before the window');
      mock.timers.tick(10_000);
      await until(async () => /^weft_workload_certificate_rotations_total 2$/m.test((await metrics.render())), 5000);
    } finally {
      m.close();
      mock.timers.reset();
      await cp.close();
    }
  });
}

/** Polls on setImmediate (setTimeout is mocked here) until `check` holds, by the real clock. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out (renewal did not happen inside the window)');
    await immediate(1);
  }
}

async function immediate(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}
