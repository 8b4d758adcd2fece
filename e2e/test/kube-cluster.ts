/**
 * A real Kubernetes control plane for a test file: `scripts/cluster.mjs up` into a fresh temp
 * directory (etcd, kube-apiserver, kube-controller-manager and the one-Node stand-in on free
 * loopback ports, so test files run concurrently, each with its own cluster).
 *
 *   const cluster = await startKubeCluster();
 *   if (typeof cluster === 'string') return t.skip(cluster);   // outside CI only
 *   after(() => cluster.close());
 *
 * It never builds: where the binary is not built (no Go, or `npm run cluster -- build` not run)
 * it resolves a skip reason, except under CI (`process.env.CI`), where it rejects, since CI
 * builds the cluster first (.ci/run). No kubelet runs: pods are bound to the Node `weft-node`
 * and tests set their status with `setPodStatus`, as a kubelet would.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const CLUSTER_SCRIPT = path.join(ROOT, 'scripts', 'cluster.mjs');
/** cluster.mjs's exit status for "a prerequisite is missing here" (Go, openssl, the binary). */
const EXIT_MISSING = 3;

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface KubeCluster {
  /** The cluster's directory: kubeconfig, bin/kubectl, state.json, logs/, pki/. */
  readonly dir: string;
  /** Admin kubeconfig (O=system:masters). */
  readonly kubeconfig: string;
  /** `https://127.0.0.1:PORT`. */
  readonly apiServerUrl: string;
  /** The CA (PEM file) that signed the API server's serving certificate. */
  readonly caFile: string;
  /** The Kubernetes release it runs, e.g. `v1.37.2`. */
  readonly version: string;
  /** The Node pods are bound to. */
  readonly nodeName: string;
  /** pids of etcd, apiServer, controllerManager and node, as recorded in state.json. */
  readonly pids: Readonly<Record<string, number>>;
  /** Runs kubectl as the admin; `input` goes to its stdin (for `apply -f -`). Never rejects on a non-zero exit. */
  kubectl(args: readonly string[], input?: string): Promise<CommandResult>;
  /** Stops every process and removes the directory. Idempotent. */
  close(): Promise<void>;
}

/** Why the cluster cannot run here; print it with `t.skip(reason)`. */
export type SkipReason = string;

/** Runs a command to completion; resolves its exit code and output (never rejects for a non-zero exit). */
export function runCommand(file: string, args: readonly string[], input?: string, env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

const clusterCommand = (...args: string[]): Promise<CommandResult> => runCommand(process.execPath, [CLUSTER_SCRIPT, ...args]);

// A test process that dies with clusters still up must not leave them running.
const open = new Set<string>();
process.once('exit', () => {
  for (const dir of open) spawnSync(process.execPath, [CLUSTER_SCRIPT, 'down', '--dir', dir], { stdio: 'ignore' });
});

/** Starts a cluster in a fresh temp dir, or says why it cannot run here (see the module doc). */
export async function startKubeCluster(): Promise<KubeCluster | SkipReason> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-kube-'));
  open.add(dir);
  const up = await clusterCommand('up', '--dir', dir, '--no-build');
  if (up.code !== 0) {
    await clusterCommand('down', '--dir', dir);
    open.delete(dir);
    const keep = up.code !== EXIT_MISSING && process.env.WEFT_TEST_KEEP_CLUSTER;
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
    const message = up.stderr.trim().split('\n').filter((l) => l.startsWith('cluster: ')).join('\n') || up.stderr.trim();
    if (up.code === EXIT_MISSING) {
      const reason = `no test cluster here: ${message.replace(/^cluster: /, '')}`;
      if (process.env.CI) throw new Error(`${reason} (CI must build it: .ci/run runs \`npm run cluster -- build\`)`);
      return reason;
    }
    throw new Error(`npm run cluster -- up failed (exit ${up.code}):\n${up.stderr}`);
  }
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as {
    apiServerUrl: string; kubeconfig: string; kubectl: string; version: string; nodeName: string; pids: Record<string, number>;
  };
  let closing: Promise<void> | undefined;
  return {
    dir,
    kubeconfig: state.kubeconfig,
    apiServerUrl: state.apiServerUrl,
    caFile: path.join(dir, 'pki', 'ca.crt'),
    version: state.version,
    nodeName: state.nodeName,
    pids: { ...state.pids },
    kubectl: (args, input) => runCommand(state.kubectl, ['--kubeconfig', state.kubeconfig, ...args], input),
    close: () => {
      closing ??= (async () => {
        const down = await clusterCommand('down', '--dir', dir);
        open.delete(dir);
        if (down.code !== 0) throw new Error(`npm run cluster -- down failed (exit ${down.code}): ${down.stderr.trim()}`);
        if (!process.env.WEFT_TEST_KEEP_CLUSTER) fs.rmSync(dir, { recursive: true, force: true });
      })();
      return closing;
    },
  };
}

/**
 * Writes a kubeconfig at `file` that authenticates with `token` alone (e.g. from `kubectl create
 * token SA`), to act as a service account rather than the admin.
 */
export function writeTokenKubeconfig(cluster: KubeCluster, token: string, file: string): string {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'weft-test', cluster: { server: cluster.apiServerUrl, 'certificate-authority-data': fs.readFileSync(cluster.caFile).toString('base64') } }],
    users: [{ name: 'token', user: { token } }],
    contexts: [{ name: 'weft-test', context: { cluster: 'weft-test', user: 'token' } }],
    'current-context': 'weft-test',
  };
  fs.writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  return file;
}

export interface PodStatusOptions {
  readonly podIP: string;
  /** Ready and ContainersReady conditions; default true. */
  readonly ready?: boolean;
  /** Default `Running`. */
  readonly phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed';
}

/**
 * Sets a pod's status as a kubelet would, through the status subresource: phase, podIP(s),
 * hostIP (127.0.0.1) and the Ready conditions. Rejects with kubectl's message when it fails.
 */
export async function setPodStatus(cluster: KubeCluster, namespace: string, name: string, opts: PodStatusOptions): Promise<void> {
  const ready = (opts.ready ?? true) ? 'True' : 'False';
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string, status: string) => ({ type, status, lastTransitionTime: now });
  const patch = {
    status: {
      phase: opts.phase ?? 'Running',
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP: opts.podIP,
      podIPs: [{ ip: opts.podIP }],
      startTime: now,
      conditions: [
        condition('PodScheduled', 'True'), condition('Initialized', 'True'),
        condition('ContainersReady', ready), condition('Ready', ready),
      ],
    },
  };
  const r = await cluster.kubectl(['patch', 'pod', name, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify(patch)]);
  if (r.code !== 0) throw new Error(`setting the status of pod ${namespace}/${name} failed: ${r.stderr.trim()}`);
}

/** Polls `check` every 100 ms until it returns a value other than undefined; rejects after `timeoutMs` with `what`. */
export async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
