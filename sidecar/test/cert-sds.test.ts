import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { derName, OID, signCertificate, TypeUrl } from '@weft/api';
import { buildProxyConfig } from '../src/config-from-xds';
import { decoded } from './xds-fixtures';

function rootPem(cn: string): string {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const now = Date.now();
  return signCertificate({ subject: derName([[OID.commonName, cn]]), publicKey: key, notBefore: new Date(now - 1000), notAfter: new Date(now + 3600e3), ca: {} }, { selfKey: key }).pem;
}

const secret = (name: string, inline: string) => decoded(TypeUrl.Secret, { name, validation_context: { trusted_ca: { inline_string: inline } } });
const build = (secrets: object[]) => buildProxyConfig({ listeners: [], routes: [], clusters: [], assignments: [], secrets: secrets as Record<string, unknown>[] });

test('the ROOTCA Secret becomes a trust bundle with every root (two during a rotation)', () => {
  const a = rootPem('old root');
  const b = rootPem('new root');
  const r = build([secret('ROOTCA', b + a)]);
  assert.ok(r.ok, JSON.stringify(r));
  const bundle = r.config.trustBundles!.get('ROOTCA')!;
  assert.equal(bundle.caPem, b + a);
});

test('a Secret whose bundle does not parse is refused with a detail naming it (the NACK)', () => {
  const good = rootPem('root');
  const broken = good.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!!!!!!!');
  for (const [pem, why] of [
    ['', /Secret "ROOTCA".validation_context\.trusted_ca\.inline_string: no PEM certificate/],
    ['not a certificate', /no PEM certificate/],
    [broken, /certificate 1 does not parse/],
  ] as const) {
    const r = build([secret('ROOTCA', pem)]);
    assert.equal(r.ok, false, `accepted ${JSON.stringify(pem).slice(0, 40)}`);
    assert.match((r as { errors: string[] }).errors.join('\n'), why);
  }
  const withKey = decoded(TypeUrl.Secret, { name: 'default', tls_certificate: { private_key: { inline_string: 'x' }, certificate_chain: { inline_string: good } } });
  const r = build([withKey]);
  assert.equal(r.ok, false);
  assert.match((r as { errors: string[] }).errors[0]!, /only validation_context Secrets are supported/);
});

test('the sidecar (certificate manager included) never loads node-forge', () => {
  require('../src/index');
  require('../src/cert-manager');
  const loaded = Object.keys(require.cache).filter((p) => p.includes(`${'node_modules'}/node-forge`));
  assert.deepEqual(loaded, []);
});
