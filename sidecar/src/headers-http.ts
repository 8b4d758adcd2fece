/**
 * Header rewriting at the proxy hop (RFC 9110 §7.6.1, Envoy's HTTP connection manager): what the
 * upstream sees of a request and what the client sees of a response. Pure functions; the inputs
 * are never mutated.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { TARGET_PORT_HEADER, type ListenerDirection } from './config';

/** Headers meaningful for one connection only; never forwarded. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** A copy of `headers` without hop-by-hop headers, including any named in `Connection`. */
export function withoutHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = new Set<string>();
  const connection = headers.connection;
  if (connection) {
    for (const token of connection.split(',')) {
      const t = token.trim().toLowerCase();
      if (t) named.add(t);
    }
  }
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  return out;
}

export interface UpstreamHeaderContext {
  readonly direction: ListenerDirection;
  /** The downstream peer's address (the connection's remote address). */
  readonly clientAddress: string | undefined;
  /** Set when the endpoint is a peer sidecar's inbound listener (`Endpoint.targetPort`). */
  readonly targetPort: number | undefined;
}

/**
 * The headers sent upstream for a request received with `headers`:
 * - hop-by-hop headers dropped, and `expect` (this hop already answered `100-continue`);
 * - `x-forwarded-for` gets the client address appended; `x-forwarded-proto` set to `http` if absent;
 * - `x-request-id` set to a fresh UUID if absent;
 * - `x-weft-target-port`: never passed through from the client. Outbound, it is set when the chosen
 *   endpoint has a `targetPort`; inbound, it has served route matching and is not shown to the app.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: UpstreamHeaderContext): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out.expect;
  delete out[TARGET_PORT_HEADER];
  if (ctx.direction === 'outbound' && ctx.targetPort !== undefined) out[TARGET_PORT_HEADER] = String(ctx.targetPort);

  const client = normalizeAddress(ctx.clientAddress);
  if (client) {
    const prior = headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
  }
  if (!headers['x-forwarded-proto']) out['x-forwarded-proto'] = 'http';
  if (!headers['x-request-id']) out['x-request-id'] = randomUUID();
  return out;
}

/** The headers sent to the client for an upstream response: hop-by-hop headers dropped. */
export function downstreamResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return withoutHopByHop(headers);
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
function normalizeAddress(address: string | undefined): string | undefined {
  return address?.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
