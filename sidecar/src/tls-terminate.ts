/**
 * Inbound mesh mTLS (Envoy's `DownstreamTlsContext` on a filter chain): the accepted socket, its
 * first bytes (the ClientHello detection read) put back, becomes the server side of a TLS
 * connection presenting the workload certificate and — with `requireClientCertificate` — accepting
 * only a client certificate that verifies against the trust bundle. Each refusal is counted by
 * reason (`weft_inbound_tls_refusals_total`) and logged; the connection is closed.
 *
 * The secure socket is a `tls.TLSSocket`, so `peerSpiffeId()` reads the client's identity on it
 * (and on `session.socket` under HTTP/2). Rotation: each handshake takes the current context.
 */
import type { Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { DownstreamTls } from './config';
import type { TlsContexts } from './tls-contexts';

/** Why an inbound connection was closed instead of served (the metric's `reason` label). */
export type TlsRefusalReason =
  | 'plaintext'
  | 'tls-not-mesh'
  | 'no-identity'
  | 'no-client-certificate'
  | 'bad-client-certificate'
  | 'handshake-failed';

export class InboundTlsRefusedError extends Error {
  readonly code = 'INBOUND_TLS_REFUSED';
  constructor(readonly reason: TlsRefusalReason, message: string) {
    super(message);
  }
}

/**
 * Capture mode: where the TLS connection was originally going, kept on its decrypted socket (which
 * has no file descriptor for SO_ORIGINAL_DST). A property, not a WeakMap, so it also reads through
 * HTTP/2's `session.socket` proxy.
 */
export const DECRYPTED_DESTINATION = Symbol('weft.decryptedDestination');

/** The original destination of `socket`: the kept one for a decrypted stream, else `read(socket)`. */
export function withDecryptedDestination<S, D>(read: (socket: S) => D | undefined): (socket: S) => D | undefined {
  return (socket) => ((socket as Record<symbol, D | undefined>)[DECRYPTED_DESTINATION] ?? read(socket));
}

/** Bounds a handshake: a client that stalls mid-handshake is closed (Envoy's default is 10 s). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Starts the server handshake on `socket` (paused; `head` already read from it). Calls exactly one
 * of `onSecure` (the handshake succeeded; the TLS socket is paused) or `onRefused` (the socket is
 * destroyed).
 */
export function terminateTls(
  socket: Socket,
  head: Buffer,
  spec: DownstreamTls,
  contexts: TlsContexts | undefined,
  onSecure: (secure: TLSSocket) => void,
  onRefused: (error: InboundTlsRefusedError) => void,
): void {
  const context = contexts ? contexts.context(spec.validation) : undefined;
  if (!context || context instanceof Error) {
    socket.destroy();
    return onRefused(new InboundTlsRefusedError('no-identity', context?.message ?? 'this sidecar has no workload identity'));
  }
  socket.unshift(head);
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: context,
    requestCert: spec.requireClientCertificate,
    // Decided below, so the refusal can say why.
    rejectUnauthorized: false,
    ALPNProtocols: [...spec.alpn],
  });
  let done = false;
  const timer = setTimeout(() => fail(new Error('handshake timed out')), HANDSHAKE_TIMEOUT_MS);
  const fail = (err: Error & { code?: string }): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    secure.destroy();
    socket.destroy();
    onRefused(new InboundTlsRefusedError(reasonOf(err), `${err.code ?? ''} ${err.message}`.trim()));
  };
  secure.once('error', fail);
  secure.once('close', () => fail(new Error('closed during the handshake')));
  // The accepted socket is half-open capable (TCP proxies forward a FIN), so a client that leaves
  // mid-handshake shows as an end, not an error or a close.
  const onEnd = (): void => fail(new Error('the client ended during the handshake'));
  secure.once('end', onEnd);
  secure.once('secure', () => {
    if (done) return;
    // With a required client certificate OpenSSL already refused an unverified one; this guards
    // a handshake that ended without one all the same.
    if (spec.requireClientCertificate) {
      // What a tls.Server does for its sockets (Node's onServerSocketSecure), which a TLSSocket made
      // around an accepted socket is not: OpenSSL's verdict on the chain, then `authorized`.
      const presented = Object.keys(secure.getPeerCertificate() ?? {}).length > 0;
      if (!presented) return fail(Object.assign(new Error('no client certificate'), { code: 'NO_CERTIFICATE' }));
      const verify = (secure as unknown as { _handle?: { verifyError?: () => Error | null } })._handle?.verifyError;
      const verifyError = verify ? verify.call((secure as unknown as { _handle: object })._handle) : new Error('cannot verify the client certificate');
      if (verifyError) return fail(Object.assign(new Error(`client certificate: ${(verifyError as Error & { code?: string }).code ?? verifyError.message}`), { code: 'CLIENT_CERT_UNVERIFIED' }));
      secure.authorized = true; // peerSpiffeId (identity.ts) trusts only verified peers
    }
    done = true;
    clearTimeout(timer);
    // As Node's tls.Server does for its sockets: the handshake is over (HTTP/2 waits on this).
    (secure as { secureConnecting?: boolean }).secureConnecting = false;
    secure.removeListener('error', fail);
    secure.removeListener('end', onEnd);
    secure.pause();
    onSecure(secure);
  });
}

function reasonOf(err: Error & { code?: string }): TlsRefusalReason {
  const code = `${err.code ?? ''} ${err.message}`;
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED|NO_CERTIFICATE/i.test(code)) return 'no-client-certificate';
  if (/CERTIFICATE_VERIFY_FAILED|UNKNOWN_CA|CLIENT_CERT_UNVERIFIED|certificate/i.test(code)) return 'bad-client-certificate';
  return 'handshake-failed';
}
