/**
 * A serving certificate from the mesh CA that stays current: issued at once for fixed DNS names
 * and IPs, re-issued at 80% of its lifetime and after the root changes (rotation), always for the
 * same private key. The CA port (15012, ca-server.ts) and the admission webhooks (15017,
 * webhook-server.ts) serve with one each; listeners hear of a new pair through `onChange`, and
 * `current()` is cheap (the same object until a renewal), so a server may call it per connection.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '@weft/api';
import type { CertificateAuthority } from './ca-authority';
import { ipBytes } from './ca-authority';

export interface ServingPair {
  /** PEM PKCS#8 private key. */
  readonly key: string;
  /** PEM chain: the leaf, then the intermediates. */
  readonly cert: string;
  readonly serialHex: string;
  readonly notAfter: Date;
}

/**
 * The names a server listening on `address` should carry: `extraDns`, the host itself (a name,
 * or an IP; every interface's address for a wildcard), and 127.0.0.1.
 */
export function servingNamesFor(address: string, extraDns: readonly string[]): { dnsNames: string[]; ips: string[] } {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  const ips = new Set<string>();
  const dns = new Set<string>(extraDns);
  if (host === '0.0.0.0' || host === '::' || host === '') {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ips.add(a.address.replace(/%.*$/, ''));
  } else if (isIP(host)) {
    ips.add(host);
  } else {
    dns.add(host);
  }
  ips.add('127.0.0.1');
  return { dnsNames: [...dns], ips: [...ips] };
}

export class ServingCertificate {
  private readonly key: KeyObject = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  private readonly keyPem = this.key.export({ type: 'pkcs8', format: 'pem' }) as string;
  private readonly listeners = new Set<(pair: ServingPair) => void>();
  private pair: ServingPair;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;

  constructor(private readonly ca: CertificateAuthority, private readonly names: { readonly dnsNames: readonly string[]; readonly ips: readonly string[] }, private readonly log: Logger) {
    this.pair = this.issue();
    this.unsubscribe = ca.onBundleChange(() => this.renew('root changed'));
  }

  /** The pair in force. */
  current(): ServingPair {
    return this.pair;
  }

  /** Called with each renewed pair. Returns an unsubscribe. */
  onChange(listener: (pair: ServingPair) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops renewing. Idempotent. */
  close(): void {
    clearTimeout(this.timer);
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.listeners.clear();
  }

  private issue(): ServingPair {
    const cert = this.ca.issueServing(this.key, this.names.dnsNames, this.names.ips.map(ipBytes));
    clearTimeout(this.timer);
    const ttl = cert.notAfter.getTime() - Date.now();
    this.timer = setTimeout(() => this.renew('80% of its lifetime'), Math.min(Math.max(ttl * 0.8, 1000), 2 ** 31 - 1));
    this.timer.unref();
    this.log.info('serving certificate issued', { serial: cert.serialHex, notAfter: cert.notAfter.toISOString(), dns: this.names.dnsNames, ips: this.names.ips });
    return { key: this.keyPem, cert: cert.chainPem, serialHex: cert.serialHex, notAfter: cert.notAfter };
  }

  private renew(why: string): void {
    this.log.info('renewing the serving certificate', { why });
    this.pair = this.issue();
    for (const l of this.listeners) l(this.pair);
  }
}
