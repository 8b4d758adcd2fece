/**
 * Port 15012: gRPC over TLS serving the certificate service (`weft.ca.v1.CertificateService`,
 * api/proto/weft/ca/v1/ca.proto) and ADS (the same implementation as 15010), so cluster mode
 * needs no plaintext port. The serving certificate is signed by the control plane's own CA,
 * with DNS/IP SANs for where it listens and `weft-control-plane.<namespace>.svc`; it is
 * re-issued at 80% of its lifetime and after a root rotation (new handshakes only).
 */
import { hostname } from 'node:os';
import * as path from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '@weft/api';
import { AdsServer } from './ads-server';
import type { AdsHooks } from './ads-hooks';
import type { CertificateAuthority } from './ca-authority';
import { ServingCertificate, servingNamesFor, type ServingPair } from './ca-serving-cert';
import { CertificateRefusal, type SigningService } from './ca-service';

export const CA_SERVICE = 'weft.ca.v1.CertificateService';
/** The names sidecars reach the control plane by: its Service in `namespace`, and localhost. */
export const servingDnsNames = (namespace = 'weft-system'): string[] =>
  [`weft-control-plane.${namespace}.svc`, `weft-control-plane.${namespace}.svc.cluster.local`, 'localhost'];

/** grpc-js credentials whose certificate can be replaced; existing connections keep theirs. */
class RotatingServerCredentials extends grpc.ServerCredentials {
  constructor(options: SecureContextOptions) {
    super({ requestCert: false }, options); // non-null constructor options make grpc-js serve TLS
  }
  update(options: SecureContextOptions): void {
    this.updateSecureContextOptions(options);
  }
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

function loadCaService(): grpc.ServiceDefinition {
  const apiDir = path.dirname(require.resolve('@weft/api/package.json'));
  const def = protoLoader.loadSync(path.join(apiDir, 'proto/weft/ca/v1/ca.proto'), { keepCase: true, longs: Number, defaults: true });
  return def[CA_SERVICE] as grpc.ServiceDefinition;
}

interface WireRequest {
  csr: string;
  validity_seconds: number;
}

export interface CaServerOptions {
  /** host:port (port 0 picks one). */
  readonly address: string;
  readonly ca: CertificateAuthority;
  readonly signing: SigningService;
  readonly hooks: AdsHooks;
  readonly identifier: string;
  /** The control plane's namespace, for the certificate's Service names (default `weft-system`). */
  readonly namespace?: string;
  readonly log: Logger;
}

export class CaServer {
  private readonly ads: AdsServer;
  private readonly credentials: RotatingServerCredentials;
  private readonly serving: ServingCertificate;
  port = 0;

  constructor(private readonly opts: CaServerOptions) {
    this.ads = new AdsServer(opts.hooks, opts.log.child({ module: 'ads-tls' }), opts.identifier);
    this.serving = new ServingCertificate(opts.ca, servingNamesFor(opts.address, [...servingDnsNames(opts.namespace), hostname()]), opts.log);
    this.credentials = new RotatingServerCredentials(tlsOptions(this.serving.current()));
    this.serving.onChange((pair) => this.credentials.update(tlsOptions(pair)));
    this.ads.addService(loadCaService(), {
      CreateCertificate: (call: grpc.ServerUnaryCall<WireRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        const auth = String(call.metadata.get('authorization')[0] ?? '');
        const token = /^Bearer\s+(\S+)$/i.exec(auth)?.[1];
        opts.signing.sign({ token, csrPem: call.request.csr, validitySeconds: Number(call.request.validity_seconds) || 0, peer: call.getPeer() }).then(
          (r) => callback(null, { cert_chain: r.certChain, root_bundle: r.rootBundle }),
          (e: Error) => {
            if (e instanceof CertificateRefusal) return callback({ code: e.status, details: e.message });
            opts.log.error('signing failed', { error: e });
            callback({ code: grpc.status.INTERNAL, details: `signing failed: ${e.message}` });
          });
      },
    });
  }

  async listen(): Promise<number> {
    this.port = await this.ads.listen(this.opts.address, this.credentials);
    return this.port;
  }

  /** The serving certificate chain in use (PEM), for tests and `openssl s_client` comparisons. */
  get servingChainPem(): string {
    return this.serving.current().cert;
  }

  close(): Promise<void> {
    this.stop();
    return this.ads.close();
  }

  destroy(): void {
    this.stop();
    this.ads.destroy();
  }

  private stop(): void {
    this.serving.close();
  }
}

function tlsOptions(pair: ServingPair): SecureContextOptions {
  return { key: pair.key, cert: pair.cert, minVersion: 'TLSv1.2' };
}
