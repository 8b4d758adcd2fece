/**
 * Upstream mesh mTLS (Envoy's `UpstreamTlsContext`): a connection to an endpoint whose cluster
 * resolved `tls` for it (auto mTLS, proxy-snapshot.ts) is a TLS connection presenting the workload
 * certificate, verifying the server's chain against the trust bundle and its `spiffe://` URI SAN
 * against the cluster's expected identities. A wrong identity fails the handshake as a connect
 * failure with code `UPSTREAM_IDENTITY_MISMATCH`; an unverifiable chain with Node's code.
 *
 * A sidecar without a workload certificate connects in plaintext (it cannot do mTLS; a STRICT
 * destination then refuses it). Sessions are resumed per endpoint (TLS 1.3 tickets) where cheap.
 */
import net, { type Socket } from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import { MESH_MTLS_ALPN, type UpstreamTls } from './config';
import type { TlsContexts } from './tls-contexts';

export class UpstreamIdentityError extends Error {
  readonly code = 'UPSTREAM_IDENTITY_MISMATCH';
}

export interface UpstreamConnect {
  readonly address: string;
  readonly port: number;
  readonly tls?: UpstreamTls;
}

/** `protocol`: what runs inside (ALPN `h2`, `http/1.1`, or nothing for TCP), offered before the mesh marker. */
export function connectUpstream(
  endpoint: UpstreamConnect,
  contexts: TlsContexts | undefined,
  protocol: 'h2' | 'http/1.1' | 'tcp',
  options: { readonly noDelay?: boolean; readonly allowHalfOpen?: boolean; readonly onread?: net.OnReadOpts } = {},
): { readonly socket: Socket; readonly secure: boolean } {
  const t = endpoint.tls;
  const context = t && contexts?.hasIdentity() ? contexts.context(t.validation) : undefined;
  // `onread` (a caller's read buffer) applies to plaintext sockets only (`secure` false).
  if (!t || !context) return { socket: net.connect({ host: endpoint.address, port: endpoint.port, ...options }), secure: false };
  const { onread: _plaintextOnly, ...tlsOptions } = options;
  if (context instanceof Error) {
    // Identity but no trust bundle: fail as a connect failure rather than fall back to plaintext.
    const s = new net.Socket();
    process.nextTick(() => s.destroy(context));
    return { socket: s, secure: true };
  }
  // A session is resumed only under the same expectations: resumption skips the certificate, so a
  // session verified for one SAN list must never stand in for another.
  const key = `${endpoint.address}:${endpoint.port}|${protocol}|${t.sni ?? ''}|${t.expectedSans.join(',')}`;
  const alpn = protocol === 'tcp' ? [MESH_MTLS_ALPN] : [protocol, MESH_MTLS_ALPN];
  const session = contexts!.session(key);
  const socket = tls.connect({
    host: endpoint.address,
    port: endpoint.port,
    ...tlsOptions,
    secureContext: context,
    ...(t.sni ? { servername: t.sni } : {}),
    ALPNProtocols: [...new Set([...alpn, ...t.alpn])],
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => checkSpiffeId(cert.subjectaltname ?? '', t.expectedSans),
    ...(session ? { session } : {}),
  });
  socket.on('session', (s: Buffer) => contexts!.keepSession(key, s));
  // tls.connect does not take net's `noDelay`: without it Nagle holds small frames (an h2 unary
  // call's DATA or trailers) until the previous segment is acknowledged.
  if (options.noDelay) socket.setNoDelay(true);
  return { socket, secure: true };
}

/** `undefined` when `subjectAltName` (Node's `URI:…, DNS:…` list) holds one of `expected`. */
export function checkSpiffeId(subjectAltName: string, expected: readonly string[]): Error | undefined {
  const uris = [...subjectAltName.matchAll(/(?:^|, )URI:([^,\s]+)/g)].map((m) => m[1]!);
  if (expected.length === 0 || uris.some((u) => expected.includes(u))) return undefined;
  return new UpstreamIdentityError(`upstream identity ${uris.join(', ') || '(no URI SAN)'} is not one of ${expected.join(', ')}`);
}
