/**
 * `CaStore` on a Kubernetes Secret (cluster mode): `weft-ca` in the control plane's namespace,
 * keys `ca-cert.pem`, `ca-key.pem` (the generated root and its key) and `trust-state.json` (the
 * active root and the previous roots still trusted). Creating the Secret is atomic: when several
 * replicas start at once, the first create wins and the others get `CaStoreRaceError` and load the
 * winner's root. Later writes carry the resourceVersion read, so concurrent writers never lose an
 * update silently (a conflict is an error the caller sees). A write that changes nothing is skipped.
 */
import { CaError, CaStoreError } from './ca-errors';
import type { CaStore, StoredKeyPair, TrustState } from './ca-store';
import { KubeApiError, type KubeClient } from './kube-client';

export const CA_SECRET_NAME = 'weft-ca';

/** Another replica created the CA Secret between our read and our create: load theirs. */
export class CaStoreRaceError extends CaError {
  override readonly code = 'CA_STORE_RACE';
}

interface Secret {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

export class SecretCaStore implements CaStore {
  readonly location: string;
  private readonly path: string;

  constructor(private readonly client: KubeClient, private readonly namespace: string, private readonly name = CA_SECRET_NAME) {
    this.location = `Secret ${namespace}/${name}`;
    this.path = `/api/v1/namespaces/${namespace}/secrets`;
  }

  async loadGeneratedRoot(): Promise<StoredKeyPair | undefined> {
    const s = await this.read();
    const certPem = field(s, 'ca-cert.pem');
    const keyPem = field(s, 'ca-key.pem');
    if (certPem === undefined && keyPem === undefined) return undefined;
    if (certPem === undefined || keyPem === undefined) {
      throw new CaStoreError(`${this.location}: only one of ca-cert.pem and ca-key.pem is set; restore the other or delete the Secret to generate a new root`);
    }
    return { certPem, keyPem };
  }

  async saveGeneratedRoot(pair: StoredKeyPair): Promise<void> {
    await this.modify({ 'ca-cert.pem': pair.certPem, 'ca-key.pem': pair.keyPem });
  }

  async loadTrust(): Promise<TrustState> {
    const text = field(await this.read(), 'trust-state.json');
    if (text === undefined) return { previous: [] };
    try {
      const raw = JSON.parse(text) as TrustState;
      return { activeRootPem: raw.activeRootPem, previous: Array.isArray(raw.previous) ? raw.previous : [] };
    } catch (e) {
      throw new CaStoreError(`${this.location}: trust-state.json is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }

  async saveTrust(state: TrustState): Promise<void> {
    await this.modify({ 'trust-state.json': `${JSON.stringify(state, null, 2)}\n` });
  }

  private async read(): Promise<Secret | undefined> {
    try {
      return await this.client.request<Secret>('GET', `${this.path}/${this.name}`);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return undefined;
      throw new CaStoreError(`cannot read ${this.location}: ${(e as Error).message}`, { cause: e });
    }
  }

  private async modify(values: Record<string, string>): Promise<void> {
    const current = await this.read();
    const data = { ...(current?.data ?? {}) };
    let changed = false;
    for (const [k, v] of Object.entries(values)) {
      const b64 = Buffer.from(v).toString('base64');
      if (data[k] !== b64) changed = true;
      data[k] = b64;
    }
    if (current && !changed) return;
    try {
      if (current) {
        await this.client.request('PUT', `${this.path}/${this.name}`, { body: { ...current, data } });
      } else {
        await this.client.request('POST', this.path, {
          body: {
            apiVersion: 'v1', kind: 'Secret', type: 'Opaque', data,
            metadata: { name: this.name, namespace: this.namespace, labels: { 'app.kubernetes.io/managed-by': 'weft-control-plane' } },
          } satisfies Secret,
        });
      }
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409) {
        throw new CaStoreRaceError(`${this.location} was written by another replica meanwhile`, { cause: e });
      }
      throw new CaStoreError(`cannot write ${this.location}: ${(e as Error).message}`, { cause: e });
    }
  }
}

function field(s: Secret | undefined, key: string): string | undefined {
  const v = s?.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}
