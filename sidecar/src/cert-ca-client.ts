/**
 * The sidecar's side of `weft.ca.v1.CertificateService/CreateCertificate`
 * (api/proto/weft/ca/v1/ca.proto): a unary call over TLS with `grpc-stream-h2.ts`, the messages
 * coded by hand with protobufjs's Reader/Writer (two fields each; the sidecar loads no .proto).
 */
import * as protobuf from 'protobufjs/light';
import { grpcUnary } from './grpc-stream-h2';

export const CREATE_CERTIFICATE_PATH = '/weft.ca.v1.CertificateService/CreateCertificate';

export interface CreateCertificateRequest {
  readonly csr: string;
  readonly validitySeconds: number;
}

export interface CreateCertificateResponse {
  /** Leaf first, then intermediates. */
  readonly certChain: readonly string[];
  readonly rootBundle: string;
}

export function encodeCreateCertificateRequest(m: CreateCertificateRequest): Buffer {
  const w = protobuf.Writer.create().uint32((1 << 3) | 2).string(m.csr);
  if (m.validitySeconds) w.uint32(2 << 3).int64(m.validitySeconds);
  return Buffer.from(w.finish());
}

export function decodeCreateCertificateResponse(bytes: Buffer): CreateCertificateResponse {
  const r = protobuf.Reader.create(bytes);
  const certChain: string[] = [];
  let rootBundle = '';
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === ((1 << 3) | 2)) certChain.push(r.string());
    else if (tag === ((2 << 3) | 2)) rootBundle = r.string();
    else r.skipType(tag & 7);
  }
  return { certChain, rootBundle };
}

export interface CaCallOptions {
  /** host:port of the control plane's TLS port (15012). */
  readonly address: string;
  /** PEM roots the control plane's serving certificate must chain to. */
  readonly ca: readonly string[];
  readonly token: string;
  readonly timeoutMs?: number;
}

/** One CreateCertificate call; rejects with `GrpcCallError` (status and the CA's reason). */
export function createCertificate(opts: CaCallOptions, req: CreateCertificateRequest): Promise<CreateCertificateResponse> {
  return grpcUnary<CreateCertificateRequest, CreateCertificateResponse>({
    address: opts.address,
    path: CREATE_CERTIFICATE_PATH,
    tls: { ca: opts.ca },
    metadata: { authorization: `Bearer ${opts.token}` },
    serialize: encodeCreateCertificateRequest,
    deserialize: decodeCreateCertificateResponse,
    timeoutMs: opts.timeoutMs ?? 10_000,
    connectTimeoutMs: opts.timeoutMs ?? 10_000,
  }, req);
}
