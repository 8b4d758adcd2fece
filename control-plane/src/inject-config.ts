/**
 * InjectionConfig: what the sidecar injector adds to a pod (the `weft-injection` ConfigMap's
 * `config.yaml`, `--injection-config FILE`; fields in docs/configuration.md, "InjectionConfig").
 * Parsed and validated once, at the edge: every field is optional with a default, an unknown
 * field or a bad value is refused with one `path: reason` line per problem, and the result is a
 * frozen value the (pure) injector only reads.
 */
import { readFile } from 'node:fs/promises';
import { FieldChecker, isPlainObject } from '@weft/api';
import { parse as parseYaml } from 'yaml';
import { CAPTURE_FIELDS, checkCaptureValue, DEFAULT_CAPTURE_SETTINGS, type CaptureSettings } from './inject-capture';
import { InjectionConfigError } from './inject-errors';

export interface ResourceAmounts {
  readonly cpu?: string;
  readonly memory?: string;
}
export interface Resources {
  readonly requests: ResourceAmounts;
  readonly limits: ResourceAmounts;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const PULL_POLICIES = ['Always', 'IfNotPresent', 'Never'] as const;

export interface InjectionConfig {
  readonly image: string;
  readonly imagePullPolicy: (typeof PULL_POLICIES)[number];
  /** host:port the sidecar reaches the control plane at (`WEFT_XDS_ADDRESS`). */
  readonly xdsAddress: string;
  readonly trustDomain: string;
  readonly proxyUid: number;
  /** The sidecar as an init container with `restartPolicy: Always` (Kubernetes >= 1.29); false: a regular container. */
  readonly nativeSidecar: boolean;
  readonly logLevel: LogLevel;
  readonly drainTimeoutMs: number;
  readonly resources: Resources;
  readonly initResources: Resources;
  readonly capture: CaptureSettings;
}

export const DEFAULT_INJECTION_CONFIG: InjectionConfig = deepFreeze({
  image: 'ghcr.io/weft-dev/weft:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  xdsAddress: 'weft-control-plane.weft-system.svc:15012',
  trustDomain: 'cluster.local',
  proxyUid: 1337,
  nativeSidecar: true,
  logLevel: 'info',
  drainTimeoutMs: 5000,
  resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '1', memory: '192Mi' } },
  initResources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
  capture: DEFAULT_CAPTURE_SETTINGS,
});

/** A Kubernetes resource quantity (`100m`, `1`, `0.5`, `64Mi`, `1e3`). */
const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$/;
export function quantityError(s: string): string | undefined {
  return QUANTITY.test(s) ? undefined : `"${s}" is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi)`;
}

const FIELDS = Object.keys(DEFAULT_INJECTION_CONFIG);

/** Validates a decoded document. Every problem is reported, one `path: reason` each. */
export function parseInjectionConfig(raw: unknown): { ok: true; value: InjectionConfig } | { ok: false; errors: string[] } {
  if (raw === null || raw === undefined) return { ok: true, value: DEFAULT_INJECTION_CONFIG };
  const c = new FieldChecker();
  const o = c.object(raw, '', { fields: FIELDS });
  if (!o) return { ok: false, errors: c.errors };
  const d = DEFAULT_INJECTION_CONFIG;
  const str = (k: 'image' | 'trustDomain'): string => c.string(o[k], k) ?? d[k];
  const xdsAddress = c.string(o.xdsAddress, 'xdsAddress', { check: (s) => (/^[^\s:/]+:\d{1,5}$/.test(s) && Number(s.split(':')[1]) <= 65535 ? undefined : 'must be host:port') }) ?? d.xdsAddress;
  let nativeSidecar = d.nativeSidecar;
  if (o.nativeSidecar !== undefined && o.nativeSidecar !== null) {
    if (typeof o.nativeSidecar === 'boolean') nativeSidecar = o.nativeSidecar;
    else c.error('nativeSidecar', 'must be true or false');
  }
  const value: InjectionConfig = {
    image: str('image'),
    imagePullPolicy: c.oneOf(o.imagePullPolicy, 'imagePullPolicy', PULL_POLICIES) ?? d.imagePullPolicy,
    xdsAddress,
    trustDomain: str('trustDomain'),
    proxyUid: c.int(o.proxyUid, 'proxyUid', 1, 2 ** 31 - 1) ?? d.proxyUid,
    nativeSidecar,
    logLevel: c.oneOf(o.logLevel, 'logLevel', LOG_LEVELS) ?? d.logLevel,
    drainTimeoutMs: c.int(o.drainTimeoutMs, 'drainTimeoutMs', 0, 600_000) ?? d.drainTimeoutMs,
    resources: parseResources(o.resources, 'resources', d.resources, c),
    initResources: parseResources(o.initResources, 'initResources', d.initResources, c),
    capture: parseCapture(o.capture, c),
  };
  return c.errors.length ? { ok: false, errors: c.errors } : { ok: true, value: deepFreeze(value) };
}

/** `resources: {requests: {cpu, memory}, limits: {cpu, memory}}`; a section given replaces that section's default. */
function parseResources(v: unknown, path: string, dflt: Resources, c: FieldChecker): Resources {
  const o = c.object(v, path, { fields: ['requests', 'limits'] });
  if (!o) return dflt;
  const amounts = (k: 'requests' | 'limits'): ResourceAmounts => {
    const a = c.object(o[k], `${path}.${k}`, { fields: ['cpu', 'memory'] });
    if (!a) return dflt[k];
    const q = (r: 'cpu' | 'memory'): string | undefined => {
      const x = typeof a[r] === 'number' ? String(a[r]) : a[r];
      return c.string(x, `${path}.${k}.${r}`, { check: quantityError });
    };
    const cpu = q('cpu');
    const memory = q('memory');
    return { ...(cpu !== undefined ? { cpu } : {}), ...(memory !== undefined ? { memory } : {}) };
  };
  return { requests: amounts('requests'), limits: amounts('limits') };
}

function parseCapture(v: unknown, c: FieldChecker): CaptureSettings {
  const o = c.object(v, 'capture', { fields: CAPTURE_FIELDS.map((f) => f.key) });
  if (!o) return DEFAULT_CAPTURE_SETTINGS;
  const out: Record<string, string> = { ...DEFAULT_CAPTURE_SETTINGS };
  for (const f of CAPTURE_FIELDS) {
    const raw = o[f.key];
    if (raw === undefined || raw === null) continue;
    if (typeof raw !== 'string' && typeof raw !== 'number') {
      c.error(`capture.${f.key}`, 'must be a string (a comma list)');
      continue;
    }
    const r = checkCaptureValue(String(raw), f.kind, f.star);
    if ('error' in r) c.error(`capture.${f.key}`, r.error);
    else out[f.key] = r.value;
  }
  return out as unknown as CaptureSettings;
}

/** Parses YAML or JSON text (`source` names it in errors). Throws `InjectionConfigError`. */
export function injectionConfigFromText(text: string, source: string): InjectionConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (e) {
    throw new InjectionConfigError(`${source}: not valid YAML or JSON: ${(e as Error).message.split('\n')[0]}`, [], { cause: e });
  }
  if (raw !== null && raw !== undefined && !isPlainObject(raw)) throw new InjectionConfigError(`${source}: must be a mapping of InjectionConfig fields`);
  const r = parseInjectionConfig(raw);
  if (!r.ok) throw new InjectionConfigError(`${source}: ${r.errors[0]}${r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : ''}`, r.errors);
  return r.value;
}

/** Reads `--injection-config FILE`. Throws `InjectionConfigError`. */
export async function loadInjectionConfig(file: string): Promise<InjectionConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new InjectionConfigError(`--injection-config ${file}: ${why}`, [], { cause: e });
  }
  return injectionConfigFromText(text, file);
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
