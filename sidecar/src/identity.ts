/**
 * The workload's identity as the data path sees it: the current certificate and key, and the
 * roots it trusts. Producers: the certificate manager (CSR to the control plane, rotation) for
 * the workload certificate, SDS (`Secret` resources) for the trust bundle. Consumers: the TLS
 * contexts of inbound chains and upstream clusters, built when either changes, never per request.
 *
 * The private key is generated in this process and never leaves it (not sent, not logged, not in
 * `/config_dump`).
 */

import type { TLSSocket } from 'node:tls';

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

const peerIds = new WeakMap<object, string | null>();

/**
 * The SPIFFE ID a connection's peer proved: the `spiffe://` URI SAN of a client certificate that
 * verified against the trust bundle (`authorized`), else undefined (plaintext, no certificate, or
 * one that did not verify). Read once per connection, then cached: request stages may call it per
 * request.
 */
export function peerSpiffeId(socket: object): string | undefined {
  const cached = peerIds.get(socket);
  if (cached !== undefined) return cached ?? undefined;
  let id: string | null = null;
  const tlsSocket = socket as Partial<TLSSocket>;
  if (tlsSocket.encrypted && tlsSocket.authorized && tlsSocket.getPeerX509Certificate) {
    const sans = tlsSocket.getPeerX509Certificate()?.subjectAltName ?? '';
    // `subjectAltName` is Node's comma-separated list (`URI:spiffe://…, DNS:…`).
    id = /(?:^|, )URI:(spiffe:\/\/[^,\s]+)/.exec(sans)?.[1] ?? null;
  }
  peerIds.set(socket, id);
  return id ?? undefined;
}
