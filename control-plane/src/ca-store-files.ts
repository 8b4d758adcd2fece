/**
 * `CaStore` on files (local mode), under `<data-dir>/ca/`:
 *   root-cert.pem   the generated root (0644)
 *   root-key.pem    its key (0600)
 *   trust.json      the active root and the previous roots still trusted (0644)
 * Files are written to a temporary name and renamed, so a crash never leaves half a key.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CaStoreError } from './ca-errors';
import type { CaStore, StoredKeyPair, TrustState } from './ca-store';

export class FileCaStore implements CaStore {
  readonly location: string;

  constructor(dataDir: string) {
    this.location = join(dataDir, 'ca');
  }

  async loadGeneratedRoot(): Promise<StoredKeyPair | undefined> {
    const certPem = await this.read('root-cert.pem');
    const keyPem = await this.read('root-key.pem');
    if (certPem === undefined && keyPem === undefined) return undefined;
    if (certPem === undefined || keyPem === undefined) {
      throw new CaStoreError(`${this.location}: only one of root-cert.pem and root-key.pem exists; restore the other or remove both to generate a new root`);
    }
    return { certPem, keyPem };
  }

  async saveGeneratedRoot(pair: StoredKeyPair): Promise<void> {
    await this.write('root-key.pem', pair.keyPem, 0o600);
    await this.write('root-cert.pem', pair.certPem, 0o644);
  }

  async loadTrust(): Promise<TrustState> {
    const text = await this.read('trust.json');
    if (text === undefined) return { previous: [] };
    try {
      const raw = JSON.parse(text) as TrustState;
      return { activeRootPem: raw.activeRootPem, previous: Array.isArray(raw.previous) ? raw.previous : [] };
    } catch (e) {
      throw new CaStoreError(`${join(this.location, 'trust.json')}: not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }

  async saveTrust(state: TrustState): Promise<void> {
    await this.write('trust.json', `${JSON.stringify(state, null, 2)}\n`, 0o644);
  }

  private async read(name: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.location, name), 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CaStoreError(`cannot read ${join(this.location, name)}: ${(e as Error).message}`, { cause: e });
    }
  }

  private async write(name: string, text: string, mode: number): Promise<void> {
    const path = join(this.location, name);
    try {
      await writeFileAtomic(path, text, mode);
    } catch (e) {
      throw new CaStoreError(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/** Writes `text` to a temporary file with `mode` and renames it over `path` (directories 0700 as needed). */
export async function writeFileAtomic(path: string, text: string, mode: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}
