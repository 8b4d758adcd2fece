/** Failures of sidecar injection and the admission webhooks, each with a stable `code` (STYLE.md "Errors"). */

export class InjectError extends Error {
  readonly code: string = 'INJECT_ERROR';
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = new.target.name;
  }
}

/** The InjectionConfig file (`--injection-config`) is unreadable or invalid; `problems` has one line per field. */
export class InjectionConfigError extends InjectError {
  override readonly code = 'INJECTION_CONFIG_INVALID';
  constructor(message: string, readonly problems: readonly string[] = [], opts?: { cause?: unknown }) {
    super(message, opts);
  }
}

/** An admission request body that is not an AdmissionReview v1 (answered 400). */
export class AdmissionBodyError extends InjectError {
  override readonly code = 'ADMISSION_BODY_INVALID';
}
