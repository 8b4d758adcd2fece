/**
 * The certificate signing decision, independent of gRPC: token → identity, CSR → checks →
 * rate limit → issue. Every outcome is logged (identity, serial or reason) and counted
 * (`weft_ca_certificates_issued_total`, `weft_ca_certificate_refusals_total{reason}`); the
 * refusal's `status` is the gRPC code `ca-server.ts` returns.
 */
import * as prom from 'prom-client';
import { formatSpiffeId, type Logger } from '@weft/api';
import type { CertificateAuthority } from './ca-authority';
import { parseCsr } from './ca-csr';
import { RateLimiter, type RateLimit } from './ca-rate-limit';
import type { TokenValidator } from './token-validator';

/** gRPC status codes of refusals. */
export const RefusalStatus = { INVALID_ARGUMENT: 3, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNAUTHENTICATED: 16 } as const;

/** Why a request was refused: the `reason` label of the refusal counter. */
export type RefusalReason = 'unauthenticated' | 'invalid_csr' | 'identity_mismatch' | 'extra_san' | 'ca_requested' | 'extension_not_allowed' | 'rate_limited';

export class CertificateRefusal extends Error {
  readonly code = 'CA_REFUSED';
  constructor(readonly status: number, readonly reason: RefusalReason, message: string) {
    super(message);
    this.name = 'CertificateRefusal';
  }
}

export interface SigningRequest {
  /** The bearer token, without `Bearer `; undefined when none was sent. */
  readonly token: string | undefined;
  readonly csrPem: string;
  /** 0 for the default. */
  readonly validitySeconds: number;
  /** Caller's address, for logs. */
  readonly peer: string;
}

export interface SigningResult {
  readonly certChain: readonly string[];
  readonly rootBundle: string;
  readonly spiffeId: string;
  readonly serialHex: string;
}

export interface SigningServiceOptions {
  readonly ca: CertificateAuthority;
  readonly tokens: TokenValidator;
  readonly trustDomain: string;
  readonly rateLimit: RateLimit;
  readonly metrics: prom.Registry;
  readonly log: Logger;
}

export class SigningService {
  private readonly limiter: RateLimiter;
  private readonly issued: prom.Counter;
  private readonly refused: prom.Counter<'reason'>;

  constructor(private readonly opts: SigningServiceOptions) {
    this.limiter = new RateLimiter(opts.rateLimit);
    this.issued = new prom.Counter({ name: 'weft_ca_certificates_issued_total', help: 'Workload certificates signed.', registers: [opts.metrics] });
    this.refused = new prom.Counter({ name: 'weft_ca_certificate_refusals_total', help: 'Signing requests refused, by reason.', labelNames: ['reason'], registers: [opts.metrics] });
    const ca = opts.ca;
    new prom.Gauge({
      name: 'weft_ca_root_expiry_timestamp_seconds',
      help: 'When the active root certificate expires (Unix seconds).',
      registers: [opts.metrics],
      collect() {
        this.set(ca.rootNotAfter().getTime() / 1000);
      },
    });
  }

  /** Signs or throws `CertificateRefusal`. Logs and counts either way. */
  async sign(req: SigningRequest): Promise<SigningResult> {
    let spiffeId: string | undefined;
    try {
      if (!req.token) throw new CertificateRefusal(RefusalStatus.UNAUTHENTICATED, 'unauthenticated', 'no bearer token in the authorization metadata');
      const who = await this.opts.tokens.validate(req.token);
      if (!who.ok) throw new CertificateRefusal(RefusalStatus.UNAUTHENTICATED, 'unauthenticated', `token refused: ${who.errors.join('; ')}`);
      spiffeId = formatSpiffeId({ trustDomain: this.opts.trustDomain, namespace: who.value.namespace, serviceAccount: who.value.serviceAccount });
      const csr = parseCsr(req.csrPem);
      if (!csr.ok) throw new CertificateRefusal(RefusalStatus.INVALID_ARGUMENT, 'invalid_csr', `invalid CSR: ${csr.errors.join('; ')}`);
      const c = csr.value;
      if (c.requestsCa) throw new CertificateRefusal(RefusalStatus.PERMISSION_DENIED, 'ca_requested', 'the CSR asks for a CA certificate (basicConstraints CA:TRUE)');
      if (c.otherExtensions.length) throw new CertificateRefusal(RefusalStatus.PERMISSION_DENIED, 'extension_not_allowed', `the CSR requests extensions that are not allowed: ${c.otherExtensions.join(', ')}`);
      if (c.uris.length !== 1 || c.uris[0] !== spiffeId) {
        throw new CertificateRefusal(RefusalStatus.PERMISSION_DENIED, 'identity_mismatch',
          `the token proves ${spiffeId} but the CSR asks for ${c.uris.length ? c.uris.join(', ') : 'no URI SAN'}`);
      }
      if (c.dnsNames.length || c.otherSans) {
        throw new CertificateRefusal(RefusalStatus.PERMISSION_DENIED, 'extra_san', `the CSR may carry only the SPIFFE URI SAN ${spiffeId}, not ${[...c.dnsNames.map((d) => `DNS:${d}`), ...(c.otherSans ? [`${c.otherSans} other name(s)`] : [])].join(', ')}`);
      }
      if (!this.limiter.take(spiffeId)) {
        throw new CertificateRefusal(RefusalStatus.RESOURCE_EXHAUSTED, 'rate_limited',
          `rate limit for ${spiffeId}: ${this.opts.rateLimit.burst} at once, then ${this.opts.rateLimit.perSecond} per second`);
      }
      const ttlMs = req.validitySeconds > 0 ? Math.min(req.validitySeconds * 1000, this.opts.ca.workloadTtlMs) : this.opts.ca.workloadTtlMs;
      const cert = this.opts.ca.issueWorkload(c.spki, spiffeId, ttlMs);
      this.issued.inc();
      this.opts.log.info('certificate issued', { identity: spiffeId, serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), peer: req.peer });
      return { certChain: splitChain(cert.chainPem), rootBundle: this.opts.ca.trustBundlePem(), spiffeId, serialHex: cert.serialHex };
    } catch (e) {
      if (!(e instanceof CertificateRefusal)) throw e;
      this.refused.inc({ reason: e.reason });
      this.opts.log.warn('certificate refused', { identity: spiffeId ?? '(unauthenticated)', reason: e.reason, detail: e.message, peer: req.peer });
      throw e;
    }
  }
}

function splitChain(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
}
