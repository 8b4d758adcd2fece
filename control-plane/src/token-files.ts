/**
 * Local mode's token issuer: for every service account used by a Pod in the manifests
 * directory, a signed token at `<data-dir>/tokens/<namespace>/<service-account>/token` (0600),
 * rewritten at 80% of its lifetime and as soon as a Pod with a new service account appears. The
 * signing key is `<data-dir>/tokens/signing-key.pem` (0600), generated on first start.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KubeObject, Logger } from '@weft/api';
import { writeFileAtomic } from './ca-store-files';
import { signToken } from './token-jwt';

export const DEFAULT_TOKEN_TTL_MS = 3600_000;

/** Where the token of `namespace/serviceAccount` is written. */
export function tokenPath(dataDir: string, namespace: string, serviceAccount: string): string {
  return join(dataDir, 'tokens', namespace, serviceAccount, 'token');
}

/** Loads `<data-dir>/tokens/signing-key.pem`, generating it on first use. */
export async function loadTokenKey(dataDir: string): Promise<KeyObject> {
  const path = join(dataDir, 'tokens', 'signing-key.pem');
  try {
    return createPrivateKey(await readFile(path, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot load the token signing key ${path}: ${(e as Error).message}`, { cause: e });
  }
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  await writeFileAtomic(path, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
  return key;
}

export class TokenFiles {
  private accounts = new Set<string>();
  private timer?: NodeJS.Timeout;
  private closed = false;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly dataDir: string,
    private readonly key: KeyObject,
    private readonly log: Logger,
    private readonly ttlMs = DEFAULT_TOKEN_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Called with the registry's objects: writes tokens for service accounts not seen before. */
  update(objects: readonly KubeObject[]): Promise<void> {
    const found = new Set<string>();
    for (const o of objects) if (o.kind === 'Pod') found.add(`${o.meta.namespace}/${o.serviceAccount}`);
    const fresh = [...found].filter((a) => !this.accounts.has(a));
    this.accounts = new Set([...this.accounts, ...found]);
    if (fresh.length > 0) this.writing = this.writing.then(() => this.write(fresh));
    if (!this.timer && !this.closed) this.scheduleRefresh();
    return this.writing;
  }

  /** Resolves once the writes started so far are done. */
  settled(): Promise<void> {
    return this.writing;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private scheduleRefresh(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writing.then(() => this.write([...this.accounts]));
      if (!this.closed) this.scheduleRefresh();
    }, Math.floor(this.ttlMs * 0.8));
    this.timer.unref();
  }

  private async write(accounts: readonly string[]): Promise<void> {
    for (const a of accounts) {
      const [ns, sa] = a.split('/') as [string, string];
      const path = tokenPath(this.dataDir, ns, sa);
      try {
        await writeFileAtomic(path, signToken(this.key, ns, sa, this.now(), this.ttlMs), 0o600);
        this.log.debug('token written', { namespace: ns, serviceAccount: sa, path });
      } catch (e) {
        this.log.warn('cannot write a token', { namespace: ns, serviceAccount: sa, path, error: e as Error });
      }
    }
  }
}
