/**
 * The workload's identity as the data path sees it: the current certificate and key, and the
 * roots it trusts. Producers: the certificate manager (CSR to the control plane, rotation) for
 * the workload certificate, SDS (`Secret` resources) for the trust bundle. Consumers: the TLS
 * contexts of inbound chains and upstream clusters, built when either changes, never per request.
 *
 * The private key is generated in this process and never leaves it (not sent, not logged, not in
 * `/config_dump`).
 */

export interface WorkloadCertificate {
  /** PKCS#8 PEM of the private key. */
  readonly keyPem: string;
  /** The leaf first, then intermediates (not the root), PEM. */
  readonly chainPem: string;
  /** `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`: the leaf's URI SAN. */
  readonly spiffeId: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Where the current workload certificate comes from. */
export interface IdentityProvider {
  /** The certificate in use; undefined until the first one is issued. */
  current(): WorkloadCertificate | undefined;
  /** Called after each new certificate (first issue and every rotation). Returns an unsubscribe. */
  onChange(listener: (cert: WorkloadCertificate) => void): () => void;
}
