/**
 * A small DER writer (X.690) for the few ASN.1 shapes X.509 certificates and PKCS#10 requests
 * need. It exists so the sidecar can build its CSR without node-forge (about 10 MB of RSS); the
 * control plane builds certificates with it too, so both sides encode the same way.
 *
 * Every function returns the complete TLV as a Buffer; nothing here parses.
 */

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given identifier octet. */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.of(tag), length(content.length), content]);
}

export const der = {
  seq: (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items)),
  set: (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items)),
  bool: (v: boolean): Buffer => tlv(0x01, Buffer.of(v ? 0xff : 0)),
  null: (): Buffer => Buffer.of(0x05, 0),
  /** A non-negative INTEGER from big-endian bytes or a small number, minimally encoded. */
  uint(value: Buffer | number): Buffer {
    let b = value;
    if (typeof b === 'number') {
      const hex = b.toString(16);
      b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
    }
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    b = b.subarray(i);
    if (b.length === 0) b = Buffer.of(0);
    if (b[0]! & 0x80) b = Buffer.concat([Buffer.of(0), b]);
    return tlv(0x02, b);
  },
  oid(dotted: string): Buffer {
    const parts = dotted.split('.').map(Number);
    const out: number[] = [parts[0]! * 40 + parts[1]!];
    for (const p of parts.slice(2)) {
      const enc: number[] = [p & 0x7f];
      for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) enc.unshift(0x80 | (v & 0x7f));
      out.push(...enc);
    }
    return tlv(0x06, Buffer.from(out));
  },
  /** BIT STRING with `unused` padding bits in the last byte. */
  bits: (content: Buffer, unused = 0): Buffer => tlv(0x03, Buffer.concat([Buffer.of(unused), content])),
  octets: (content: Buffer): Buffer => tlv(0x04, content),
  utf8: (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8')),
  /** UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5), whole seconds, UTC. */
  time(d: Date): Buffer {
    const iso = d.toISOString(); // 2026-01-02T03:04:05.678Z
    const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
    return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
  },
  /** `[n] EXPLICIT` around one element. */
  explicit: (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner),
  /** `[n] IMPLICIT` for a primitive (e.g. GeneralName URI = [6] IA5String). */
  implicitPrimitive: (n: number, content: Buffer): Buffer => tlv(0x80 | n, content),
  /** `[n] IMPLICIT` for a constructed type (e.g. the CSR's attributes = [0] IMPLICIT SET OF). */
  implicitConstructed: (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content),
};

/** Object identifiers used by Weft's certificates and requests. */
export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  extensionRequest: '1.2.840.113549.1.9.14',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** A Name (RDNSequence) of one attribute per RDN; `[]` is the empty subject SPIFFE leaves use. */
export function derName(attrs: ReadonlyArray<readonly [oid: string, value: string]>): Buffer {
  return der.seq(...attrs.map(([oid, value]) => der.set(der.seq(der.oid(oid), der.utf8(value)))));
}

/** One Extension: `SEQUENCE { extnID, critical DEFAULT FALSE, extnValue OCTET STRING }`. */
export function derExtension(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.seq(der.oid(oid), der.bool(true), der.octets(value)) : der.seq(der.oid(oid), der.octets(value));
}

/** subjectAltName value: URIs ([6]), DNS names ([2]) and IP addresses ([7]). */
export function derSubjectAltName(names: { uris?: readonly string[]; dns?: readonly string[]; ips?: readonly Buffer[] }): Buffer {
  return der.seq(
    ...(names.uris ?? []).map((u) => der.implicitPrimitive(6, Buffer.from(u, 'ascii'))),
    ...(names.dns ?? []).map((d) => der.implicitPrimitive(2, Buffer.from(d, 'ascii'))),
    ...(names.ips ?? []).map((ip) => der.implicitPrimitive(7, ip)),
  );
}

/** `AlgorithmIdentifier` of ecdsa-with-SHA256 (no parameters, RFC 5758). */
export const ECDSA_SHA256_ALGORITHM = der.seq(der.oid(OID.ecdsaWithSha256));

/** PEM armour around DER. */
export function toPem(label: string, body: Buffer): string {
  const b64 = body.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Every PEM block with the given label, decoded (in order); `[]` when there is none. */
export function fromPem(label: string, pem: string): Buffer[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, 'g');
  return [...pem.matchAll(re)].map((m) => Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64'));
}
