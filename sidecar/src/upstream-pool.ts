/**
 * Upstream connection pools: one `Http1Endpoint` (upstream-http1.ts, keep-alive HTTP/1.1
 * connections) per endpoint (`address:port`), shared by every listener and reused across requests
 * and config versions. Endpoints that leave the config are retired gracefully: idle connections
 * close at once, busy ones when their response completes.
 */
import type { UpstreamTls } from './config';
import type { TlsContexts } from './tls-contexts';
import { Http1Endpoint } from './upstream-http1';

export interface UpstreamPoolOptions {
  /** Most idle connections kept per endpoint (default 256). */
  readonly maxFreeSockets?: number;
  /**
   * An idle connection is closed after this long (default 4000 ms, below Node's 5 s server
   * keep-alive, so we usually close first instead of racing the upstream's close with a new request).
   */
  readonly idleTimeoutMs?: number;
  /** Mesh mTLS contexts (workload certificate, trust bundle): endpoints with `tls` use them. */
  readonly tls?: TlsContexts;
}

/** The pool key of an endpoint: `address:port`, IPv6 addresses bracketed. */
export function endpointKey(endpoint: { readonly address: string; readonly port: number }): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

/**
 * Owns upstream connections. All methods are synchronous. After `close()` or `destroy()`,
 * `endpointFor` still works but hands out a non-pooling endpoint, so a request racing shutdown is
 * served, not failed.
 */
export class UpstreamPool {
  private readonly endpoints = new Map<string, Http1Endpoint>();
  /**
   * The last answer of `endpointFor` per endpoint object (config endpoints are immutable), so the
   * request path does not build and hash a key string per pick. Stale once that pool is retired.
   */
  private readonly recent = new WeakMap<object, { readonly max: number; readonly e: Http1Endpoint }>();
  private readonly closeHooks: ((how: 'close' | 'destroy') => void)[] = [];
  private closed = false;

  constructor(private readonly options: UpstreamPoolOptions = {}) {}

  /** The mesh mTLS contexts upstream connections (HTTP/1, h2, TCP) originate with. */
  get tls(): TlsContexts | undefined {
    return this.options.tls;
  }

  /**
   * The HTTP/1.1 connections to `endpoint`, created on first use and reused afterwards. With
   * `maxRequestsPerConnection` > 0 (a cluster's limit), a separate pool whose connections close
   * after that many requests (pool key `address:port#N`).
   */
  endpointFor(endpoint: { readonly address: string; readonly port: number; readonly tls?: UpstreamTls }, maxRequestsPerConnection = 0): Http1Endpoint {
    const r = this.recent.get(endpoint);
    if (r && r.max === maxRequestsPerConnection && !r.e.retired) return r.e;
    // mTLS and plaintext connections to one endpoint never share a pool (`#mtls`); nor do TLS
    // settings that differ (a changed SAN list gets fresh connections).
    const tls = endpoint.tls;
    const mtls = tls ? `#mtls:${tls.sni ?? ''}:${tls.expectedSans.join(',')}` : '';
    const key = `${endpointKey(endpoint)}${mtls}${maxRequestsPerConnection > 0 ? `#${maxRequestsPerConnection}` : ''}`;
    let e = this.endpoints.get(key);
    if (!e) {
      e = new Http1Endpoint(endpoint.address, endpoint.port, {
        maxRequestsPerConnection,
        maxIdle: this.options.maxFreeSockets ?? 256,
        idleTimeoutMs: this.options.idleTimeoutMs ?? 4000,
        ...(tls ? { tls, ...(this.options.tls ? { contexts: this.options.tls } : {}) } : {}),
      });
      if (this.closed) {
        e.retire();
        return e;
      }
      this.endpoints.set(key, e);
    }
    this.recent.set(endpoint, { max: maxRequestsPerConnection, e });
    return e;
  }

  /** Runs `fn` once when the pool is closed or destroyed, told which (state tied to the pool's lifetime). */
  onClose(fn: (how: 'close' | 'destroy') => void): void {
    this.closeHooks.push(fn);
  }

  /** Keys of the endpoints that currently have a connection pool. */
  keys(): string[] {
    return [...this.endpoints.keys()];
  }

  /**
   * Retires every endpoint not in `keep` (see `endpointKey`; a pool keyed `address:port#N` belongs
   * or `address:port#mtls…` belongs to `address:port`). In-flight requests finish.
   */
  retain(keep: Iterable<string>): void {
    const wanted = new Set(keep);
    for (const [key, e] of this.endpoints) {
      const hash = key.indexOf('#');
      if (wanted.has(hash < 0 ? key : key.slice(0, hash))) continue;
      this.endpoints.delete(key);
      e.retire();
    }
  }

  /** Graceful: idle connections close now, busy ones after their response. Idempotent. */
  close(): void {
    this.closed = true;
    this.runCloseHooks('close');
    for (const e of this.endpoints.values()) e.retire();
    this.endpoints.clear();
  }

  /** Aborts every upstream connection, in flight or idle. Idempotent. */
  destroy(): void {
    this.closed = true;
    this.runCloseHooks('destroy');
    for (const e of this.endpoints.values()) e.destroy();
    this.endpoints.clear();
  }

  private runCloseHooks(how: 'close' | 'destroy'): void {
    for (const fn of this.closeHooks.splice(0)) fn(how);
  }
}
