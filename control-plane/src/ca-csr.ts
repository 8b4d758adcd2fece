/**
 * Parsing and verifying a PKCS#10 request (RFC 2986) in the control plane: the signature must
 * verify with the request's own key, and the requested extensions are reported so the signing
 * API can refuse anything beyond one SPIFFE URI SAN.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { fromPem, OID, type Result, fail, ok } from '@weft/api';
import { children, content, contextChild, oidOf, parseDer, readExtensions, readSubjectAltNames, toDer } from './ca-asn1';

export interface ParsedCsr {
  readonly publicKey: KeyObject;
  /** SubjectPublicKeyInfo DER. */
  readonly spki: Buffer;
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  /** SAN entries of other kinds (IP, e-mail, ...). */
  readonly otherSans: number;
  /** basicConstraints with cA TRUE was requested. */
  readonly requestsCa: boolean;
  /** Requested extensions other than subjectAltName, keyUsage, extKeyUsage and a non-CA basicConstraints. */
  readonly otherExtensions: readonly string[];
}

const SIGNATURES: Record<string, string> = {
  [OID.ecdsaWithSha256]: 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.113549.1.1.11': 'sha256',
};

/** Parses and verifies one PEM CSR. Errors say what is wrong, for the refusal's reason. */
export function parseCsr(pem: string): Result<ParsedCsr> {
  const blocks = fromPem('CERTIFICATE REQUEST', pem);
  if (blocks.length !== 1) return fail(`want exactly one PEM "CERTIFICATE REQUEST" block, got ${blocks.length}`);
  let root;
  try {
    root = parseDer(blocks[0]!);
  } catch (e) {
    return fail(`the CSR is not valid DER: ${(e as Error).message}`);
  }
  const [info, alg, sig] = children(root);
  const fields = children(info);
  if (!info || !alg || !sig || fields.length < 3) return fail('the CSR is not a PKCS#10 CertificationRequest');
  const spki = toDer(fields[2]!);
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch (e) {
    return fail(`the CSR's public key does not parse: ${(e as Error).message}`);
  }
  const keyProblem = checkKey(publicKey);
  if (keyProblem) return fail(keyProblem);
  const hash = SIGNATURES[oidOf(children(alg)[0])];
  if (!hash) return fail(`unsupported CSR signature algorithm ${oidOf(children(alg)[0]) || '(none)'}`);
  const sigBytes = content(sig).subarray(1); // BIT STRING: the first byte counts unused bits
  if (!verify(hash, toDer(info), publicKey, sigBytes)) return fail('the CSR signature does not verify with its public key');

  const out = { uris: [] as string[], dnsNames: [] as string[], otherSans: 0, requestsCa: false, otherExtensions: [] as string[] };
  for (const attr of children(contextChild(info, 0))) {
    const [type, values] = children(attr);
    if (oidOf(type) !== OID.extensionRequest) continue;
    for (const ext of readExtensions(children(values)[0])) {
      if (ext.oid === OID.subjectAltName) {
        const sans = readSubjectAltNames(ext.value);
        out.uris.push(...sans.uris);
        out.dnsNames.push(...sans.dns);
        out.otherSans += sans.others;
      } else if (ext.oid === OID.basicConstraints) {
        const first = children(parseDer(ext.value))[0];
        if (first && content(first)[0] === 0xff) out.requestsCa = true;
      } else if (ext.oid !== OID.keyUsage && ext.oid !== OID.extKeyUsage) {
        out.otherExtensions.push(ext.oid);
      }
    }
  }
  return ok({ publicKey, spki, ...out });
}

function checkKey(key: KeyObject): string | undefined {
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    return d.namedCurve === 'prime256v1' || d.namedCurve === 'secp384r1' ? undefined : `unsupported EC curve ${d.namedCurve} (want P-256 or P-384)`;
  }
  if (key.asymmetricKeyType === 'rsa') return (d.modulusLength ?? 0) >= 2048 ? undefined : `RSA key of ${d.modulusLength} bits is too small (want >= 2048)`;
  return `unsupported key type ${key.asymmetricKeyType} (want ECDSA P-256)`;
}
