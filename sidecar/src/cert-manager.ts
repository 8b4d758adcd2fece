/**
 * The workload certificate manager (`IdentityProvider`): generates an ECDSA P-256 key in memory
 * (it never leaves the process), sends a CSR for the pod's SPIFFE ID with the service-account
 * token (re-read from `WEFT_TOKEN_PATH` at every request: it rotates) to the control plane's
 * 15012 over TLS, and keeps the certificate fresh:
 *
 * - renewal at 80% of the remaining lifetime (counted from when it arrived, since certificates
 *   are backdated), with ±5% jitter so pods started together do not renew together;
 * - a failure keeps the current certificate (connections and new handshakes go on with it) and
 *   retries with capped exponential backoff (1 s doubling to 60 s, equal jitter); an expired
 *   certificate is replaced as soon as the CA answers again;
 * - a new certificate is announced through `onChange`; TLS contexts are rebuilt for new
 *   handshakes only, open connections are not touched.
 *
 * Metrics: `weft_workload_certificate_expiry_timestamp_seconds`,
 * `weft_workload_certificate_rotations_total`, `weft_workload_certificate_rotation_failures_total`.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { buildCsr, generateWorkloadKey, type Logger } from '@weft/api';
import { createCertificate } from './cert-ca-client';
import { GrpcCallError } from './grpc-stream-h2';
import type { IdentityProvider, WorkloadCertificate } from './identity';
import type { Counter, Gauge, MetricsRegistry } from './metrics';

export interface CertManagerOptions {
  /** host:port of the CA (WEFT_CA_ADDRESS). */
  readonly caAddress: string;
  /** PEM file of the root(s) the control plane's serving certificate chains to (WEFT_CA_ROOT_CERT). */
  readonly rootCertPath: string;
  /** The service-account token file (WEFT_TOKEN_PATH). */
  readonly tokenPath: string;
  readonly spiffeId: string;
  readonly metrics: MetricsRegistry;
  readonly log: Logger;
  /** Extra roots to accept for the CA's serving certificate (the SDS trust bundle, after a root rotation). */
  readonly extraRoots?: () => string | undefined;
  /** Requested lifetime (0: the CA's default). */
  readonly validitySeconds?: number;
  /** Where renewal happens, as a fraction of the remaining lifetime (default 0.8) and its jitter (default 0.05). */
  readonly renewAt?: number;
  readonly jitter?: number;
  /** Retry backoff (default 1 s doubling to 60 s). */
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  readonly random?: () => number;
}

/** The CA sent something we cannot use (the call itself succeeded). */
export class CertificateResponseError extends Error {
  readonly code = 'CERTIFICATE_RESPONSE_INVALID';
}

export class CertManager implements IdentityProvider {
  private cert?: WorkloadCertificate;
  private serial = '';
  private readonly listeners = new Set<(c: WorkloadCertificate) => void>();
  private timer?: NodeJS.Timeout;
  private attempt = 0;
  private closed = false;
  private inFlight = false;
  private readonly expiry: Gauge;
  private readonly rotations: Counter;
  private readonly failures: Counter;
  private resolveReady!: () => void;
  /** Resolves when the first certificate is held. */
  readonly ready = new Promise<void>((r) => (this.resolveReady = r));

  constructor(private readonly opts: CertManagerOptions) {
    this.expiry = opts.metrics.gauge('weft_workload_certificate_expiry_timestamp_seconds', 'When the workload certificate in use expires (Unix seconds).');
    this.rotations = opts.metrics.counter('weft_workload_certificate_rotations_total', 'Workload certificates received (the first one included).');
    this.failures = opts.metrics.counter('weft_workload_certificate_rotation_failures_total', 'Failed attempts to get a workload certificate.');
    // Present from the start at 0, so a rate() over them works before the first event.
    this.rotations.inc({}, 0);
    this.failures.inc({}, 0);
  }

  current(): WorkloadCertificate | undefined {
    return this.cert;
  }

  onChange(listener: (cert: WorkloadCertificate) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** What `/config_dump` and `weft proxy-config secrets` show: never the key. */
  describe(): { spiffeId: string; serial: string; notBefore: string; notAfter: string; chainPem: string } | undefined {
    const c = this.cert;
    return c && { spiffeId: c.spiffeId, serial: this.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), chainPem: c.chainPem };
  }

  /** Starts the first request now. */
  start(): void {
    void this.fetch();
  }

  /** Stops renewing; the current certificate stays readable. Idempotent. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async fetch(): Promise<void> {
    if (this.closed || this.inFlight) return;
    this.inFlight = true;
    try {
      const cert = await this.request();
      if (this.closed) return;
      this.attempt = 0;
      this.cert = cert.workload;
      this.serial = cert.serial;
      this.rotations.inc({});
      this.expiry.set({}, Math.floor(cert.workload.notAfter.getTime() / 1000));
      const remaining = cert.workload.notAfter.getTime() - Date.now();
      const jitter = this.opts.jitter ?? 0.05;
      const fraction = (this.opts.renewAt ?? 0.8) * (1 + jitter * (2 * (this.opts.random ?? Math.random)() - 1));
      const delay = Math.max(0, Math.round(remaining * fraction));
      this.opts.log.info('workload certificate received', { spiffeId: cert.workload.spiffeId, serial: cert.serial, notAfter: cert.workload.notAfter.toISOString(), renewInMs: delay });
      this.schedule(delay);
      this.resolveReady();
      for (const l of this.listeners) l(cert.workload);
    } catch (e) {
      if (this.closed) return;
      this.failures.inc({});
      const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 1000, maxMs: 60_000 };
      const ceiling = Math.min(maxMs, baseMs * 2 ** this.attempt++);
      const delay = Math.round(ceiling / 2 + ((this.opts.random ?? Math.random)() * ceiling) / 2);
      const held = this.cert ? (this.cert.notAfter.getTime() > Date.now() ? 'keeping the current certificate' : 'the current certificate has EXPIRED') : 'no certificate yet';
      this.opts.log.warn('workload certificate request failed', { reason: describe(e), retryInMs: delay, state: held });
      this.schedule(delay);
    } finally {
      this.inFlight = false;
    }
  }

  private schedule(delay: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => void this.fetch(), Math.min(delay, 2 ** 31 - 1));
    this.timer.unref();
  }

  private async request(): Promise<{ workload: WorkloadCertificate; serial: string }> {
    const [token, root] = await Promise.all([readFile(this.opts.tokenPath, 'utf8'), readFile(this.opts.rootCertPath, 'utf8')]);
    const key = generateWorkloadKey();
    const extra = this.opts.extraRoots?.();
    const reply = await createCertificate(
      { address: this.opts.caAddress, ca: extra ? [root, extra] : [root], token: token.trim() },
      { csr: buildCsr(key.privateKey, this.opts.spiffeId), validitySeconds: this.opts.validitySeconds ?? 0 },
    );
    if (reply.certChain.length === 0) throw new CertificateResponseError('the CA returned no certificate');
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(reply.certChain[0]!);
    } catch (e) {
      throw new CertificateResponseError(`the CA returned a certificate that does not parse: ${(e as Error).message}`);
    }
    if (!leaf.checkPrivateKey(key.privateKey)) throw new CertificateResponseError('the certificate is not for our key');
    // An already expired certificate (a CA whose own certificate expired) would renew in a tight loop: back off instead.
    if (Date.parse(leaf.validTo) <= Date.now()) throw new CertificateResponseError(`the CA returned a certificate that expired on ${leaf.validTo}`);
    if (leaf.subjectAltName !== `URI:${this.opts.spiffeId}`) throw new CertificateResponseError(`the certificate names ${leaf.subjectAltName}, not ${this.opts.spiffeId}`);
    return {
      serial: leaf.serialNumber,
      workload: {
        keyPem: key.privateKeyPem,
        chainPem: reply.certChain.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join(''),
        spiffeId: this.opts.spiffeId,
        notBefore: new Date(leaf.validFrom),
        notAfter: new Date(leaf.validTo),
      },
    };
  }
}

function describe(e: unknown): string {
  if (e instanceof GrpcCallError) return `${e.status === 14 ? 'CA unreachable' : `CA refused (gRPC ${e.status})`}: ${e.details}`;
  return (e as Error).message;
}
