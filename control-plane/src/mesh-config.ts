/**
 * The mesh-wide settings file (`weft control-plane --mesh-config FILE`; the chart renders it
 * into the ConfigMap `weft-mesh`, key `mesh.yaml`), validated once at start:
 *
 *   trustDomain: cluster.local          # SPIFFE trust domain of workload certificates
 *   rootNamespace: weft-system          # where a PeerAuthentication without selector is mesh-wide
 *   tracing: {endpoint: URL, sampling: 1}   # OTLP/HTTP; absent: tracing off
 *   defaultReach: []                    # namespaces every sidecar is sent besides its own ("*": all)
 *
 * Unknown keys and bad values are refused with the field's path, so a typo never passes silently.
 */
import { readFile } from 'node:fs/promises';
import { names } from '@weft/api';
import { parse } from 'yaml';

export interface MeshConfig {
  readonly trustDomain?: string;
  readonly rootNamespace?: string;
  readonly tracing?: { readonly endpoint: string; readonly samplingPercent: number };
  readonly defaultReach?: readonly string[];
}

export class MeshConfigError extends Error {
  readonly code = 'MESH_CONFIG_INVALID';
}

const TRUST_DOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Validates a decoded mesh config; throws MeshConfigError naming every bad field. */
export function parseMeshConfig(raw: unknown, source: string): MeshConfig {
  if (raw === null || raw === undefined) return {};
  const errors: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObj(raw)) throw new MeshConfigError(`${source}: the mesh config must be a mapping`);
  for (const k of Object.keys(raw)) if (!['trustDomain', 'rootNamespace', 'tracing', 'defaultReach'].includes(k)) errors.push(`${k}: unknown field`);
  const out: { -readonly [K in keyof MeshConfig]: MeshConfig[K] } = {};
  if (raw.trustDomain !== undefined) {
    if (typeof raw.trustDomain !== 'string' || !TRUST_DOMAIN.test(raw.trustDomain)) errors.push('trustDomain: must be a DNS name such as cluster.local');
    else out.trustDomain = raw.trustDomain;
  }
  if (raw.rootNamespace !== undefined) {
    if (typeof raw.rootNamespace !== 'string' || names.dnsLabel(raw.rootNamespace)) errors.push('rootNamespace: must be a namespace name (a DNS label)');
    else out.rootNamespace = raw.rootNamespace;
  }
  if (raw.tracing !== undefined && raw.tracing !== null) {
    const t = raw.tracing;
    if (!isObj(t)) errors.push('tracing: must be a mapping with endpoint and sampling');
    else {
      for (const k of Object.keys(t)) if (!['endpoint', 'sampling'].includes(k)) errors.push(`tracing.${k}: unknown field`);
      let endpoint: URL | undefined;
      try {
        endpoint = typeof t.endpoint === 'string' ? new URL(t.endpoint) : undefined;
      } catch {
        endpoint = undefined;
      }
      if (!endpoint || (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:')) errors.push('tracing.endpoint: must be an http:// or https:// URL (OTLP/HTTP)');
      const sampling = t.sampling === undefined ? 1 : t.sampling;
      if (typeof sampling !== 'number' || !(sampling >= 0 && sampling <= 100)) errors.push('tracing.sampling: must be a percentage from 0 to 100');
      if (endpoint && typeof sampling === 'number') out.tracing = { endpoint: endpoint.href, samplingPercent: sampling };
    }
  }
  if (raw.defaultReach !== undefined) {
    const r = raw.defaultReach;
    if (!Array.isArray(r) || r.some((x) => typeof x !== 'string' || (x !== '*' && names.dnsLabel(x)))) errors.push('defaultReach: must be a list of namespace names or "*"');
    else out.defaultReach = r as string[];
  }
  if (errors.length) throw new MeshConfigError(`${source}: ${errors.join('; ')}`);
  return out;
}

export async function loadMeshConfig(file: string): Promise<MeshConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new MeshConfigError(`${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (e) {
    throw new MeshConfigError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return parseMeshConfig(raw, file);
}
