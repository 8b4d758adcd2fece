/**
 * What Envoy's `tls_inspector` reads from a TLS ClientHello: the ALPN protocols offered and the
 * SNI. The inbound listener tells mesh mTLS (ALPN `weft-mtls`, docs/protocols.md "mTLS") from an
 * app's own TLS passing through by them. Pure; reads only the first record.
 */

export interface ClientHelloInfo {
  readonly alpn: readonly string[];
  readonly serverName?: string;
}

/** The first TLS record's length is known once 5 bytes arrived; bigger records are not waited for. */
const MAX_RECORD = 16_384 + 5;

/**
 * `undefined` while the first record is incomplete; otherwise what it offers (empty when the
 * bytes are not a readable ClientHello: such a client is simply not mesh mTLS).
 */
export function parseClientHello(data: Buffer): ClientHelloInfo | undefined {
  if (data.length < 5) return undefined;
  const recordEnd = 5 + data.readUInt16BE(3);
  if (data.length < Math.min(recordEnd, MAX_RECORD)) return undefined;
  const b = data.subarray(0, Math.min(recordEnd, data.length));
  try {
    let i = 5;
    if (b[i] !== 1) return { alpn: [] }; // not a ClientHello
    i += 4 + 2 + 32; // handshake header, legacy_version, random
    i += 1 + b[i]!; // session id
    i += 2 + b.readUInt16BE(i); // cipher suites
    i += 1 + b[i]!; // compression methods
    if (i + 2 > b.length) return { alpn: [] };
    const end = Math.min(b.length, i + 2 + b.readUInt16BE(i));
    i += 2;
    let alpn: string[] = [];
    let serverName: string | undefined;
    while (i + 4 <= end) {
      const type = b.readUInt16BE(i);
      const len = b.readUInt16BE(i + 2);
      const ext = b.subarray(i + 4, Math.min(i + 4 + len, end));
      i += 4 + len;
      if (type === 16 && ext.length >= 2) alpn = protocolList(ext.subarray(2, 2 + ext.readUInt16BE(0)));
      else if (type === 0 && ext.length >= 5 && ext[2] === 0) serverName = ext.toString('latin1', 5, 5 + ext.readUInt16BE(3));
    }
    return { alpn, ...(serverName ? { serverName } : {}) };
  } catch {
    return { alpn: [] }; // truncated fields: not something we can read
  }
}

function protocolList(list: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; ) {
    const n = list[i]!;
    out.push(list.toString('latin1', i + 1, i + 1 + n));
    i += 1 + n;
  }
  return out;
}
