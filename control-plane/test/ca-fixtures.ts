/**
 * Builders for the CA tests: a control plane with identity in a temp data dir, a grpc-js client
 * for the signing API over real TLS, and a logger that records lines.
 */
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { buildCsr, createLogger, generateWorkloadKey, type Logger } from '@weft/api';
import { startControlPlane, type ControlPlane, type IdentityOptions } from '../src/control-plane';
import { tokenPath } from '../src/token-files';

export const POD_YAML = (ns: string, name: string, sa: string, ip: string): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${ns}}
spec: {serviceAccountName: ${sa}, containers: [{name: app, image: x}]}
status: {podIP: ${ip}}
---
`;

export function recordingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger({}, (l) => lines.push(JSON.parse(l)), 0), lines };
}

export interface CaFixture {
  readonly cp: ControlPlane;
  readonly dataDir: string;
  readonly manifests: string;
  readonly lines: Record<string, unknown>[];
  token(ns: string, sa: string): string;
}

export async function startCa(identity: Partial<IdentityOptions> = {}, dirs?: { dataDir?: string; manifests?: string }): Promise<CaFixture> {
  const manifests = dirs?.manifests ?? mkdtempSync(join(tmpdir(), 'weft-ca-m-'));
  if (!dirs?.manifests) {
    writeFileSync(join(manifests, 'pods.yaml'), POD_YAML('shop', 'frontend-1', 'frontend', '127.0.41.1') + POD_YAML('shop', 'backend-1', 'backend', '127.0.41.2'));
  }
  const dataDir = dirs?.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-ca-d-'));
  const { log, lines } = recordingLogger();
  const cp = await startControlPlane({
    manifestsDir: manifests, xdsAddress: '127.0.0.1:0', debugAddress: '127.0.0.1:0', debounceMs: 10, log,
    identity: { dataDir, caAddress: '127.0.0.1:0', ...identity },
  });
  return { cp, dataDir, manifests, lines, token: (ns, sa) => readFileSync(tokenPath(dataDir, ns, sa), 'utf8') };
}

const def = protoLoader.loadSync(join(__dirname, '../../../api/proto/weft/ca/v1/ca.proto'), { keepCase: true, longs: Number, defaults: true });
const CertificateService = grpc.loadPackageDefinition(def).weft as any;

export interface SignReply { cert_chain: string[]; root_bundle: string }

/** One CreateCertificate call over TLS, verifying the server against `rootPem`. */
export function createCertificate(port: number, rootPem: string, csr: string, token?: string, validitySeconds = 0): Promise<SignReply> {
  const client = new CertificateService.ca.v1.CertificateService(`127.0.0.1:${port}`, grpc.credentials.createSsl(Buffer.from(rootPem)));
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  return new Promise<SignReply>((resolve, reject) => {
    client.CreateCertificate({ csr, validity_seconds: validitySeconds }, md, (err: grpc.ServiceError | null, res: SignReply) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

export function csrFor(spiffeId: string): { csr: string; keyPem: string } {
  const key = generateWorkloadKey();
  return { csr: buildCsr(key.privateKey, spiffeId), keyPem: key.privateKeyPem };
}

export async function metricsText(cp: ControlPlane): Promise<string> {
  return (await fetch(`http://127.0.0.1:${cp.debugPort}/metrics`)).text();
}
