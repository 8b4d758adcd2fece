/**
 * Where the CA keeps what must survive a restart: the generated root and its key, and the roots
 * still trusted during a rotation's overlap. Local mode keeps files under the data directory
 * (`ca-store-files.ts`); Kubernetes mode keeps the Secret `weft-ca` (`ca-store-secret.ts`) behind the same
 * interface.
 */

export interface StoredKeyPair {
  readonly certPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
}

/** Roots trusted besides the active one, each until a time (the rotation's overlap). */
export interface TrustState {
  /** The root that signed (directly or through intermediates) the last time the CA ran. */
  readonly activeRootPem?: string;
  readonly previous: ReadonlyArray<{ readonly certPem: string; readonly trustedUntil: string }>;
}

export interface CaStore {
  /** Where it lives, for logs and errors. */
  readonly location: string;
  /** The root this CA generated itself, if any. Rejects with `CaStoreError` when unreadable. */
  loadGeneratedRoot(): Promise<StoredKeyPair | undefined>;
  saveGeneratedRoot(pair: StoredKeyPair): Promise<void>;
  loadTrust(): Promise<TrustState>;
  saveTrust(state: TrustState): Promise<void>;
}
