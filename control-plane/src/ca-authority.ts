/**
 * The certificate authority: a signing certificate and key (a root it generated and keeps, or
 * the operator's root/intermediate), the trust bundle (the active root plus roots kept during a
 * rotation's overlap), and issuance of workload and serving certificates.
 *
 * Signing is synchronous (ECDSA P-256 with Node's crypto, ~0.1 ms); everything that touches the
 * store is async. Bundle changes (rotation, an old root's overlap ending) are announced through
 * `onBundleChange`, so the control plane can push the new `ROOTCA` Secret.
 */
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { derName, fromPem, keyIdentifier, OID, signCertificate, toPem, type Issuer, type Logger } from '@weft/api';
import { children, parseDer, readExtensions, toDer, content, contextChild } from './ca-asn1';
import { CaConfigError } from './ca-errors';
import type { CaStore, StoredKeyPair, TrustState } from './ca-store';

export interface OperatorCa {
  readonly certFile: string;
  readonly keyFile: string;
  /** Certificates above `certFile`, up to and including the root. */
  readonly chainFile?: string;
}

export interface CaOptions {
  readonly store: CaStore;
  /** Use this CA instead of a generated root. */
  readonly operator?: OperatorCa;
  /** Generate a new root now (the old one stays trusted for `rootOverlapMs`). Ignored with `operator`. */
  readonly rotateRoot?: boolean;
  /** Workload certificate lifetime (default 24 h). */
  readonly workloadTtlMs?: number;
  /** How long a replaced root stays in the trust bundle (default 2 x the workload lifetime). */
  readonly rootOverlapMs?: number;
  /** Lifetime of a generated root (default 10 years). */
  readonly rootTtlMs?: number;
  readonly log: Logger;
  /** For tests. */
  readonly now?: () => number;
}

export interface IssuedCertificate {
  /** The leaf, then the intermediates (not the root). */
  readonly chainPem: string;
  readonly leafPem: string;
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface CertificateSummary {
  /** One line: `O=Weft, CN=…`. */
  readonly subject: string;
  readonly serial: string;
  /** ISO 8601. */
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface CaDescription {
  /** The operator's CA (`--ca-cert`) rather than a generated root. */
  readonly operator: boolean;
  readonly workloadTtlSeconds: number;
  /** What signs workload certificates: the active root, or the operator's intermediate. */
  readonly signer: CertificateSummary & { readonly isRoot: boolean };
  /** The trust bundle: the active root first, then roots kept during a rotation's overlap. */
  readonly roots: readonly (CertificateSummary & { readonly active: boolean })[];
}

const HOUR = 3600_000;
/** Certificates start this far in the past: nodes whose clocks are behind still accept them (FIELD-NOTES 14). */
export const BACKDATE_MS = 5 * 60_000;
export const DEFAULT_WORKLOAD_TTL_MS = 24 * HOUR;
const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * HOUR;

interface Signer {
  readonly issuer: Issuer;
  readonly cert: X509Certificate;
  /** Intermediates to send after a leaf (the signing cert itself when it is not the root). */
  readonly intermediatesPem: string;
  readonly root: X509Certificate;
}

export class CertificateAuthority {
  private signer!: Signer;
  private trust: TrustState = { previous: [] };
  private readonly listeners = new Set<(bundlePem: string) => void>();
  private pruneTimer?: NodeJS.Timeout;
  readonly workloadTtlMs: number;
  private readonly overlapMs: number;
  private readonly now: () => number;

  private constructor(private readonly opts: CaOptions) {
    this.workloadTtlMs = opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.overlapMs = opts.rootOverlapMs ?? 2 * this.workloadTtlMs;
    this.now = opts.now ?? Date.now;
  }

  /** Loads or generates the signing CA and the trust state. Rejects with `CaConfigError` / `CaStoreError`. */
  static async open(opts: CaOptions): Promise<CertificateAuthority> {
    const ca = new CertificateAuthority(opts);
    const signer = opts.operator ? await loadOperatorCa(opts.operator) : await ca.generatedSigner(opts.rotateRoot ?? false);
    await ca.activate(signer);
    return ca;
  }

  /** The current trust bundle: the active root first, then roots still in their overlap (PEM). */
  trustBundlePem(): string {
    return [this.signer.root, ...this.previousRoots()].map((c) => c.toString()).join('');
  }

  /** The active root (what a sidecar's `WEFT_CA_ROOT_CERT` file holds to reach 15012). */
  rootPem(): string {
    return this.signer.root.toString();
  }

  /** When the active root expires. */
  rootNotAfter(): Date {
    return new Date(this.signer.root.validTo);
  }

  /** A workload certificate: empty subject, one critical URI SAN, 24 h (or `ttlMs`, capped by the CA's own expiry). */
  issueWorkload(publicKey: KeyObject | Buffer, spiffeId: string, ttlMs = this.workloadTtlMs): IssuedCertificate {
    return this.issue(publicKey, derName([]), { uris: [spiffeId] }, ttlMs);
  }

  /** The control plane's own serving certificate (DNS and IP SANs). */
  issueServing(publicKey: KeyObject, dnsNames: readonly string[], ips: readonly Buffer[], ttlMs = this.workloadTtlMs): IssuedCertificate {
    return this.issue(publicKey, derName([[OID.organization, 'Weft'], [OID.commonName, dnsNames[0] ?? 'weft-control-plane']]), { dns: dnsNames, ips }, ttlMs);
  }

  /**
   * A fresh P-256 key and a serving certificate for it with these DNS names and IP addresses
   * (strings: `10.0.0.1`, `::1`), as PEM: what an HTTPS server such as the admission webhooks
   * (15017) loads. The chain includes intermediates, not the root. Throws on an invalid IP.
   */
  issueServingKeyPair(dnsNames: readonly string[], ips: readonly string[] = [], ttlMs = this.workloadTtlMs): IssuedCertificate & { readonly keyPem: string } {
    for (const ip of ips) if (!isIP(ip)) throw new CaConfigError(`"${ip}" is not an IP address`);
    const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const cert = this.issueServing(key, dnsNames, ips.map(ipBytes), ttlMs);
    return { ...cert, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
  }

  /** What `GET /debug/ca` and `weft check` show: the signing certificate and every trusted root. */
  describe(): CaDescription {
    const about = (c: X509Certificate): CertificateSummary => ({ subject: c.subject.replace(/\n/g, ', '), serial: c.serialNumber, notBefore: new Date(c.validFrom).toISOString(), notAfter: new Date(c.validTo).toISOString() });
    const signer = this.signer;
    return {
      operator: this.opts.operator !== undefined,
      workloadTtlSeconds: Math.round(this.workloadTtlMs / 1000),
      signer: { ...about(signer.cert), isRoot: signer.cert.fingerprint256 === signer.root.fingerprint256 },
      roots: [{ ...about(signer.root), active: true }, ...this.previousRoots().map((c) => ({ ...about(c), active: false }))],
    };
  }

  /** Called with the new bundle after each change. Returns an unsubscribe. */
  onBundleChange(listener: (bundlePem: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Replaces the signing root with a newly generated one (or `operator`'s CA). The old root stays
   * in the bundle for the overlap; new leaves are signed by the new root at once.
   */
  async rotateRoot(operator?: OperatorCa): Promise<void> {
    if (!operator && this.opts.operator) {
      // Generating a root here would silently leave the operator's PKI.
      throw new CaConfigError("this CA is the operator's (--ca-cert): rotate by restarting with the new --ca-cert/--ca-key/--ca-chain");
    }
    const signer = operator ? await loadOperatorCa(operator) : await this.generatedSigner(true);
    await this.activate(signer);
  }

  /**
   * Re-reads a generated root and the trust state from the store, after another control-plane
   * replica rotated the root (Kubernetes mode watches the Secret). Resolves true when something
   * changed and the new root is now the signer; false when nothing changed or the CA is the
   * operator's (each replica reads the same files).
   */
  async reload(): Promise<boolean> {
    if (this.opts.operator) return false;
    const [pair, trust] = await Promise.all([this.opts.store.loadGeneratedRoot(), this.opts.store.loadTrust()]);
    if (!pair) return false;
    if (pair.certPem === this.signer.root.toString() && JSON.stringify(trust.previous) === JSON.stringify(this.trust.previous)) return false;
    this.opts.log.info('the stored root or trust state changed: reloading');
    await this.activate(await this.generatedSigner(false));
    return true;
  }

  /** Stops the overlap timer. Idempotent. */
  close(): void {
    clearTimeout(this.pruneTimer);
  }

  private issue(publicKey: KeyObject | Buffer, subject: Buffer, sans: { uris?: readonly string[]; dns?: readonly string[]; ips?: readonly Buffer[] }, ttlMs: number): IssuedCertificate {
    const now = this.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const caExpiry = Date.parse(this.signer.cert.validTo);
    const notAfter = new Date(Math.min(now + ttlMs, caExpiry));
    const leaf = signCertificate({ subject, publicKey, notBefore, notAfter, sans }, this.signer.issuer);
    // DER times have whole seconds.
    return {
      leafPem: leaf.pem,
      chainPem: leaf.pem + this.signer.intermediatesPem,
      serialHex: leaf.serialHex,
      notBefore: new Date(Math.floor(notBefore.getTime() / 1000) * 1000),
      notAfter: new Date(Math.floor(notAfter.getTime() / 1000) * 1000),
    };
  }

  private previousRoots(): X509Certificate[] {
    const now = this.now();
    return this.trust.previous
      .filter((p) => Date.parse(p.trustedUntil) > now && p.certPem !== this.signer.root.toString())
      .map((p) => new X509Certificate(p.certPem));
  }

  private async generatedSigner(rotate: boolean): Promise<Signer> {
    const store = this.opts.store;
    let pair = rotate ? undefined : await store.loadGeneratedRoot();
    if (pair) {
      let signer: Signer;
      try {
        signer = signerFrom(new X509Certificate(pair.certPem), createPrivateKey(pair.keyPem), []);
      } catch (e) {
        throw new CaConfigError(`the stored root in ${store.location} does not load: ${(e as Error).message}`, { cause: e });
      }
      const left = Date.parse(signer.root.validTo) - this.now();
      if (left <= 0) throw new CaConfigError(`the stored root in ${store.location} expired on ${signer.root.validTo}: start with --rotate-root`);
      if (left < 30 * 24 * HOUR) this.opts.log.warn('the root expires within 30 days: rotate it (docs/operations.md, "Root rotation")', { notAfter: signer.root.validTo });
      return signer;
    }
    pair = generateRoot(this.now(), this.opts.rootTtlMs ?? DEFAULT_ROOT_TTL_MS);
    await store.saveGeneratedRoot(pair);
    const signer = signerFrom(new X509Certificate(pair.certPem), createPrivateKey(pair.keyPem), []);
    this.opts.log.info(rotate ? 'root rotated: new root generated' : 'root generated', { store: store.location, serial: signer.root.serialNumber, notAfter: signer.root.validTo });
    return signer;
  }

  /** Makes `signer` current; a different root than last time moves the old one to the overlap list. */
  private async activate(signer: Signer): Promise<void> {
    const store = this.opts.store;
    const stored = await store.loadTrust();
    const rootPem = signer.root.toString();
    const now = this.now();
    let previous = stored.previous.filter((p) => Date.parse(p.trustedUntil) > now && p.certPem !== rootPem);
    // An expired previous root verifies nothing: it is dropped, not kept for an overlap.
    if (stored.activeRootPem && stored.activeRootPem !== rootPem && Date.parse(new X509Certificate(stored.activeRootPem).validTo) > now) {
      const trustedUntil = new Date(now + this.overlapMs).toISOString();
      previous = [...previous, { certPem: stored.activeRootPem, trustedUntil }];
      this.opts.log.info('previous root stays trusted during the overlap', { trustedUntil, serial: new X509Certificate(stored.activeRootPem).serialNumber });
    }
    this.trust = { activeRootPem: rootPem, previous };
    await store.saveTrust(this.trust);
    this.signer = signer;
    this.schedulePrune();
    const bundle = this.trustBundlePem();
    for (const l of this.listeners) l(bundle);
  }

  /** Wakes when the next overlap ends, to drop that root from the bundle. */
  private schedulePrune(): void {
    clearTimeout(this.pruneTimer);
    const ends = this.trust.previous.map((p) => Date.parse(p.trustedUntil)).filter((t) => t > this.now());
    if (ends.length === 0) return;
    const delay = Math.min(Math.min(...ends) - this.now() + 1000, 2 ** 31 - 1);
    this.pruneTimer = setTimeout(() => {
      this.trust = { ...this.trust, previous: this.trust.previous.filter((p) => Date.parse(p.trustedUntil) > this.now()) };
      void this.opts.store.saveTrust(this.trust).catch((e: Error) => this.opts.log.warn('cannot save the trust state', { error: e }));
      this.opts.log.info('root overlap ended', { trusted: 1 + this.trust.previous.length });
      const bundle = this.trustBundlePem();
      for (const l of this.listeners) l(bundle);
      this.schedulePrune();
    }, delay);
    this.pruneTimer.unref();
  }
}

function generateRoot(now: number, ttlMs: number): StoredKeyPair {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const subject = derName([[OID.organization, 'Weft'], [OID.commonName, `Weft root CA ${new Date(now).toISOString().slice(0, 10)}`]]);
  const cert = signCertificate({ subject, publicKey: key, notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + ttlMs), ca: {} }, { selfKey: key });
  return { certPem: cert.pem, keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The subject Name DER and subjectKeyIdentifier of a certificate, for signing below it. */
function issuerOf(cert: X509Certificate, key: KeyObject): Issuer {
  const tbs = children(parseDer(cert.raw))[0]!;
  const fields = children(tbs);
  const offset = contextChild(tbs, 0) ? 1 : 0; // the [0] version is optional
  const subject = toDer(fields[offset + 4]!);
  const ski = readExtensions(children(contextChild(tbs, 3))[0]).find((e) => e.oid === OID.subjectKeyIdentifier);
  const keyId = ski ? content(parseDer(ski.value)) : keyIdentifier(cert.publicKey);
  return { subject, privateKey: key, keyId };
}

function signerFrom(cert: X509Certificate, key: KeyObject, above: X509Certificate[]): Signer {
  const root = above.length ? above[above.length - 1]! : cert;
  const intermediates = cert === root ? [] : [cert, ...above.slice(0, -1)];
  return { issuer: issuerOf(cert, key), cert, root, intermediatesPem: intermediates.map((c) => c.toString()).join('') };
}

/** Reads and checks the operator's CA: parses, the key matches, it is a CA, the chain links up to a self-signed root. */
export async function loadOperatorCa(op: OperatorCa): Promise<Signer> {
  const read = async (file: string, what: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      throw new CaConfigError(`${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, { cause: e });
    }
  };
  const certs = (text: string, file: string): X509Certificate[] => {
    const blocks = fromPem('CERTIFICATE', text);
    if (blocks.length === 0) throw new CaConfigError(`${file}: no PEM CERTIFICATE block`);
    return blocks.map((b, i) => {
      try {
        return new X509Certificate(toPem('CERTIFICATE', b));
      } catch (e) {
        throw new CaConfigError(`${file}: certificate ${i + 1} does not parse: ${(e as Error).message}`, { cause: e });
      }
    });
  };
  const [cert, ...restOfCertFile] = certs(await read(op.certFile, '--ca-cert'), op.certFile);
  let key: KeyObject;
  try {
    key = createPrivateKey(await read(op.keyFile, '--ca-key'));
  } catch (e) {
    if (e instanceof CaConfigError) throw e;
    throw new CaConfigError(`--ca-key ${op.keyFile}: not a PEM private key: ${(e as Error).message}`, { cause: e });
  }
  if (!cert!.checkPrivateKey(key)) throw new CaConfigError(`--ca-key ${op.keyFile} does not match the certificate in --ca-cert ${op.certFile}`);
  if (!cert!.ca) throw new CaConfigError(`--ca-cert ${op.certFile} is not a CA certificate (basicConstraints CA:TRUE is missing)`);
  const now = Date.now();
  if (Date.parse(cert!.validTo) <= now) throw new CaConfigError(`--ca-cert ${op.certFile} expired on ${cert!.validTo}`);
  const above = [...restOfCertFile, ...(op.chainFile ? certs(await read(op.chainFile, '--ca-chain'), op.chainFile) : [])];
  const path = [cert!, ...above];
  for (let i = 0; i + 1 < path.length; i++) {
    if (!path[i]!.checkIssued(path[i + 1]!) || !path[i]!.verify(path[i + 1]!.publicKey)) {
      throw new CaConfigError(`the chain does not link: "${path[i]!.subject.replace(/\n/g, ', ')}" is not signed by the next certificate "${path[i + 1]!.subject.replace(/\n/g, ', ')}"`);
    }
    if (!path[i + 1]!.ca) throw new CaConfigError(`"${path[i + 1]!.subject.replace(/\n/g, ', ')}" in the chain is not a CA`);
  }
  const top = path[path.length - 1]!;
  if (!top.checkIssued(top) || !top.verify(top.publicKey)) {
    throw new CaConfigError(`the chain ends at "${top.subject.replace(/\n/g, ', ')}", which is not a self-signed root: give the certificates up to the root with --ca-chain`);
  }
  return signerFrom(cert!, key, above);
}

/** An IP address as the bytes of an iPAddress SAN (4 or 16). */
export function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6: expand "::" and write 8 groups of 16 bits.
  const [head, tail] = ip.includes('::') ? ip.split('::') as [string, string] : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return b;
}
