/**
 * `weft control-plane`: runs the control plane until SIGINT/SIGTERM, in local mode
 * (`--manifests DIR`) or Kubernetes mode (`--kubeconfig FILE`, or `--in-cluster` in a pod).
 */
import { statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { createLogger, parseDuration } from '@weft/api';
import { booleanFlag, parseHostPort, stringFlag, type ParsedArgs } from './args';
import type { Command } from './command';
import { UsageError } from './errors';
import { checkNamespace, loadKubeClient } from './kube-load';
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

/** `$XDG_STATE_HOME/weft` (default `~/.local/state/weft`): outside any manifests directory. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'weft');
}

function durationFlag(args: ParsedArgs, name: string): number | undefined {
  const v = stringFlag(args, name);
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) throw new UsageError(`--${name} must be a positive duration such as 24h or 90m, got "${v}"`);
  return ms;
}

/** The identity options (CA, tokens, 15012), or undefined with --no-ca. */
function identityOptions(args: ParsedArgs, manifests: string | undefined, xdsAddress: string) {
  const caCert = stringFlag(args, 'ca-cert');
  const caKey = stringFlag(args, 'ca-key');
  const caChain = stringFlag(args, 'ca-chain');
  if (booleanFlag(args, 'no-ca')) {
    for (const f of ['data-dir', 'ca-address', 'ca-cert', 'ca-key', 'ca-chain', 'rotate-root', 'cert-ttl', 'root-overlap']) {
      if (args.flags.has(f)) throw new UsageError(`--${f} cannot be combined with --no-ca`);
    }
    return undefined;
  }
  if ((caCert === undefined) !== (caKey === undefined)) throw new UsageError('--ca-cert and --ca-key go together');
  if (caChain !== undefined && caCert === undefined) throw new UsageError('--ca-chain needs --ca-cert and --ca-key');
  if (caCert !== undefined && booleanFlag(args, 'rotate-root')) {
    throw new UsageError('--rotate-root generates a root; with --ca-cert, rotate by starting with the new CA files (docs/operations.md)');
  }
  let dataDir: string | undefined;
  if (manifests === undefined) {
    // Kubernetes mode: the CA lives in the Secret weft-ca, tokens are the pods' projected ones.
    if (args.flags.has('data-dir')) throw new UsageError('--data-dir is for local mode; in Kubernetes mode the CA is kept in the Secret weft-ca');
  } else {
    dataDir = resolve(stringFlag(args, 'data-dir') ?? defaultDataDir());
    const rel = relative(manifests, dataDir);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw new UsageError(`--data-dir ${dataDir} is inside the manifests directory ${manifests}: keys must not sit next to the YAML`);
    }
  }
  const workloadTtlMs = durationFlag(args, 'cert-ttl');
  return {
    dataDir,
    // Default: beside xDS, on the host the sidecars already reach (their WEFT_CA_ADDRESS default).
    caAddress: parseHostPort(stringFlag(args, 'ca-address') ?? `${xdsAddress.slice(0, xdsAddress.lastIndexOf(':'))}:15012`, '--ca-address'),
    operatorCa: caCert !== undefined ? { certFile: resolve(caCert), keyFile: resolve(caKey!), ...(caChain !== undefined ? { chainFile: resolve(caChain) } : {}) } : undefined,
    rotateRoot: booleanFlag(args, 'rotate-root'),
    workloadTtlMs,
    rootOverlapMs: durationFlag(args, 'root-overlap'),
  };
}

/** Mesh tracing (docs/tracing.md): off unless --tracing-endpoint is given; sampling 1% by default. */
function tracingOptions(args: ParsedArgs): { endpoint: string; samplingPercent: number } | undefined {
  const endpoint = stringFlag(args, 'tracing-endpoint');
  const sampling = stringFlag(args, 'tracing-sampling');
  if (endpoint === undefined) {
    if (sampling !== undefined) throw new UsageError('--tracing-sampling needs --tracing-endpoint');
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new UsageError(`--tracing-endpoint must be an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/traces), got "${endpoint}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--tracing-endpoint must be an http:// or https:// URL, got "${endpoint}"`);
  const samplingPercent = sampling === undefined ? 1 : Number(sampling.replace(/%$/, ''));
  if (!Number.isFinite(samplingPercent) || samplingPercent < 0 || samplingPercent > 100 || (sampling !== undefined && sampling.trim() === '')) {
    throw new UsageError(`--tracing-sampling must be a percentage from 0 to 100, got "${sampling}"`);
  }
  return { endpoint: url.href, samplingPercent };
}

/** `--mesh-config FILE` (the chart's ConfigMap weft-mesh): a bad file is one line, exit 2. */
async function readMeshConfig(file: string): Promise<import('@weft/control-plane').MeshConfig> {
  const { loadMeshConfig } = await import('@weft/control-plane');
  try {
    return await loadMeshConfig(file);
  } catch (e) {
    throw new UsageError(`--mesh-config ${(e as Error).message}`);
  }
}

/** Kubernetes mode: where the API server is, this replica's namespace and name, leader election. */
function kubeOptions(args: ParsedArgs, kubeconfig: string | undefined) {
  if (kubeconfig !== undefined) {
    try {
      statSync(kubeconfig);
    } catch {
      throw new UsageError(`--kubeconfig: no such file: ${kubeconfig}`);
    }
  } else if (!process.env.KUBERNETES_SERVICE_HOST) {
    throw new UsageError('--in-cluster: not running in a Kubernetes pod (KUBERNETES_SERVICE_HOST is not set); use --kubeconfig FILE');
  }
  const namespace = checkNamespace('namespace', stringFlag(args, 'namespace') ?? process.env.POD_NAMESPACE ?? 'weft-system');
  return {
    kubeconfig: kubeconfig === undefined ? undefined : resolve(kubeconfig),
    namespace,
    identity: process.env.POD_NAME || `${hostname()}-${process.pid}`,
    leaderElect: !booleanFlag(args, 'no-leader-elect'),
  };
}

/** The admission webhooks (--webhook-address, --injection-config): off unless an address is given; they need the CA. */
async function webhookOptions(args: ParsedArgs, identity: boolean) {
  const address = stringFlag(args, 'webhook-address');
  const configFile = stringFlag(args, 'injection-config');
  if (address === undefined) {
    if (configFile !== undefined) throw new UsageError('--injection-config needs --webhook-address (the injector runs in the webhook server)');
    return undefined;
  }
  if (!identity) throw new UsageError('--webhook-address cannot be combined with --no-ca: the webhooks\' certificate comes from the CA');
  const { DEFAULT_INJECTION_CONFIG, InjectionConfigError, loadInjectionConfig } = await import('@weft/control-plane');
  try {
    const injection = configFile !== undefined ? await loadInjectionConfig(configFile) : DEFAULT_INJECTION_CONFIG;
    return { address: parseHostPort(address, '--webhook-address'), injection };
  } catch (e) {
    if (e instanceof InjectionConfigError) throw new UsageError(e.message, { more: e.problems.slice(1) });
    throw e;
  }
}

async function run(args: ParsedArgs): Promise<number> {
  const manifests = stringFlag(args, 'manifests');
  const kubeconfig = stringFlag(args, 'kubeconfig');
  const inCluster = booleanFlag(args, 'in-cluster');
  const modes = [manifests !== undefined, kubeconfig !== undefined, inCluster].filter(Boolean).length;
  if (modes !== 1) {
    throw new UsageError(modes === 0
      ? 'give --manifests DIR (local mode), --kubeconfig FILE or --in-cluster (Kubernetes mode)'
      : '--manifests, --kubeconfig and --in-cluster exclude each other');
  }
  const dir = manifests === undefined ? undefined : manifestsDir(manifests);
  const kube = dir === undefined ? kubeOptions(args, kubeconfig) : undefined;
  if (dir !== undefined) {
    for (const f of ['namespace', 'no-leader-elect']) if (args.flags.has(f)) throw new UsageError(`--${f} is for Kubernetes mode (--kubeconfig or --in-cluster)`);
  }
  const xdsAddress = parseHostPort(stringFlag(args, 'xds-address') ?? '127.0.0.1:15010', '--xds-address');
  const debugAddress = parseHostPort(stringFlag(args, 'debug-address') ?? '127.0.0.1:15014', '--debug-address');
  const meshFile = stringFlag(args, 'mesh-config');
  const mesh = meshFile === undefined ? {} : await readMeshConfig(meshFile);
  const identityFlags = identityOptions(args, dir, xdsAddress);
  const identity = identityFlags && mesh.trustDomain ? { ...identityFlags, trustDomain: mesh.trustDomain } : identityFlags;
  const rootFlag = stringFlag(args, 'root-namespace');
  const rootNamespace = rootFlag === undefined ? mesh.rootNamespace : checkNamespace('root-namespace', rootFlag);
  const tracing = tracingOptions(args) ?? mesh.tracing;
  const webhooks = await webhookOptions(args, identity !== undefined);
  const log = createLogger({ component: 'control-plane' });

  return serveUntilStopped(
    async () => {
      // Loaded here, not at the top: `weft sidecar` shares this binary and must not pay for the
      // control plane's modules (yaml, prom-client, ...) in its memory (docs/performance.md).
      const { startControlPlane } = await import('@weft/control-plane');
      const source = kube
        ? { kube: {
          client: await loadKubeClient(kube.kubeconfig), namespace: kube.namespace, identity: kube.identity,
          ...(kube.leaderElect ? {} : { leaderElection: false as const }), ...(mesh.defaultReach ? { defaultReach: mesh.defaultReach } : {}),
        } }
        : { manifestsDir: dir! };
      const cp = await startControlPlane({ ...source, xdsAddress, debugAddress, identity, log, ...(rootNamespace ? { rootNamespace } : {}), ...(tracing ? { tracing } : {}), ...(webhooks ? { webhooks } : {}) });
      log.info('control plane serving', { ...(dir ? { manifests: dir } : { namespace: kube?.namespace }), xdsPort: cp.xdsPort, debugPort: cp.debugPort, ...(cp.caPort !== undefined ? { caPort: cp.caPort, dataDir: identity?.dataDir } : {}) });
      return cp;
    },
    { log, exitWithParent: booleanFlag(args, 'exit-with-parent'), what: 'control plane' },
  );
}

export const controlPlaneCommand: Command = {
  name: 'control-plane',
  summary: 'run the control plane (--manifests DIR, --kubeconfig FILE or --in-cluster)',
  usage: 'weft control-plane (--manifests DIR | --kubeconfig FILE | --in-cluster) [--namespace NS] [--no-leader-elect] [--xds-address HOST:PORT] [--debug-address HOST:PORT] [--data-dir DIR] [--ca-address HOST:PORT]\n' +
    '                         [--ca-cert FILE --ca-key FILE [--ca-chain FILE]] [--rotate-root] [--cert-ttl DURATION] [--root-overlap DURATION] [--no-ca]\n' +
    '                         [--tracing-endpoint URL [--tracing-sampling PERCENT]] [--webhook-address HOST:PORT [--injection-config FILE]]',
  description: [
    'Runs the control plane. With --manifests it watches DIR, a directory of Kubernetes YAML\n' +
      '(Services, Pods with status.podIP, EndpointSlices, weft.dev policies), and serves the\n' +
      'translated Envoy v3 configuration to every sidecar over ADS. Changes to DIR reach\n' +
      'connected proxies within a second; an invalid document is logged and skipped.',
    'Identity: a certificate authority signs workload certificates on --ca-address (gRPC over\n' +
      'TLS, also ADS). Its root is generated on first start and kept in --data-dir (default\n' +
      '$XDG_STATE_HOME/weft, i.e. ~/.local/state/weft), or comes from --ca-cert/--ca-key (a root or\n' +
      'an intermediate, with --ca-chain up to the root). Service-account tokens for the Pods in DIR\n' +
      'are written to DATA/tokens/<namespace>/<service-account>/token. --rotate-root makes a new\n' +
      'root; the old one stays trusted for --root-overlap (default 2 x --cert-ttl). --no-ca runs\n' +
      'without identity (docs/operations.md).',
    'Tracing: with --tracing-endpoint every sidecar exports OpenTelemetry spans over OTLP/HTTP\n' +
      '(protobuf) to URL, sampling --tracing-sampling percent of new traces (default 1; a sampled\n' +
      'incoming traceparent is always continued). `weft trace` can be that endpoint (docs/tracing.md).',
    'Kubernetes mode (--kubeconfig FILE, or --in-cluster inside a pod) watches Services, Pods,\n' +
      'EndpointSlices, Namespaces and the weft.dev policies through the API server, writes each\n' +
      'policy\'s status.conditions, keeps the CA in the Secret weft-ca of --namespace (default\n' +
      '$POD_NAMESPACE, else weft-system) and checks sidecar tokens with TokenReview. Replicas elect a\n' +
      'leader through the Lease weft-control-plane-leader; only the leader writes (--no-leader-elect:\n' +
      'this replica always does). See docs/operations.md.',
    'Admission webhooks: with --webhook-address the control plane serves the sidecar injector\n' +
      '(POST /inject) and the weft.dev validator (POST /validate) over HTTPS, with a certificate\n' +
      'from its CA (15017 in a cluster); --injection-config is what the injector adds\n' +
      '(docs/configuration.md, "InjectionConfig"; default: the built-in defaults).',
    'Logs are JSON lines on stderr (level from WEFT_LOG_LEVEL). SIGINT or SIGTERM stops\n' +
      'gracefully and exits 0; a second signal stops at once.',
  ],
  flags: [
    { name: 'manifests', type: 'string', placeholder: 'DIR', help: 'local mode: watch this directory of Kubernetes YAML' },
    { name: 'kubeconfig', type: 'string', placeholder: 'FILE', help: 'Kubernetes mode: the API server and credentials from this kubeconfig' },
    { name: 'in-cluster', type: 'boolean', help: 'Kubernetes mode inside a pod: the service account\'s credentials' },
    { name: 'namespace', type: 'string', placeholder: 'NS', help: 'Kubernetes mode: the control plane\'s namespace (Lease, CA Secret; default $POD_NAMESPACE or weft-system)' },
    { name: 'mesh-config', type: 'string', placeholder: 'FILE', help: 'mesh settings (YAML: trustDomain, rootNamespace, tracing, defaultReach); flags override it' },
    { name: 'no-leader-elect', type: 'boolean', help: 'Kubernetes mode: do not elect; this replica writes status and Secrets' },
    { name: 'xds-address', type: 'string', placeholder: 'HOST:PORT', help: 'plaintext xDS listen address (default 127.0.0.1:15010)' },
    { name: 'debug-address', type: 'string', placeholder: 'HOST:PORT', help: '/metrics and /debug/* listen address (default 127.0.0.1:15014)' },
    { name: 'data-dir', type: 'string', placeholder: 'DIR', help: 'the CA root, trust state and tokens (default $XDG_STATE_HOME/weft)' },
    { name: 'ca-address', type: 'string', placeholder: 'HOST:PORT', help: 'TLS listen address for certificate signing and xDS (default: the --xds-address host, port 15012)' },
    { name: 'ca-cert', type: 'string', placeholder: 'FILE', help: "the operator's CA certificate (root or intermediate), PEM" },
    { name: 'ca-key', type: 'string', placeholder: 'FILE', help: 'its private key, PEM' },
    { name: 'ca-chain', type: 'string', placeholder: 'FILE', help: 'certificates above --ca-cert up to the root, PEM' },
    { name: 'rotate-root', type: 'boolean', help: 'generate a new root now; the old one stays trusted for --root-overlap' },
    { name: 'cert-ttl', type: 'string', placeholder: 'DURATION', help: 'workload certificate lifetime (default 24h)' },
    { name: 'root-overlap', type: 'string', placeholder: 'DURATION', help: 'how long a replaced root stays trusted (default 2 x --cert-ttl)' },
    { name: 'no-ca', type: 'boolean', help: 'run without identity: no CA, no 15012, no trust bundle' },
    { name: 'root-namespace', type: 'string', placeholder: 'NS', help: 'where a PeerAuthentication without selector is mesh-wide (default weft-system)' },
    { name: 'tracing-endpoint', type: 'string', placeholder: 'URL', help: 'OTLP/HTTP endpoint for the sidecars\' spans, e.g. http://127.0.0.1:4318/v1/traces (default: tracing off)' },
    { name: 'tracing-sampling', type: 'string', placeholder: 'PERCENT', help: 'percent of new traces sampled, 0-100 (default 1)' },
    { name: 'webhook-address', type: 'string', placeholder: 'HOST:PORT', help: 'HTTPS listen address of the admission webhooks (default: off; 0.0.0.0:15017 in a cluster)' },
    { name: 'injection-config', type: 'string', placeholder: 'FILE', help: 'InjectionConfig YAML/JSON for the sidecar injector (needs --webhook-address)' },
    EXIT_WITH_PARENT_FLAG,
  ],
  available: true,
  run,
};
