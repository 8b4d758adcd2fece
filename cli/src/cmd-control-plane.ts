/**
 * `weft control-plane`: runs the control plane in local mode (`--manifests DIR`) until
 * SIGINT/SIGTERM. Kubernetes mode (`--kubeconfig`) is refused with a clear message until issue 8.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createLogger } from '@weft/api';
import { booleanFlag, parseHostPort, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { NotAvailableError, UsageError } from './errors';
import { EXIT_WITH_PARENT_FLAG, serveUntilStopped } from './lifecycle';

/** Checks that `dir` is an existing directory and returns its absolute path. */
function manifestsDir(dir: string): string {
  const abs = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    throw new UsageError(`--manifests: no such directory: ${dir}`);
  }
  if (!isDir) throw new UsageError(`--manifests: not a directory: ${dir}`);
  return abs;
}

async function run(args: ParsedArgs): Promise<number> {
  const manifests = stringFlag(args, 'manifests');
  const kubeconfig = stringFlag(args, 'kubeconfig');
  if (kubeconfig !== undefined) {
    throw new NotAvailableError('--kubeconfig is not supported yet: Kubernetes mode comes with issue 8 (use --manifests DIR)');
  }
  if (manifests === undefined) {
    throw new UsageError('--manifests DIR is required; Kubernetes mode (--kubeconfig) comes with issue 8');
  }
  const dir = manifestsDir(manifests);
  const xdsAddress = parseHostPort(stringFlag(args, 'xds-address') ?? '127.0.0.1:15010', '--xds-address');
  const debugAddress = parseHostPort(stringFlag(args, 'debug-address') ?? '127.0.0.1:15014', '--debug-address');
  const rootNamespace = stringFlag(args, 'root-namespace');
  if (rootNamespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(rootNamespace)) {
    throw new UsageError(`--root-namespace: "${rootNamespace}" is not a namespace name (a DNS label)`);
  }
  const log = createLogger({ component: 'control-plane' });

  return serveUntilStopped(
    async () => {
      // Loaded here, not at the top: `weft sidecar` shares this binary and must not pay for the
      // control plane's modules (yaml, prom-client, ...) in its memory (docs/performance.md).
      const { startControlPlane } = await import('@weft/control-plane');
      const cp = await startControlPlane({ manifestsDir: dir, xdsAddress, debugAddress, log, ...(rootNamespace ? { rootNamespace } : {}) });
      log.info('control plane serving', { manifests: dir, xdsPort: cp.xdsPort, debugPort: cp.debugPort });
      return cp;
    },
    { log, exitWithParent: booleanFlag(args, 'exit-with-parent'), what: 'control plane' },
  );
}

export const controlPlaneCommand: Command = {
  name: 'control-plane',
  summary: 'run the control plane (local mode: --manifests DIR)',
  usage: 'weft control-plane --manifests DIR [--xds-address HOST:PORT] [--debug-address HOST:PORT]',
  description: [
    'Runs the control plane. With --manifests it watches DIR, a directory of Kubernetes YAML\n' +
      '(Services, Pods with status.podIP, EndpointSlices, weft.dev policies), and serves the\n' +
      'translated Envoy v3 configuration to every sidecar over ADS. Changes to DIR reach\n' +
      'connected proxies within a second; an invalid document is logged and skipped.',
    '--kubeconfig (Kubernetes mode) comes with issue 8; until then it exits with status 2.',
    'Logs are JSON lines on stderr (level from WEFT_LOG_LEVEL). SIGINT or SIGTERM stops\n' +
      'gracefully and exits 0; a second signal stops at once.',
  ],
  flags: [
    { name: 'manifests', type: 'string', placeholder: 'DIR', help: 'local mode: watch this directory of Kubernetes YAML' },
    { name: 'kubeconfig', type: 'string', placeholder: 'FILE', help: 'Kubernetes mode (not supported yet: issue 8)' },
    { name: 'xds-address', type: 'string', placeholder: 'HOST:PORT', help: 'plaintext xDS listen address (default 127.0.0.1:15010)' },
    { name: 'debug-address', type: 'string', placeholder: 'HOST:PORT', help: '/metrics and /debug/* listen address (default 127.0.0.1:15014)' },
    { name: 'root-namespace', type: 'string', placeholder: 'NS', help: 'where a PeerAuthentication without selector is mesh-wide (default weft-system)' },
    EXIT_WITH_PARENT_FLAG,
  ],
  available: true,
  run,
};
