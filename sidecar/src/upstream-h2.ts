/**
 * Upstream HTTP/2 (h2c, prior knowledge) sessions: one `http2.connect` session per endpoint
 * (`address:port`), shared by every stream sent there, as Envoy's HTTP/2 connection pool does with
 * its default of one connection per host. A session that closes, errors or receives GOAWAY is
 * forgotten, and the next stream opens a fresh one. Tied to an `UpstreamPool`'s lifetime: closing
 * the pool closes the sessions (in-flight streams finish), destroying it destroys them.
 */
import http2 from 'node:http2';
import type { UpstreamTls } from './config';
import type { TlsContexts } from './tls-contexts';
import { connectUpstream } from './tls-originate';
import { endpointKey, type UpstreamPool } from './upstream-pool';

/** A session and whether its connection is up yet (a stream failing before that is a connect failure). */
export interface UpstreamH2Session {
  readonly session: http2.ClientHttp2Session;
  /** True once the TCP connection and HTTP/2 handshake succeeded. */
  connected(): boolean;
}

/** Sessions by endpoint. All methods are synchronous. */
export class UpstreamH2Sessions {
  private readonly sessions = new Map<string, UpstreamH2Session>();
  private closed = false;

  constructor(private readonly contexts?: TlsContexts) {}

  /**
   * The session for `endpoint`, opened on first use. A session that has not connected within
   * `connectTimeoutMs` is destroyed, failing its streams.
   */
  sessionFor(endpoint: { readonly address: string; readonly port: number; readonly tls?: UpstreamTls }, connectTimeoutMs: number): UpstreamH2Session {
    const tls = endpoint.tls;
    // An mTLS session and an h2c one to the same endpoint are different sessions.
    const key = tls ? `${endpointKey(endpoint)}#mtls:${tls.sni ?? ''}:${tls.expectedSans.join(',')}` : endpointKey(endpoint);
    const known = this.sessions.get(key);
    if (known && !known.session.closed && !known.session.destroyed) return known;
    let up = false;
    // TCP_NODELAY: Node's http2.connect leaves Nagle on, which holds a small frame (a unary call's
    // DATA or trailers) until the previous one is acknowledged. Mesh mTLS (ALPN h2) where the
    // cluster resolved it for this endpoint (tls-originate.ts).
    const session = http2.connect(`http://${endpointKey(endpoint)}`, { createConnection: () => connectUpstream(endpoint, this.contexts, 'h2', { noDelay: true }).socket });
    const entry: UpstreamH2Session = { session, connected: () => up };
    const forget = (): void => {
      if (this.sessions.get(key) === entry) this.sessions.delete(key);
    };
    const timer = connectTimeoutMs > 0 ? setTimeout(() => session.destroy(new Error('connect timeout')), connectTimeoutMs) : undefined;
    session.once('connect', () => {
      up = true;
      clearTimeout(timer);
    });
    session.once('close', () => {
      clearTimeout(timer);
      forget();
    });
    session.once('goaway', forget);
    // Stream errors carry the failure to the request; the session-level event must not crash us.
    session.on('error', forget);
    // Only in-flight streams should keep the process alive, never an idle pooled session.
    session.unref();
    if (this.closed) session.close();
    else this.sessions.set(key, entry);
    return entry;
  }

  /** Sends GOAWAY on every session; in-flight streams finish. Idempotent. */
  close(): void {
    this.closed = true;
    for (const { session } of this.sessions.values()) session.close();
    this.sessions.clear();
  }

  /** Destroys every session now. Idempotent. */
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
