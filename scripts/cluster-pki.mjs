// The test cluster's certificates and kubeconfigs: keys from Node's crypto, certificates from
// openssl (Node cannot issue them).
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ClusterError } from './cluster-build.mjs';

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error) throw new ClusterError('openssl-missing', 'openssl is not installed: it makes the test cluster\'s certificates', 3);
  if (r.status !== 0) throw new ClusterError('openssl-failed', `openssl ${args[0]} failed: ${r.stderr.trim().split('\n')[0]}`);
}

function writeKey(path, type) {
  const { privateKey, publicKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  fs.writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return publicKey.export({ type: 'spki', format: 'pem' });
}

/**
 * A CA, the API server's serving certificate, client certificates for the admin
 * (O=system:masters) and the controller manager, a front-proxy CA and its client (the API
 * server's identity towards aggregated API servers, and the request-header CA the controller
 * manager's delegated authentication reads), and the service-account signing key pair, in `pki`.
 */
export function makePki(pki) {
  fs.mkdirSync(pki, { recursive: true });
  const cnf = (exts) => `[req]\ndistinguished_name = dn\n[dn]\n[ext]\n${exts.join('\n')}\n`;
  const ca = (name, cn) => {
    writeKey(join(pki, `${name}.key`), 'ec');
    fs.writeFileSync(join(pki, `${name}.cnf`), cnf(['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign, digitalSignature', 'subjectKeyIdentifier = hash']));
    openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-days', '3650', '-config', `${name}.cnf`, '-extensions', 'ext', '-out', `${name}.crt`], pki);
  };
  const leaf = (name, issuer, subject, exts) => {
    writeKey(join(pki, `${name}.key`), 'ec');
    fs.writeFileSync(join(pki, `${name}.cnf`), cnf(['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature, keyEncipherment', ...exts]));
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-config', `${name}.cnf`, '-out', `${name}.csr`], pki);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`, '-set_serial', `0x${createHash('sha1').update(name + Date.now()).digest('hex').slice(0, 16)}`,
      '-days', '3650', '-extfile', `${name}.cnf`, '-extensions', 'ext', '-out', `${name}.crt`], pki);
  };
  ca('ca', 'weft-test-cluster-ca');
  const sans = ['IP:127.0.0.1', 'IP:10.96.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default', 'DNS:kubernetes.default.svc', 'DNS:kubernetes.default.svc.cluster.local'];
  leaf('apiserver', 'ca', '/CN=kube-apiserver', ['extendedKeyUsage = serverAuth', `subjectAltName = ${sans.join(', ')}`]);
  leaf('admin', 'ca', '/O=system:masters/CN=kubernetes-admin', ['extendedKeyUsage = clientAuth']);
  leaf('controller-manager', 'ca', '/CN=system:kube-controller-manager', ['extendedKeyUsage = clientAuth']);
  ca('front-proxy-ca', 'weft-test-cluster-front-proxy-ca');
  leaf('front-proxy-client', 'front-proxy-ca', '/CN=front-proxy-client', ['extendedKeyUsage = clientAuth']);
  fs.writeFileSync(join(pki, 'sa.pub'), writeKey(join(pki, 'sa.key'), 'rsa'));
}

export function kubeconfig(server, pki, user) {
  const b64 = (f) => fs.readFileSync(join(pki, f)).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: weft-test',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64('ca.crt')}`,
    'users:',
    `- name: ${user}`,
    '  user:',
    `    client-certificate-data: ${b64(`${user}.crt`)}`,
    `    client-key-data: ${b64(`${user}.key`)}`,
    'contexts:',
    '- name: weft-test',
    '  context:',
    '    cluster: weft-test',
    `    user: ${user}`,
    'current-context: weft-test',
    '',
  ].join('\n');
}
