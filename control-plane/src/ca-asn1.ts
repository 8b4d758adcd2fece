/**
 * Reading DER in the control plane with node-forge's ASN.1 parser (the sidecar never loads
 * node-forge; it only writes DER, api/src/x509-der.ts). Helpers to walk the parsed tree.
 */
import forge from 'node-forge';

export type Asn1 = forge.asn1.Asn1;

/** Parses one DER element; trailing bytes or malformed input throw. BIT STRINGs are kept opaque. */
export function parseDer(bytes: Buffer): Asn1 {
  const asn1 = forge.asn1 as unknown as { fromDer(b: forge.util.ByteBuffer, o: object): Asn1 };
  return asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')), { strict: true, decodeBitStrings: false, parseAllBytes: true });
}

/** The element re-encoded as DER (identical to the input for DER-encoded input). */
export function toDer(node: Asn1): Buffer {
  return Buffer.from(forge.asn1.toDer(node).getBytes(), 'binary');
}

export function children(node: Asn1 | undefined): Asn1[] {
  return node && Array.isArray(node.value) ? (node.value as Asn1[]) : [];
}

/** A primitive's raw content bytes. */
export function content(node: Asn1 | undefined): Buffer {
  return node && typeof node.value === 'string' ? Buffer.from(node.value, 'binary') : Buffer.alloc(0);
}

export function oidOf(node: Asn1 | undefined): string {
  return node && node.type === forge.asn1.Type.OID && typeof node.value === 'string' ? forge.asn1.derToOid(node.value) : '';
}

/** The `[tag]` context-specific child of a constructed element, if any. */
export function contextChild(node: Asn1, tag: number): Asn1 | undefined {
  return children(node).find((c) => c.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && c.type === tag);
}

/** Extensions as `{oid, critical, value}` from a SEQUENCE OF Extension. */
export function readExtensions(seq: Asn1 | undefined): Array<{ oid: string; critical: boolean; value: Buffer }> {
  return children(seq).map((ext) => {
    const parts = children(ext);
    const critical = parts.length === 3 && content(parts[1])[0] === 0xff;
    return { oid: oidOf(parts[0]), critical, value: content(parts[parts.length - 1]) };
  });
}

/** GeneralNames of a subjectAltName value: URIs, DNS names, and a count of anything else. */
export function readSubjectAltNames(value: Buffer): { uris: string[]; dns: string[]; others: number } {
  const out = { uris: [] as string[], dns: [] as string[], others: 0 };
  for (const name of children(parseDer(value))) {
    if (name.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && name.type === 6) out.uris.push(content(name).toString('latin1'));
    else if (name.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && name.type === 2) out.dns.push(content(name).toString('latin1'));
    else out.others++;
  }
  return out;
}
