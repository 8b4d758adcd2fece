/**
 * Upstream HTTP/2 (h2c prior knowledge, or h2 over mesh mTLS) connections on the lean layer
 * (h2wire-connection.ts in the client role, h2-streams.ts): one connection per endpoint
 * (`address:port`), shared by every stream sent there, as Envoy's HTTP/2 connection pool does with
 * its default of one connection per host. Past the peer's SETTINGS_MAX_CONCURRENT_STREAMS a stream
 * waits on that connection for a slot. A connection that closes, fails or receives GOAWAY is
 * forgotten, and the next stream opens a fresh one (streams past the GOAWAY's last stream id are
 * refused, REFUSED_STREAM, and retried by forward-h2.ts like any refused stream). Tied to an
 * `UpstreamPool`'s lifetime: closing the pool closes the connections (in-flight streams finish),
 * destroying it destroys them.
 */
import type { UpstreamTls } from './config';
import { H2ClientSession } from './h2-streams';
import { DEFAULT_H2WIRE_OPTIONS, H2WireConnection } from './h2wire-connection';
import type { TlsContexts } from './tls-contexts';
import { connectUpstream } from './tls-originate';
import { endpointKey, type UpstreamPool } from './upstream-pool';

/** A connection and whether it is up yet (a stream failing before that is a connect failure). */
export interface UpstreamH2Session {
  readonly session: H2ClientSession;
  /** True once the TCP connection (and TLS handshake, for mTLS) succeeded. */
  connected(): boolean;
}

/** Connections by endpoint. All methods are synchronous. */
export class UpstreamH2Sessions {
  private readonly sessions = new Map<string, UpstreamH2Session>();
  private closed = false;

  constructor(private readonly contexts?: TlsContexts) {}

  /**
   * The connection for `endpoint`, opened on first use. One that has not connected within
   * `connectTimeoutMs` is destroyed, failing its streams.
   */
  sessionFor(endpoint: { readonly address: string; readonly port: number; readonly tls?: UpstreamTls }, connectTimeoutMs: number): UpstreamH2Session {
    const tls = endpoint.tls;
    // An mTLS connection and an h2c one to the same endpoint are different connections.
    const key = tls ? `${endpointKey(endpoint)}#mtls:${tls.sni ?? ''}:${tls.expectedSans.join(',')}` : endpointKey(endpoint);
    const known = this.sessions.get(key);
    if (known && known.session.canRequest) return known;
    let up = false;
    // Mesh mTLS (ALPN h2) where the cluster resolved it for this endpoint (tls-originate.ts).
    const { socket, secure } = connectUpstream(endpoint, this.contexts, 'h2', { noDelay: true });
    const forget = (): void => {
      if (this.sessions.get(key) === entry) this.sessions.delete(key);
    };
    const connection = new H2WireConnection(socket, 'client', { onGoaway: forget, onClose: forget }, DEFAULT_H2WIRE_OPTIONS);
    const session = new H2ClientSession(connection);
    const entry: UpstreamH2Session = { session, connected: () => up };
    const timer = connectTimeoutMs > 0 ? setTimeout(() => connection.destroy(), connectTimeoutMs) : undefined;
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      up = true;
      clearTimeout(timer);
    });
    socket.once('close', () => clearTimeout(timer));
    // Only in-flight streams (their downstream connections) should keep the process alive.
    socket.unref();
    if (this.closed) connection.close();
    else this.sessions.set(key, entry);
    return entry;
  }

  /** Sends GOAWAY on every connection; in-flight streams finish. Idempotent. */
  close(): void {
    this.closed = true;
    for (const { session } of this.sessions.values()) session.close();
    this.sessions.clear();
  }

  /** Destroys every connection now. Idempotent. */
  destroy(): void {
    this.closed = true;
    for (const { session } of this.sessions.values()) session.destroy();
    this.sessions.clear();
  }
}

const byPool = new WeakMap<UpstreamPool, UpstreamH2Sessions>();

/** The HTTP/2 sessions that live and die with `pool`. */
export function h2SessionsOf(pool: UpstreamPool): UpstreamH2Sessions {
  let sessions = byPool.get(pool);
  if (!sessions) {
    const s = new UpstreamH2Sessions(pool.tls);
    sessions = s;
    byPool.set(pool, s);
    pool.onClose((how) => (how === 'destroy' ? s.destroy() : s.close()));
  }
  return sessions;
}
