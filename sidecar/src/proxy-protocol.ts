/**
 * The PROXY protocol, version 2 (HAProxy's spec, "2.2. Binary header format"), which is how one
 * Weft sidecar tells a peer's inbound listener which app port a TCP connection is for in local mode
 * (there is no SO_ORIGINAL_DST without iptables; HTTP uses the `x-weft-target-port` header).
 *
 * Only the binary v2 form is read or written; TLVs are skipped; UNIX addresses are not supported.
 * Pure functions over bytes: no sockets here.
 */
import net from 'node:net';

/** `\r\n\r\n\0\r\nQUIT\n`: the 12 bytes every v2 header starts with. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED = 16;
/** A header longer than this (TLVs included) is refused rather than buffered. */
export const MAX_PROXY_HEADER_BYTES = 512;

export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeaderParse =
  /** The bytes so far are a prefix of a header: read more. */
  | { readonly kind: 'incomplete' }
  /** The bytes do not start with the signature: no header. */
  | { readonly kind: 'none' }
  /** A signature followed by something this reader refuses. */
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `LOCAL` (a health check by the proxy itself) carries no addresses. */
  | { readonly kind: 'header'; readonly length: number; readonly command: 'LOCAL' }
  | { readonly kind: 'header'; readonly length: number; readonly command: 'PROXY'; readonly source: ProxyAddress; readonly destination: ProxyAddress };

/** Reads a v2 header at the start of `data`. Never throws. */
export function parseProxyV2(data: Buffer): ProxyHeaderParse {
  const n = Math.min(data.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) if (data[i] !== PROXY_V2_SIGNATURE[i]) return { kind: 'none' };
  if (data.length < FIXED) return { kind: 'incomplete' };
  const verCmd = data[12]!;
  if (verCmd >> 4 !== 2) return { kind: 'invalid', reason: `PROXY header version ${verCmd >> 4} (only 2 is read)` };
  const command = verCmd & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: `PROXY header command ${command}` };
  const length = FIXED + data.readUInt16BE(14);
  if (length > MAX_PROXY_HEADER_BYTES) return { kind: 'invalid', reason: `PROXY header of ${length} bytes (at most ${MAX_PROXY_HEADER_BYTES})` };
  if (data.length < length) return { kind: 'incomplete' };
  if (command === 0) return { kind: 'header', length, command: 'LOCAL' };
  const family = data[13]! >> 4;
  const transport = data[13]! & 0x0f;
  if (transport !== 1) return { kind: 'invalid', reason: 'PROXY header for a transport other than TCP' };
  const body = data.subarray(FIXED, length);
  if (family === 1 && body.length >= 12) {
    return {
      kind: 'header', length, command: 'PROXY',
      source: { address: ipv4(body.subarray(0, 4)), port: body.readUInt16BE(8) },
      destination: { address: ipv4(body.subarray(4, 8)), port: body.readUInt16BE(10) },
    };
  }
  if (family === 2 && body.length >= 36) {
    return {
      kind: 'header', length, command: 'PROXY',
      source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
    };
  }
  return { kind: 'invalid', reason: `PROXY header address family ${family} with ${body.length} address bytes` };
}

/**
 * A v2 `PROXY` header for a TCP connection from `source` to `destination`. Both IPv4: the INET
 * form; otherwise INET6 (an IPv4 address becomes `::ffff:a.b.c.d`).
 */
export function encodeProxyV2(source: ProxyAddress, destination: ProxyAddress): Buffer {
  const v4 = net.isIPv4(source.address) && net.isIPv4(destination.address);
  const addrLen = v4 ? 4 : 16;
  const out = Buffer.alloc(FIXED + addrLen * 2 + 4);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21; // INET or INET6, STREAM
  out.writeUInt16BE(addrLen * 2 + 4, 14);
  const put = v4 ? putIpv4 : putIpv6;
  put(out, FIXED, source.address);
  put(out, FIXED + addrLen, destination.address);
  out.writeUInt16BE(source.port, FIXED + addrLen * 2);
  out.writeUInt16BE(destination.port, FIXED + addrLen * 2 + 2);
  return out;
}

function ipv4(b: Buffer): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

function ipv6(b: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // The long form, without `::` compression; chain matching parses addresses, not spellings.
  return groups.join(':');
}

function putIpv4(out: Buffer, at: number, address: string): void {
  address.split('.').forEach((octet, i) => (out[at + i] = Number(octet)));
}

function putIpv6(out: Buffer, at: number, address: string): void {
  const a = net.isIPv4(address) ? `::ffff:${address}` : address;
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined];
  const parse = (part: string | undefined): number[] => {
    if (!part) return [];
    return part.split(':').flatMap((g) => (g.includes('.') ? ipv4Groups(g) : [parseInt(g, 16)]));
  };
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(g & 0xffff, at + i * 2));
}

function ipv4Groups(dotted: string): number[] {
  const o = dotted.split('.').map(Number);
  return [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
}
