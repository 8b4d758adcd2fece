/**
 * The demo mesh's shape: namespace `demo`, a control plane and three pods on loopback addresses
 * `<base>.x` (default base 127.0.10), and the copy of `manifests/demo/` the control plane watches,
 * with the pod addresses rewritten to the chosen base. The manifests are the source of truth for
 * what the control plane sees; the constants here must agree with them, and `prepareManifests`
 * checks that they do.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, UsageError } from './errors';

export const DEMO_NAMESPACE = 'demo';
/** The base the checked-in manifests use; other bases are substituted for it. */
export const DEFAULT_BASE_IP = '127.0.10';
export const APP_PORT = 8080;
/** SPEC.md, "Ports". */
export const SIDECAR_PORTS = { admin: 15000, outbound: 15001, inbound: 15006, metrics: 15020, health: 15021 } as const;
export const CONTROL_PLANE_PORTS = { xds: 15010, ca: 15012, debug: 15014 } as const;
/** The file the user edits to change the split (in the temp copy). */
export const POLICY_FILE = 'backend-traffic-policy.yaml';

export interface DemoPod {
  readonly name: string;
  readonly app: 'frontend' | 'backend';
  readonly version?: string;
  readonly serviceAccount: string;
  /** The pod's address: `<base>.<octet>`. */
  readonly ip: string;
}

export interface DemoLayout {
  readonly base: string;
  readonly controlPlaneIp: string;
  readonly xdsAddress: string;
  /** The CA (certificate signing and xDS over TLS). */
  readonly caAddress: string;
  readonly debugAddress: string;
  readonly pods: readonly DemoPod[];
  readonly frontend: DemoPod;
  /** What the frontend calls through its sidecar, and what the load generator sends as Host. */
  readonly backendHost: string;
  readonly frontendHost: string;
}

/**
 * Validates `--base-ip`: three octets of a loopback address (`127.a.b`), so that every demo
 * address is local to this machine without any setup on Linux.
 */
export function parseBaseIp(value: string): string {
  const m = /^127\.(\d{1,3})\.(\d{1,3})$/.exec(value);
  if (!m || Number(m[1]) > 255 || Number(m[2]) > 255) {
    throw new UsageError(`--base-ip must be three octets of a loopback address like 127.0.10, got "${value}"`);
  }
  return value;
}

/** The demo's addresses for a base. Pure. */
export function demoLayout(base: string): DemoLayout {
  const pod = (name: string, app: DemoPod['app'], octet: number, version?: string): DemoPod => ({
    name,
    app,
    serviceAccount: app,
    ip: `${base}.${octet}`,
    ...(version ? { version } : {}),
  });
  const frontend = pod('frontend', 'frontend', 11);
  const controlPlaneIp = `${base}.1`;
  return {
    base,
    controlPlaneIp,
    xdsAddress: `${controlPlaneIp}:${CONTROL_PLANE_PORTS.xds}`,
    caAddress: `${controlPlaneIp}:${CONTROL_PLANE_PORTS.ca}`,
    debugAddress: `${controlPlaneIp}:${CONTROL_PLANE_PORTS.debug}`,
    pods: [frontend, pod('backend-v1', 'backend', 21, 'v1'), pod('backend-v2', 'backend', 22, 'v2')],
    frontend,
    backendHost: `backend.${DEMO_NAMESPACE}.svc.cluster.local`,
    frontendHost: `frontend.${DEMO_NAMESPACE}.svc.cluster.local`,
  };
}

/**
 * Copies every `*.yaml` of `srcDir` into `destDir` (created), replacing addresses under the
 * default base with `layout.base`. Synchronous. Throws CliError when the source is missing or
 * does not mention every pod address of the layout (the constants above drifted from the files).
 */
export function prepareManifests(srcDir: string, destDir: string, layout: DemoLayout): string[] {
  let names: string[];
  try {
    names = readdirSync(srcDir).filter((n) => n.endsWith('.yaml')).sort();
  } catch (err) {
    throw new CliError(`cannot read the demo manifests in ${srcDir}`, { cause: err });
  }
  if (names.length === 0) throw new CliError(`no demo manifests (*.yaml) in ${srcDir}`);
  mkdirSync(destDir, { recursive: true });
  const from = new RegExp(`\\b${DEFAULT_BASE_IP.replace(/\./g, '\\.')}\\.(\\d{1,3})\\b`, 'g');
  let all = '';
  for (const name of names) {
    const text = readFileSync(join(srcDir, name), 'utf8').replace(from, `${layout.base}.$1`);
    writeFileSync(join(destDir, name), text);
    all += text;
  }
  for (const pod of layout.pods) {
    if (!all.includes(`podIP: ${pod.ip}`)) {
      throw new CliError(`the demo manifests in ${srcDir} have no pod ${pod.name} at ${pod.ip}`);
    }
  }
  if (!names.includes(POLICY_FILE)) throw new CliError(`the demo manifests in ${srcDir} lack ${POLICY_FILE}`);
  return names.map((n) => join(destDir, n));
}
