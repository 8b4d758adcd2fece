/**
 * Envoy's filter chain matching, for the `FilterChainMatch` fields this sidecar implements, in
 * Envoy's order: destination port, then destination address (`prefix_ranges`, longest prefix
 * first), then transport protocol, then application protocols. At each step the chains that name
 * the connection's value are kept if there are any, else the chains that leave the field empty;
 * if neither exists, no chain matches (then the listener's default chain, or the connection is
 * closed). Pure and synchronous.
 */
import net from 'node:net';
import type { ChainMatch, ConnectionDispatch, FilterChain } from './config';

/** What is known about a connection when its chain is chosen. */
export interface ConnectionFacts {
  readonly destinationPort: number;
  readonly destinationAddress: string;
  /** `undefined` until detection ran. */
  readonly transportProtocol?: string;
  readonly applicationProtocols?: readonly string[];
}

/** The chains still possible once the destination (port and address) is known. */
export function chainsForDestination(d: ConnectionDispatch, port: number, address: string): FilterChain[] {
  return byPrefix(narrow(d.chains, (m) => m.destinationPort, (v) => v === port), address);
}

/**
 * Whether the choice among `chains` (with the default chain) depends on what the bytes are, so
 * detection must run. When it does not, the connection skips detection (an opaque port).
 */
export function needsDetection(chains: readonly FilterChain[], transport?: string): boolean {
  // Otherwise the first remaining chain always wins, or, with none, the default chain.
  // A known transport (a stream mTLS already decrypted) leaves only the application protocols.
  if (transport !== undefined) return byTransport(chains, transport).some((c) => c.match.applicationProtocols?.length);
  return chains.some((c) => c.match.transportProtocol !== undefined || c.match.applicationProtocols?.length);
}

function byTransport(chains: readonly FilterChain[], transport: string): FilterChain[] {
  return narrow(chains, (m) => m.transportProtocol, (v) => v === transport);
}

/** The chain for a connection whose protocol is known (`facts`), among `chains`; else the default. */
export function selectChain(chains: readonly FilterChain[], facts: ConnectionFacts, d: ConnectionDispatch): FilterChain | undefined {
  let c = byTransport(chains, facts.transportProtocol ?? 'raw_buffer');
  const protocols = facts.applicationProtocols ?? [];
  c = narrow(c, (m) => (m.applicationProtocols?.length ? m.applicationProtocols : undefined), (v) => v.some((p) => protocols.includes(p)));
  return c[0] ?? d.defaultChain;
}

function narrow<T>(chains: readonly FilterChain[], field: (m: ChainMatch) => T | undefined, matches: (v: T) => boolean): FilterChain[] {
  const named = chains.filter((c) => {
    const v = field(c.match);
    return v !== undefined && matches(v);
  });
  return named.length ? named : chains.filter((c) => field(c.match) === undefined);
}

/** `prefix_ranges`: the chains with the longest prefix containing `address`, else those with none. */
function byPrefix(chains: readonly FilterChain[], address: string): FilterChain[] {
  let best = -1;
  let winners: FilterChain[] = [];
  for (const c of chains) {
    const ranges = c.match.prefixRanges;
    if (!ranges?.length) continue;
    for (const r of ranges) {
      if (r.prefixLen <= best || !inRange(address, r.address, r.prefixLen)) continue;
      best = r.prefixLen;
      winners = [];
    }
    if (ranges.some((r) => r.prefixLen === best && inRange(address, r.address, r.prefixLen))) winners.push(c);
  }
  return best >= 0 ? winners : chains.filter((c) => !c.match.prefixRanges?.length);
}

/** Whether `address` lies in `base/prefixLen` (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv4). */
export function inRange(address: string, base: string, prefixLen: number): boolean {
  const a = bytesOf(address);
  const b = bytesOf(base);
  if (!a || !b || a.length !== b.length) return false;
  const full = Math.floor(prefixLen / 8);
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rest = prefixLen % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[full]! & mask) === (b[full]! & mask);
}

function bytesOf(address: string): number[] | undefined {
  const mapped = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (net.isIPv4(mapped)) return mapped.split('.').map(Number);
  if (!net.isIPv6(mapped)) return undefined;
  const [head, tail] = mapped.includes('::') ? (mapped.split('::') as [string, string]) : [mapped, undefined];
  const groups = (s: string | undefined): number[] => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const h = groups(head);
  const t = groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}
