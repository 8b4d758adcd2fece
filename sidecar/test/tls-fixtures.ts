/**
 * SPIFFE test certificates made by the real `openssl` CLI (EC P-256): a root, and leaves with
 * `subjectAltName=URI:spiffe://cluster.local/ns/<ns>/sa/<sa>`, as the control plane's CA will
 * issue them. A static `IdentityProvider` hands a leaf to a sidecar and can swap it (rotation).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { IdentityProvider, WorkloadCertificate } from '../src/identity';
import type { TrustBundle } from '../src/config';

export interface TestLeaf extends WorkloadCertificate {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface TestCa {
  readonly dir: string;
  readonly caPem: string;
  readonly caPath: string;
  /** A workload certificate for `ns`/`sa`, signed by this root. */
  leaf(ns: string, sa: string, opts?: { readonly days?: number }): TestLeaf;
  /** `ROOTCA` → this root, as SDS would deliver it. */
  trust(): Map<string, TrustBundle>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

let serial = 0;

export function makeCa(name = 'weft-test-root'): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-ca-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', `/O=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const caPath = path.join(dir, 'ca.crt');
  const caPem = fs.readFileSync(caPath, 'utf8');
  return {
    dir,
    caPem,
    caPath,
    leaf(ns, sa, opts = {}) {
      const base = `leaf-${ns}-${sa}-${++serial}`;
      const id = `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
      fs.writeFileSync(path.join(dir, `${base}.ext`), `subjectAltName=critical,URI:${id}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\n`);
      openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', '/O=weft-workload'], dir);
      openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(Date.now() * 1000 + serial), '-days', String(opts.days ?? 1),
        '-extfile', `${base}.ext`, '-out', `${base}.crt`], dir);
      const certPath = path.join(dir, `${base}.crt`);
      const keyPath = path.join(dir, `${base}.key`);
      const now = Date.now();
      return {
        keyPem: fs.readFileSync(keyPath, 'utf8'),
        chainPem: fs.readFileSync(certPath, 'utf8'),
        spiffeId: id,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(now + (opts.days ?? 1) * 86_400_000),
        certPath,
        keyPath,
      };
    },
    trust: () => new Map([['ROOTCA', { name: 'ROOTCA', caPem }]]),
  };
}

/** A fixed identity that tests can replace (`set`), notifying subscribers as a rotation would. */
export class StaticIdentity implements IdentityProvider {
  private readonly listeners = new Set<(cert: WorkloadCertificate) => void>();
  constructor(private cert: WorkloadCertificate | undefined) {}

  current(): WorkloadCertificate | undefined {
    return this.cert;
  }

  onChange(listener: (cert: WorkloadCertificate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(cert: WorkloadCertificate): void {
    this.cert = cert;
    for (const l of this.listeners) l(cert);
  }
}
