/** Failures of the certificate authority, each with a stable `code` (STYLE.md "Errors"). */

export class CaError extends Error {
  readonly code: string = 'CA_ERROR';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The operator's CA files are missing, do not parse, or do not fit together. */
export class CaConfigError extends CaError {
  override readonly code = 'CA_CONFIG_INVALID';
}

/** The CA's data directory cannot be read or written. */
export class CaStoreError extends CaError {
  override readonly code = 'CA_STORE_FAILED';
}
