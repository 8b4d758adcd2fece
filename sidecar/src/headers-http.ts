/**
 * Header rewriting at the proxy hop (RFC 9110 §7.6.1, Envoy's HTTP connection manager): what the
 * upstream sees of a request and what the client sees of a response. Pure functions; the inputs
 * are never mutated.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { TARGET_PORT_HEADER, type ListenerDirection } from './config';
import { requestId } from './request-id';

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
 * - `x-request-id` set to a fresh id if absent (request-id.ts: UUID-shaped, unique, not secret);
 * - `x-weft-target-port`: never passed through from the client. Outbound, it is set when the chosen
 *   endpoint has a `targetPort`; inbound, it has served route matching and is not shown to the app.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: UpstreamHeaderContext): OutgoingHttpHeaders {
  const out = withoutHopByHop(headers);
  delete out.expect;
  delete out[TARGET_PORT_HEADER];
  return withForwarding(out, headers, ctx);
}

/**
 * HTTP/2: the same headers as `upstreamRequestHeaders`, built in one pass over the received ones
 * (the per-stream garbage is what limits the HTTP/2 path; docs/performance.md). Pseudo-headers
 * come from `pseudo`; `te: trailers` is kept (the one TE value HTTP/2 allows, and gRPC servers
 * expect it); `host` is dropped (`:authority` carries it).
 */
export function upstreamH2Headers(headers: IncomingHttpHeaders, ctx: UpstreamHeaderContext, pseudo: OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...pseudo };
  const connection = headers.connection;
  const named = connection ? new Set(connection.split(',').map((t) => t.trim().toLowerCase())) : undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'te' && value === 'trailers') out.te = 'trailers';
      continue;
    }
    if (name === 'host' || name === 'expect' || name === TARGET_PORT_HEADER || named?.has(name)) continue;
    out[name] = value;
  }
  return withForwarding(out, headers, ctx);
}

/**
 * `upstreamH2Headers` built straight from the received fields (name, value, ...) into fields: the
 * same fields dropped and added, repeated fields kept as separate fields rather than joined.
 * `headers` is the same request as an object (read for `connection`, `x-forwarded-*` and
 * `x-request-id`).
 */
export function upstreamH2Fields(received: readonly string[], headers: IncomingHttpHeaders, ctx: UpstreamHeaderContext, method: string, authority: string, path: string): string[] {
  const out = [':method', method, ':scheme', 'http', ':authority', authority, ':path', path];
  const connection = headers.connection;
  const named = connection ? new Set(connection.split(',').map((t) => t.trim().toLowerCase())) : undefined;
  for (let i = 0; i < received.length; i += 2) {
    const name = received[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'te' && received[i + 1] === 'trailers') out.push('te', 'trailers');
      continue;
    }
    if (name === 'host' || name === 'expect' || name === TARGET_PORT_HEADER || name === 'x-forwarded-for' || named?.has(name)) continue;
    out.push(name, received[i + 1]!);
  }
  if (ctx.direction === 'outbound' && ctx.targetPort !== undefined) out.push(TARGET_PORT_HEADER, String(ctx.targetPort));
  const client = normalizeAddress(ctx.clientAddress);
  const prior = headers['x-forwarded-for'];
  if (client) out.push('x-forwarded-for', prior ? `${prior}, ${client}` : client);
  else if (prior) out.push('x-forwarded-for', String(prior));
  if (!headers['x-forwarded-proto']) out.push('x-forwarded-proto', 'http');
  if (!headers['x-request-id']) out.push('x-request-id', requestId());
  return out;
}

/** Adds to `out` what this hop says about the request: target port, X-Forwarded-*, x-request-id. */
function withForwarding(out: OutgoingHttpHeaders, headers: IncomingHttpHeaders, ctx: UpstreamHeaderContext): OutgoingHttpHeaders {
  if (ctx.direction === 'outbound' && ctx.targetPort !== undefined) out[TARGET_PORT_HEADER] = String(ctx.targetPort);
  const client = normalizeAddress(ctx.clientAddress);
  if (client) {
    const prior = headers['x-forwarded-for'];
    out['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
  }
  if (!headers['x-forwarded-proto']) out['x-forwarded-proto'] = 'http';
  if (!headers['x-request-id']) out['x-request-id'] = requestId();
  return out;
}

/**
 * HTTP/2: response headers (or trailers) for the client in one pass: pseudo-headers and hop-by-hop
 * headers dropped, `status` (when given) as `:status`.
 */
export function downstreamH2Headers(headers: IncomingHttpHeaders, status?: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = status === undefined ? {} : { ':status': status };
  const connection = headers.connection;
  const named = connection ? new Set(connection.split(',').map((t) => t.trim().toLowerCase())) : undefined;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
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

/**
 * How a request body is framed on the upstream connection: `none` (no body), `length` (the head
 * carries the client's Content-Length), `chunked` (the client sent `Transfer-Encoding: chunked`;
 * the body is re-chunked hop by hop, since Transfer-Encoding is hop-by-hop).
 */
export type BodyFraming = 'none' | 'length' | 'chunked';

/**
 * An upstream request head, prepared once per request from the client's raw headers
 * (`[name, value, ...]`, as received, duplicates kept), with the rules of `upstreamRequestHeaders`.
 * `Host` and `x-weft-target-port` are left out of `lines`: each attempt (and a mirror copy) adds
 * its own (`requestHead`).
 */
export interface UpstreamHead {
  /** The client's Host value; `undefined` when it sent none. */
  readonly host: string | undefined;
  /** Every other forwarded header as `name: value\r\n` lines, in the client's order. */
  readonly lines: string;
  readonly framing: BodyFraming;
}

export function upstreamHead(raw: readonly string[], ctx: Omit<UpstreamHeaderContext, 'targetPort'> & { readonly authority?: string | undefined }): UpstreamHead {
  const named = connectionNamed(raw);
  let lines = '';
  let host: string | undefined;
  let forwardedFor: string | undefined;
  let proto = false;
  let hasRequestId = false;
  let framing: BodyFraming = 'none';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    switch (lower) {
      case 'host':
        host ??= value;
        continue;
      case 'transfer-encoding':
        framing = 'chunked';
        continue;
      case 'content-length':
        if (framing === 'none' && Number(value) > 0) framing = 'length';
        break;
      case 'x-forwarded-for':
        // An empty field adds no hop (as `upstreamRequestHeaders` reads it).
        if (value) forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        proto = true;
        break;
      case 'x-request-id':
        hasRequestId = true;
        break;
      case 'expect':
      case TARGET_PORT_HEADER:
        continue;
    }
    if (HOP_BY_HOP.has(lower) || named?.has(lower)) continue;
    lines += `${name}: ${value}\r\n`;
  }
  // With chunked framing a Content-Length was refused by the strict stage; never send both.
  if (framing === 'chunked') lines += 'transfer-encoding: chunked\r\n';
  const client = normalizeAddress(ctx.clientAddress);
  if (client) lines += `x-forwarded-for: ${forwardedFor === undefined ? client : `${forwardedFor}, ${client}`}\r\n`;
  else if (forwardedFor !== undefined) lines += `x-forwarded-for: ${forwardedFor}\r\n`;
  if (!proto) lines += 'x-forwarded-proto: http\r\n';
  if (!hasRequestId) lines += `x-request-id: ${requestId()}\r\n`;
  // An absolute-form target's authority replaces the Host field (RFC 9112 §3.2.2).
  return { host: ctx.authority ?? host, lines, framing };
}

/**
 * The whole request head for one attempt: request line, `Host` (`host`, default the client's),
 * the prepared lines, `x-weft-target-port` when the endpoint is a peer sidecar (outbound only),
 * and the empty line.
 */
export function requestHead(method: string, path: string, head: UpstreamHead, targetPort: number | undefined, host = head.host): string {
  const hostLine = host === undefined ? '' : `Host: ${host}\r\n`;
  const portLine = targetPort === undefined ? '' : `${TARGET_PORT_HEADER}: ${targetPort}\r\n`;
  return `${method} ${path} HTTP/1.1\r\n${hostLine}${head.lines}${portLine}\r\n`;
}

/** A response's raw headers (`[name, value, ...]`) without hop-by-hop ones, as a flat array for `writeHead`. */
export function downstreamRawHeaders(raw: readonly string[]): string[] {
  const named = connectionNamed(raw);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Without Connection-named headers, only names as long as a hop-by-hop one need lower-casing.
    if (named || HOP_BY_HOP_LENGTHS.has(name.length)) {
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || named?.has(lower)) continue;
    }
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/** The lengths of the `HOP_BY_HOP` names. */
const HOP_BY_HOP_LENGTHS: ReadonlySet<number> = new Set([...HOP_BY_HOP].map((n) => n.length));

/** Header names listed in the `Connection` headers of `raw`: hop-by-hop too (RFC 9110 §7.6.1). */
function connectionNamed(raw: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 10 && raw[i]!.toLowerCase() === 'connection') {
      for (const token of raw[i + 1]!.split(',')) {
        const t = token.trim().toLowerCase();
        if (t) (named ??= new Set()).add(t);
      }
    }
  }
  return named;
}
