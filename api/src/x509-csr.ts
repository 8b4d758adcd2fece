/**
 * Workload keys and PKCS#10 certificate requests (RFC 2986) with Node's `crypto` only: the
 * sidecar builds its CSR here and must not load node-forge (docs/performance.md). The key is an
 * ECDSA P-256 key generated in memory; the request carries the SPIFFE ID as its only SAN, in an
 * `extensionRequest` attribute, and an empty subject (as SPIFFE X.509-SVIDs have).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { der, derExtension, derName, derSubjectAltName, ECDSA_SHA256_ALGORITHM, OID, toPem } from './x509-der';

export interface WorkloadKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM (what TLS contexts take). */
  readonly privateKeyPem: string;
}

/** A fresh ECDSA P-256 key (about 0.1 ms with Node's crypto). */
export function generateWorkloadKey(): WorkloadKey {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The PEM of a CSR for `spiffeId`, signed by `key` (ecdsa-with-SHA256). */
export function buildCsr(key: KeyObject | string, spiffeId: string): string {
  const privateKey = typeof key === 'string' ? createPrivateKey(key) : key;
  const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
  const extensions = der.seq(derExtension(OID.subjectAltName, true, derSubjectAltName({ uris: [spiffeId] })));
  const attributes = der.implicitConstructed(0, der.seq(der.oid(OID.extensionRequest), der.set(extensions)));
  const info = der.seq(der.uint(0), derName([]), spki, attributes);
  const signature = sign('sha256', info, privateKey);
  return toPem('CERTIFICATE REQUEST', der.seq(info, ECDSA_SHA256_ALGORITHM, der.bits(signature)));
}
