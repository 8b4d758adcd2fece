import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateWorkloadKey, parseNodeId, sidecarNodeId, silentLogger, TypeUrl } from '@weft/api';
import { CertificateAuthority } from '../src/ca-authority';
import { FileCaStore } from '../src/ca-store-files';
import { translate } from '../src/translate';
import { buildWorld } from '../src/world';
import { createCertificate, csrFor, startCa } from './ca-fixtures';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

function run(cmd: string, args: string[], cwd: string): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, timeout: 20_000 });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.stdin.end();
    child.on('close', (status) => resolve({ status, out }));
  });
}

const certsIn = (pem: string): X509Certificate[] => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? []).map((c) => new X509Certificate(c));

test('the generated root is kept across restarts (key file 0600) and keeps signing', async () => {
  const first = await startCa();
  const root1 = first.cp.ca!.rootPem();
  await first.cp.close();
  assert.equal(statSync(join(first.dataDir, 'ca', 'root-key.pem')).mode & 0o777, 0o600);
  assert.equal(statSync(join(first.dataDir, 'tokens', 'shop', 'frontend', 'token')).mode & 0o777, 0o600);
  const second = await startCa({}, { dataDir: first.dataDir, manifests: first.manifests });
  try {
    assert.equal(second.cp.ca!.rootPem(), root1, 'same root after a restart');
    assert.equal(certsIn(second.cp.ca!.trustBundlePem()).length, 1);
    const reply = await createCertificate(second.cp.caPort!, root1, csrFor(FRONTEND).csr, second.token('shop', 'frontend'));
    assert.ok(new X509Certificate(reply.cert_chain[0]!).checkIssued(new X509Certificate(root1)));
  } finally {
    await second.cp.close();
  }
});

test("an operator's intermediate (made with openssl) signs leaves whose chain verifies with openssl", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-ca-op-'));
  const steps: string[][] = [
    ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'root.key'],
    ['req', '-x509', '-new', '-key', 'root.key', '-subj', '/O=Example/CN=Example Root', '-days', '3650', '-out', 'root.pem',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'int.key'],
    ['req', '-new', '-key', 'int.key', '-subj', '/O=Example/CN=Example Weft Intermediate', '-out', 'int.csr'],
  ];
  for (const s of steps) assert.equal((await run('openssl', s, dir)).status, 0, s.join(' '));
  writeFileSync(join(dir, 'ext.cnf'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  const x = await run('openssl', ['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-CAcreateserial', '-days', '365', '-extfile', 'ext.cnf', '-out', 'int.pem'], dir);
  assert.equal(x.status, 0, x.out);

  // Bad inputs first: a key that does not match, and an intermediate without the chain to its root.
  const store = new FileCaStore(mkdtempSync(join(tmpdir(), 'weft-ca-d-')));
  await assert.rejects(CertificateAuthority.open({ store, operator: { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'root.key'), chainFile: join(dir, 'root.pem') }, log: silentLogger }),
    /--ca-key .*root\.key does not match the certificate in --ca-cert/);
  await assert.rejects(CertificateAuthority.open({ store, operator: { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key') }, log: silentLogger }),
    /not a self-signed root: give the certificates up to the root with --ca-chain/);
  writeFileSync(join(dir, 'leafish.cnf'), 'basicConstraints=critical,CA:FALSE\n');
  assert.equal((await run('openssl', ['x509', '-req', '-in', 'int.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '1', '-extfile', 'leafish.cnf', '-out', 'notca.pem'], dir)).status, 0);
  await assert.rejects(CertificateAuthority.open({ store, operator: { certFile: join(dir, 'notca.pem'), keyFile: join(dir, 'int.key'), chainFile: join(dir, 'root.pem') }, log: silentLogger }),
    /is not a CA certificate/);

  const f = await startCa({ operatorCa: { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key'), chainFile: join(dir, 'root.pem') } });
  try {
    assert.equal(f.cp.ca!.rootPem(), new X509Certificate(readFileSync(join(dir, 'root.pem'))).toString());
    const reply = await createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), csrFor(FRONTEND).csr, f.token('shop', 'frontend'));
    assert.equal(reply.cert_chain.length, 2, 'leaf + the intermediate');
    writeFileSync(join(dir, 'leaf.pem'), reply.cert_chain[0]!);
    writeFileSync(join(dir, 'chain.pem'), reply.cert_chain[1]!);
    const v = await run('openssl', ['verify', '-CAfile', 'root.pem', '-untrusted', 'chain.pem', 'leaf.pem'], dir);
    assert.equal(v.status, 0, v.out);
    assert.match(v.out, /leaf\.pem: OK/);
    const text = await run('openssl', ['x509', '-in', 'leaf.pem', '-noout', '-text'], dir);
    assert.match(text.out, /Issuer: O ?= ?Example, CN ?= ?Example Weft Intermediate/);
    assert.match(text.out, /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
  } finally {
    await f.cp.close();
  }
});

test('root rotation: both roots are trusted during the overlap, leaves come from the new root, the old one leaves after it', async () => {
  let now = Date.now();
  const store = new FileCaStore(mkdtempSync(join(tmpdir(), 'weft-ca-d-')));
  const ca = await CertificateAuthority.open({ store, log: silentLogger, workloadTtlMs: 3600e3, rootOverlapMs: 7200e3, now: () => now });
  const bundles: string[] = [];
  ca.onBundleChange((b) => bundles.push(b));
  const oldRoot = ca.rootPem();
  await ca.rotateRoot();
  const newRoot = ca.rootPem();
  assert.notEqual(newRoot, oldRoot);
  assert.deepEqual(certsIn(ca.trustBundlePem()).map((c) => c.toString()), [newRoot, oldRoot], 'new root first, old root kept');
  assert.equal(bundles.length, 1, 'the change was announced');
  const leaf = new X509Certificate(ca.issueWorkload(csrKey(), FRONTEND).leafPem);
  assert.ok(leaf.checkIssued(new X509Certificate(newRoot)) && leaf.verify(new X509Certificate(newRoot).publicKey));
  // The trust state survives a restart during the overlap.
  const again = await CertificateAuthority.open({ store, log: silentLogger, workloadTtlMs: 3600e3, rootOverlapMs: 7200e3, now: () => now });
  assert.equal(certsIn(again.trustBundlePem()).length, 2);
  now += 7200e3 + 1000;
  assert.deepEqual(certsIn(again.trustBundlePem()).map((c) => c.toString()), [newRoot], 'overlap over: only the new root');
  ca.close();
  again.close();
});

test('every sidecar gets the trust bundle as the ROOTCA Secret; proxyless clients and a world without a CA get none', () => {
  const world = { ...buildWorld([], new Set(), 1), trustBundlePem: 'PEM' };
  const sidecar = parseNodeId(sidecarNodeId('127.0.41.1', 'frontend-1', 'shop'));
  const secrets = translate(world, sidecar).get(TypeUrl.Secret)!;
  assert.deepEqual([...secrets.values()], [{ name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'PEM' } } }]);
  assert.equal(translate(buildWorld([], new Set(), 1), sidecar).get(TypeUrl.Secret)?.size ?? 0, 0);
});

function csrKey() {
  return generateWorkloadKey().privateKey;
}

test('a stored root that has expired is refused with what to do, not used to sign dead certificates', async () => {
  const store = new FileCaStore(mkdtempSync(join(tmpdir(), 'weft-ca-d-')));
  const first = await CertificateAuthority.open({ store, log: silentLogger, rootTtlMs: 3600e3 });
  first.close();
  await assert.rejects(CertificateAuthority.open({ store, log: silentLogger, now: () => Date.now() + 2 * 3600e3 }), /stored root in .* expired on .*: start with --rotate-root/);
  const rotated = await CertificateAuthority.open({ store, log: silentLogger, rotateRoot: true, now: () => Date.now() + 2 * 3600e3 });
  assert.notEqual(rotated.rootPem(), first.rootPem());
  assert.equal(certsIn(rotated.trustBundlePem()).length, 1, 'the expired root is not kept for an overlap');
  rotated.close();
});
