/**
 * Building and signing X.509 v3 certificates (RFC 5280) with the DER writer and Node's `crypto`
 * (ECDSA P-256 with SHA-256: about 20x faster than node-forge's RSA-2048, docs/performance.md).
 * Used by the control plane's CA for roots, its serving certificate and workload certificates.
 */
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { der, derExtension, derSubjectAltName, ECDSA_SHA256_ALGORITHM, OID, toPem } from './x509-der';

/** sha256WithRSAEncryption, for an operator's RSA intermediate (RFC 4055: NULL parameters). */
const RSA_SHA256_ALGORITHM = der.seq(der.oid('1.2.840.113549.1.1.11'), der.null());

export interface CertificateTemplate {
  /** DER of the subject Name (`derName([])` for a SPIFFE leaf). */
  readonly subject: Buffer;
  /** The subject's public key (KeyObject, or SubjectPublicKeyInfo DER). */
  readonly publicKey: KeyObject | Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** A CA certificate (basicConstraints cA, keyCertSign); `pathLen` limits intermediates below it. */
  readonly ca?: { readonly pathLen?: number };
  readonly sans?: { readonly uris?: readonly string[]; readonly dns?: readonly string[]; readonly ips?: readonly Buffer[] };
  /** Random when absent (16 bytes, positive). */
  readonly serial?: Buffer;
}

export interface Issuer {
  /** DER of the issuer's subject Name, byte for byte as in its certificate. */
  readonly subject: Buffer;
  readonly privateKey: KeyObject;
  /** The issuer's subjectKeyIdentifier (the AKI of what it signs). */
  readonly keyId: Buffer;
}

export interface SignedCertificate {
  readonly pem: string;
  readonly der: Buffer;
  /** Upper-case hex, as `openssl x509 -serial` and Node's `X509Certificate.serialNumber` print it. */
  readonly serialHex: string;
  readonly keyId: Buffer;
}

/** SHA-1 over the SubjectPublicKeyInfo: a key identifier (RFC 7093 allows any stable hash of the key). */
export function keyIdentifier(publicKey: KeyObject | Buffer): Buffer {
  return createHash('sha1').update(spkiDer(publicKey)).digest();
}

/** A random positive 128-bit serial (the top bit cleared so it stays 16 bytes in DER). */
export function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

/**
 * Signs `t` with `issuer`; without an issuer the certificate is self-signed by `selfKey` (a root).
 * Leaves get digitalSignature + serverAuth/clientAuth; a SAN is critical when the subject is empty.
 */
export function signCertificate(t: CertificateTemplate, issuer: Issuer | { selfKey: KeyObject }): SignedCertificate {
  const spki = spkiDer(t.publicKey);
  const keyId = keyIdentifier(spki);
  const serial = t.serial ?? randomSerial();
  const iss: Issuer = 'selfKey' in issuer ? { subject: t.subject, privateKey: issuer.selfKey, keyId } : issuer;
  const exts: Buffer[] = [
    derExtension(OID.basicConstraints, true, t.ca
      ? der.seq(der.bool(true), ...(t.ca.pathLen === undefined ? [] : [der.uint(t.ca.pathLen)]))
      : der.seq()),
    // keyUsage bits: digitalSignature(0) for leaves; + keyCertSign(5), cRLSign(6) for CAs.
    derExtension(OID.keyUsage, true, t.ca ? der.bits(Buffer.of(0x86), 1) : der.bits(Buffer.of(0x80), 7)),
  ];
  if (!t.ca) exts.push(derExtension(OID.extKeyUsage, false, der.seq(der.oid(OID.serverAuth), der.oid(OID.clientAuth))));
  const sans = t.sans ?? {};
  if ((sans.uris?.length ?? 0) + (sans.dns?.length ?? 0) + (sans.ips?.length ?? 0) > 0) {
    const emptySubject = t.subject.length === 2; // SEQUENCE {}
    exts.push(derExtension(OID.subjectAltName, emptySubject, derSubjectAltName(sans)));
  }
  exts.push(derExtension(OID.subjectKeyIdentifier, false, der.octets(keyId)));
  if (!('selfKey' in issuer)) exts.push(derExtension(OID.authorityKeyIdentifier, false, der.seq(der.implicitPrimitive(0, iss.keyId))));
  const algorithm = iss.privateKey.asymmetricKeyType === 'rsa' ? RSA_SHA256_ALGORITHM : ECDSA_SHA256_ALGORITHM;
  const tbs = der.seq(
    der.explicit(0, der.uint(2)),
    der.uint(serial),
    algorithm,
    iss.subject,
    der.seq(der.time(t.notBefore), der.time(t.notAfter)),
    t.subject,
    spki,
    der.explicit(3, der.seq(...exts)),
  );
  const signature = sign('sha256', tbs, iss.privateKey);
  const cert = der.seq(tbs, algorithm, der.bits(signature));
  return { pem: toPem('CERTIFICATE', cert), der: cert, serialHex: serial.toString('hex').toUpperCase(), keyId };
}

function spkiDer(key: KeyObject | Buffer): Buffer {
  if (Buffer.isBuffer(key)) return key;
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}
