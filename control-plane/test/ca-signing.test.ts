import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ADS_SERVICE, adsPackageDefinition, buildCsr, der, derExtension, sidecarNodeId, TypeUrl, derName, derSubjectAltName, ECDSA_SHA256_ALGORITHM, fromPem, generateWorkloadKey, OID, toPem } from '@weft/api';
import { signToken } from '../src/token-jwt';
import { createCertificate, csrFor, metricsText, POD_YAML, startCa } from './ca-fixtures';
import { sign } from 'node:crypto';
import { readFileSync } from 'node:fs';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';

/** Runs openssl without blocking this process's event loop (the server under test lives here). */
function openssl(args: string[], input = ''): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('openssl', args, { timeout: 10_000 });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.stdin.end(input);
    child.on('close', (status) => resolve({ status, out }));
  });
}

async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as grpc.ServiceError;
  }
  assert.fail('expected the call to be refused');
}

test('issues a certificate for the identity the token proves; openssl verifies it against the root and shows the URI SAN', async () => {
  const f = await startCa();
  try {
    const { csr } = csrFor(FRONTEND);
    const reply = await createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), csr, f.token('shop', 'frontend'));
    assert.equal(reply.cert_chain.length, 1, 'a generated root signs directly: no intermediates');
    assert.equal(reply.root_bundle, f.cp.ca!.rootPem());
    const leaf = new X509Certificate(reply.cert_chain[0]!);
    assert.equal(leaf.subjectAltName, `URI:${FRONTEND}`);
    const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
    assert.ok(Math.abs(lifetime - (24 * 3600e3 + 5 * 60e3)) < 2000, `24 h + 5 min backdating, got ${lifetime} ms`);
    assert.ok(Date.parse(leaf.validFrom) <= Date.now() - 4 * 60e3, 'backdated for clock skew');
    writeFileSync(join(f.dataDir, 'leaf.pem'), reply.cert_chain[0]!);
    const v = await openssl(['verify', '-CAfile', join(f.dataDir, 'ca', 'root-cert.pem'), join(f.dataDir, 'leaf.pem')]);
    assert.equal(v.status, 0, v.out);
    // FIELD-NOTES 14: a peer whose clock is 60 s behind or ahead still accepts a fresh certificate
    // (openssl's -attime stands in for the other node's clock); 10 minutes behind does not.
    const now = Math.floor(Date.now() / 1000);
    for (const skew of [-60, 60]) {
      const at = await openssl(['verify', '-attime', String(now + skew), '-CAfile', join(f.dataDir, 'ca', 'root-cert.pem'), join(f.dataDir, 'leaf.pem')]);
      assert.equal(at.status, 0, `a clock ${skew} s off: ${at.out}`);
    }
    const early = await openssl(['verify', '-attime', String(now - 600), '-CAfile', join(f.dataDir, 'ca', 'root-cert.pem'), join(f.dataDir, 'leaf.pem')]);
    assert.notEqual(early.status, 0);
    assert.match(early.out, /certificate is not yet valid/);
    const text = (await openssl(['x509', '-in', join(f.dataDir, 'leaf.pem'), '-noout', '-text'])).out;
    assert.match(text, /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend/);
    assert.match(await metricsText(f.cp), /^weft_ca_certificates_issued_total 1$/m);
    assert.ok(f.lines.some((l) => l.msg === 'certificate issued' && l.identity === FRONTEND && l.serial === leaf.serialNumber));
  } finally {
    await f.cp.close();
  }
});

test('a CSR for another service account is refused PERMISSION_DENIED with the reason, logged and counted', async () => {
  const f = await startCa();
  try {
    const { csr } = csrFor('spiffe://cluster.local/ns/shop/sa/backend');
    const e = await refusal(createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), csr, f.token('shop', 'frontend')));
    assert.equal(e.code, grpc.status.PERMISSION_DENIED);
    assert.match(e.details, /the token proves spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend but the CSR asks for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/backend/);
    // An extra DNS SAN next to the right URI, and a CA request, are refused too.
    const key = generateWorkloadKey();
    const extra = csrWithExtensions(key.privateKeyPem, [derExtension(OID.subjectAltName, false, derSubjectAltName({ uris: [FRONTEND], dns: ['evil.example'] }))]);
    const e2 = await refusal(createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), extra, f.token('shop', 'frontend')));
    assert.equal(e2.code, grpc.status.PERMISSION_DENIED);
    assert.match(e2.details, /only the SPIFFE URI SAN .* not DNS:evil\.example/);
    const caReq = csrWithExtensions(key.privateKeyPem, [
      derExtension(OID.subjectAltName, true, derSubjectAltName({ uris: [FRONTEND] })),
      derExtension(OID.basicConstraints, true, der.seq(der.bool(true))),
    ]);
    const e3 = await refusal(createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), caReq, f.token('shop', 'frontend')));
    assert.equal(e3.code, grpc.status.PERMISSION_DENIED);
    assert.match(e3.details, /CA certificate/);
    const m = await metricsText(f.cp);
    assert.match(m, /weft_ca_certificate_refusals_total\{reason="identity_mismatch"\} 1/);
    assert.match(m, /weft_ca_certificate_refusals_total\{reason="extra_san"\} 1/);
    assert.match(m, /weft_ca_certificate_refusals_total\{reason="ca_requested"\} 1/);
    assert.ok(f.lines.some((l) => l.msg === 'certificate refused' && l.reason === 'identity_mismatch' && l.identity === FRONTEND));
  } finally {
    await f.cp.close();
  }
});

test('no token, a forged token, an expired token and a wrong audience are refused UNAUTHENTICATED; a tampered CSR INVALID_ARGUMENT', async () => {
  const f = await startCa();
  try {
    const port = f.cp.caPort!;
    const root = f.cp.ca!.rootPem();
    const { csr } = csrFor(FRONTEND);
    const signingKey = createPrivateKey(readFileSync(join(f.dataDir, 'tokens', 'signing-key.pem'), 'utf8'));
    const cases: Array<[string, string | undefined, RegExp]> = [
      ['no token', undefined, /no bearer token/],
      ['forged', signToken(generateWorkloadKey().privateKey, 'shop', 'frontend', Date.now(), 3600e3), /signature does not verify/],
      ['expired', signToken(signingKey, 'shop', 'frontend', Date.now() - 7200e3, 3600e3), /expired/],
      ['wrong audience', wrongAudience(signingKey), /audience \["kubernetes"\] does not include "weft"/],
    ];
    for (const [name, token, why] of cases) {
      const e = await refusal(createCertificate(port, root, csr, token));
      assert.equal(e.code, grpc.status.UNAUTHENTICATED, name);
      assert.match(e.details, why, name);
    }
    const bytes = fromPem('CERTIFICATE REQUEST', csr)[0]!;
    bytes[bytes.indexOf(Buffer.from('frontend'))] = 0x67; // "grontend": the signature no longer matches
    const tampered = toPem('CERTIFICATE REQUEST', bytes);
    const e = await refusal(createCertificate(port, root, tampered, f.token('shop', 'frontend')));
    assert.equal(e.code, grpc.status.INVALID_ARGUMENT);
    assert.match(e.details, /invalid CSR/);
    assert.match(await metricsText(f.cp), /weft_ca_certificate_refusals_total\{reason="unauthenticated"\} 4/);
  } finally {
    await f.cp.close();
  }
});

test('issuance is rate limited per identity (RESOURCE_EXHAUSTED), another identity is not affected', async () => {
  const f = await startCa({ rateLimit: { burst: 3, perSecond: 0.01 } });
  try {
    const root = f.cp.ca!.rootPem();
    for (let i = 0; i < 3; i++) await createCertificate(f.cp.caPort!, root, csrFor(FRONTEND).csr, f.token('shop', 'frontend'));
    const e = await refusal(createCertificate(f.cp.caPort!, root, csrFor(FRONTEND).csr, f.token('shop', 'frontend')));
    assert.equal(e.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.match(e.details, /rate limit for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend: 3 at once/);
    await createCertificate(f.cp.caPort!, root, csrFor('spiffe://cluster.local/ns/shop/sa/backend').csr, f.token('shop', 'backend'));
    assert.match(await metricsText(f.cp), /weft_ca_certificate_refusals_total\{reason="rate_limited"\} 1/);
  } finally {
    await f.cp.close();
  }
});

test('openssl s_client sees the serving chain on the CA port, signed by the root, with the service DNS name', async () => {
  const f = await startCa();
  try {
    const r = await openssl(['s_client', '-connect', `127.0.0.1:${f.cp.caPort}`, '-showcerts', '-CAfile', join(f.dataDir, 'ca', 'root-cert.pem'), '-alpn', 'h2'], '');
    assert.match(r.out, /Verify return code: 0 \(ok\)/, r.out);
    assert.match(r.out, /BEGIN CERTIFICATE/);
    const served = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(r.out)![0];
    const x = new X509Certificate(served);
    assert.match(x.subjectAltName!, /DNS:weft-control-plane\.weft-system\.svc/);
    assert.match(x.subjectAltName!, /IP Address:127\.0\.0\.1/);
    assert.ok(x.checkIssued(new X509Certificate(f.cp.ca!.rootPem())));
  } finally {
    await f.cp.close();
  }
});

function csrWithExtensions(keyPem: string, exts: Buffer[]): string {
  const key = createPrivateKey(keyPem);
  const spki = key.asymmetricKeyType && (require('node:crypto') as typeof import('node:crypto')).createPublicKey(key).export({ type: 'spki', format: 'der' });
  const attrs = der.implicitConstructed(0, der.seq(der.oid(OID.extensionRequest), der.set(der.seq(...exts))));
  const info = der.seq(der.uint(0), derName([]), spki as Buffer, attrs);
  return toPem('CERTIFICATE REQUEST', der.seq(info, ECDSA_SHA256_ALGORITHM, der.bits(sign('sha256', info, key))));
}

function wrongAudience(key: ReturnType<typeof createPrivateKey>): string {
  const good = signToken(key, 'shop', 'frontend', Date.now(), 3600e3);
  const [h, p] = good.split('.');
  const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
  claims.aud = ['kubernetes'];
  const body = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${sign('sha256', Buffer.from(body), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

void buildCsr;

test('ADS is served on the CA port too, over TLS verified against the root', async () => {
  const f = await startCa();
  try {
    const Client = grpc.makeGenericClientConstructor(adsPackageDefinition()[ADS_SERVICE]!, 'Ads');
    const client = new Client(`127.0.0.1:${f.cp.caPort}`, grpc.credentials.createSsl(Buffer.from(f.cp.ca!.rootPem())));
    const call = (client as any).StreamAggregatedResources();
    const response = await new Promise<any>((resolve, reject) => {
      call.on('data', resolve);
      call.on('error', reject);
      call.write({ node: { id: sidecarNodeId('127.0.41.1', 'frontend-1', 'shop') }, type_url: TypeUrl.Secret, resource_names: ['ROOTCA'] });
    });
    call.cancel();
    client.close();
    assert.equal(response.type_url, TypeUrl.Secret);
    assert.equal(response.resources.length, 1, 'the ROOTCA Secret');
  } finally {
    await f.cp.close();
  }
});

test('a token is written as soon as a Pod with a new service account appears', async () => {
  const f = await startCa();
  try {
    assert.throws(() => f.token('shop', 'payments'), /ENOENT/);
    writeFileSync(join(f.manifests, 'more.yaml'), POD_YAML('shop', 'payments-1', 'payments', '127.0.41.3'));
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const t = f.token('shop', 'payments');
        const claims = JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString());
        assert.equal(claims.sub, 'system:serviceaccount:shop:payments');
        assert.deepEqual(claims.aud, ['weft']);
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const reply = await createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), csrFor('spiffe://cluster.local/ns/shop/sa/payments').csr, f.token('shop', 'payments'));
    assert.equal(new X509Certificate(reply.cert_chain[0]!).subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/payments');
  } finally {
    await f.cp.close();
  }
});

test('tokens are rewritten before they expire (at 80% of their lifetime)', async () => {
  const f = await startCa({ tokenTtlMs: 2000 });
  try {
    const first = f.token('shop', 'frontend');
    const exp = (t: string): number => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()).exp;
    const deadline = Date.now() + 4000;
    while (f.token('shop', 'frontend') === first) {
      assert.ok(Date.now() < deadline, 'the token was not rewritten');
      await new Promise((r) => setTimeout(r, 50));
    }
    const second = f.token('shop', 'frontend');
    assert.ok(exp(second) > exp(first), 'the new token expires later');
    // The old one is still accepted until it expires; the new one certainly is.
    await createCertificate(f.cp.caPort!, f.cp.ca!.rootPem(), csrFor(FRONTEND).csr, second);
  } finally {
    await f.cp.close();
  }
});
