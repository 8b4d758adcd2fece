/**
 * TLS contexts for mesh mTLS (docs/architecture.md "TLS contexts"): one `SecureContext` per
 * (workload certificate, trust bundle) pair, built when a config arrives or the certificate
 * changes (`prepare`), and otherwise on the first handshake that needs it — never per connection —
 * and shared by inbound termination (tls-terminate.ts) and upstream origination (tls-originate.ts).
 *
 * A rotated certificate or a new trust bundle replaces the cached context: new handshakes use it,
 * connections already open keep the one they were made with (a TLS socket holds its context), so
 * nothing open is dropped. The private key stays in this process (never logged or dumped).
 */
import tls, { type SecureContext } from 'node:tls';
import type { Logger } from '@weft/api';
import type { IdentityProvider, WorkloadCertificate } from './identity';
import type { FilterChain, ProxyConfig, TrustBundle } from './config';

/** A TLS failure with a stable code (STYLE.md: one error class per failure). */
export class TlsUnavailableError extends Error {
  readonly code = 'TLS_UNAVAILABLE';
}

/** TLS 1.3 preferred, 1.2 the minimum (issue 4). */
export const MIN_TLS_VERSION = 'TLSv1.2';

export interface TlsContextsOptions {
  readonly identity?: IdentityProvider;
  /** The trust bundles of the config in force (SDS `ROOTCA`), read per new context. */
  readonly trustBundles: () => ReadonlyMap<string, TrustBundle> | undefined;
  readonly log?: Logger;
}

export class TlsContexts {
  /** By validation (trust bundle) name. */
  private readonly cache = new Map<string, { cert: WorkloadCertificate; caPem: string; context: SecureContext }>();
  private readonly sessions = new Map<string, Buffer>();
  /** The validation names the config in force uses: rebuilt ahead of handshakes on a change. */
  private names: ReadonlySet<string> = new Set();
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly opts: TlsContextsOptions) {
    // Rotation: drop the resumable sessions made under the old certificate and build the new
    // contexts now, so no handshake pays for it.
    this.unsubscribe = opts.identity?.onChange((cert) => {
      this.sessions.clear();
      this.prepare(this.names);
      opts.log?.info('workload certificate changed; new TLS handshakes use it', { spiffeId: cert.spiffeId, notAfter: cert.notAfter.toISOString() });
    });
  }

  /**
   * Builds (or keeps) the context of each validation name a new config uses, when the config
   * arrives (listener-manager.ts); a name that cannot be built yet is left for `context` to report.
   */
  prepare(names: Iterable<string>): void {
    this.names = new Set(names);
    for (const name of this.names) this.context(name);
  }

  /** Whether this sidecar has a workload certificate to present. */
  hasIdentity(): boolean {
    return this.opts.identity?.current() !== undefined;
  }

  /**
   * The context presenting the workload certificate (SDS `default`) and trusting the bundle named
   * `validation` (SDS `ROOTCA`); a `TlsUnavailableError` when either is missing. O(1) unless the
   * certificate or bundle changed since the last call.
   */
  context(validation: string): SecureContext | TlsUnavailableError {
    const cert = this.opts.identity?.current();
    if (!cert) return new TlsUnavailableError('no workload certificate yet');
    const caPem = this.opts.trustBundles()?.get(validation)?.caPem;
    if (!caPem) return new TlsUnavailableError(`no trust bundle ${validation}`);
    const c = this.cache.get(validation);
    if (c && c.cert === cert && c.caPem === caPem) return c.context;
    if (c && c.caPem !== caPem) this.sessions.clear();
    try {
      // sessionIdContext: a server asking for client certificates may resume sessions only with one.
      const context = tls.createSecureContext({ key: cert.keyPem, cert: cert.chainPem, ca: caPem, minVersion: MIN_TLS_VERSION, sessionIdContext: 'weft-mtls' });
      this.cache.set(validation, { cert, caPem, context });
      return context;
    } catch (err) {
      return new TlsUnavailableError(`cannot build a TLS context: ${(err as Error).message}`);
    }
  }

  /** A TLS session to resume for `key` (an upstream endpoint), if one was kept. */
  session(key: string): Buffer | undefined {
    return this.sessions.get(key);
  }

  /** Keeps the latest session ticket for `key` (bounded: one per endpoint). */
  keepSession(key: string, session: Buffer): void {
    if (this.sessions.size > 4096 && !this.sessions.has(key)) this.sessions.clear();
    this.sessions.set(key, session);
  }

  /** Stops following certificate changes. Idempotent. */
  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }
}

/** The trust bundle names `config`'s TLS chains and clusters refer to. */
export function validationNamesOf(config: ProxyConfig): Set<string> {
  const names = new Set<string>();
  const chainsOf = (d: { readonly connections?: { readonly chains: readonly FilterChain[]; readonly defaultChain?: FilterChain } }): FilterChain[] =>
    d.connections ? [...d.connections.chains, ...(d.connections.defaultChain ? [d.connections.defaultChain] : [])] : [];
  for (const l of [...config.listeners.values(), ...(config.tcpListeners?.values() ?? [])]) {
    for (const c of chainsOf(l)) if (c.filter.kind === 'terminate-tls') names.add(c.filter.tls.validation);
  }
  for (const c of config.clusters.values()) {
    if (c.tls) names.add(c.tls.validation);
    for (const m of c.transportSocketMatches ?? []) if (m.tls) names.add(m.tls.validation);
  }
  return names;
}
