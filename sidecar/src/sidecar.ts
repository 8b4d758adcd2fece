/**
 * Wiring of the sidecar: xDS client → validated `ProxyConfig` → listeners, plus the admin and
 * health servers. Lifecycle: INITIALIZING until the first complete config is applied, then LIVE;
 * DRAINING on `/drain` or `close()`, when readiness turns false and in-flight requests finish.
 */
import { readFileSync } from 'node:fs';
import { createLogger, formatSpiffeId, INTERCEPTION_MODE, MTLS_CAPABLE, sidecarNodeId, TypeUrl, type Logger } from '@weft/api';
import { assertCaptureAvailable, originalDestination } from './original-dst';
import { AdminServer, HealthServer, MetricsServer, type ServerState } from './admin';
import { MetricsRegistry } from './metrics';
import { clusterStats, RequestMetrics, workloadOfPod } from './metrics-requests';
import { XdsMetrics } from './metrics-xds';
import { configureTracing } from './trace-stats';
import { stopTracing } from './trace-span';
import { AuthzDenials } from './authz-enforce';
import { parseAppProbes, type AppProbes } from './app-probe';
import { EMPTY_CONFIG, type ProxyConfig, type TrustBundle } from './config';
import type { IdentityProvider } from './identity';
import { TlsContexts } from './tls-contexts';
import { buildProxyConfig, type XdsResources } from './config-from-xds';
import { retainReferencedClusters } from './config-retain';
import { SHARED_RETRY_BUDGETS } from './retry-budget';
import { ListenerManager } from './listener-manager';
import { UpstreamPool } from './upstream-pool';
import { XdsClient, type HeldState } from './xds-client';
import { CertManager } from './cert-manager';

export interface SidecarOptions {
  /** host:port of the control plane's xDS (WEFT_XDS_ADDRESS). */
  readonly xdsAddress: string;
  readonly podName: string;
  readonly namespace: string;
  /** Every port binds on this address (SPEC.md, "Local mode"). */
  readonly podIp: string;
  readonly serviceAccount: string;
  readonly trustDomain: string;
  /** Overrides for tests; defaults are SPEC.md's 15000 and 15021. */
  readonly adminPort?: number;
  readonly healthPort?: number;
  readonly metricsPort?: number;
  /** Graceful drain bound on SIGTERM (default 5000 ms). */
  readonly drainTimeoutMs?: number;
  /**
   * On close, how long at least to keep accepting new connections after withdrawing from the
   * control plane, so callers stop choosing this pod before it stops answering (default 2000 ms, at
   * most `drainTimeoutMs`); longer while callers still open connections (up to `drainTimeoutMs`).
   */
  readonly drainAcceptMs?: number;
  /**
   * The pod's traffic is captured by iptables (`weft capture-init`): the sidecar tells the control
   * plane (node metadata INTERCEPTION_MODE=REDIRECT) and reads each connection's original
   * destination. Needs the SO_ORIGINAL_DST addon; without it, startup fails saying so.
   */
  readonly capture?: boolean;
  /** The app's kubelet probes rewritten to 15021 (`WEFT_APP_PROBES`, app-probe.ts). */
  readonly appProbes?: AppProbes;
  /**
   * Workload identity: a certificate from the control plane's CA (cert-manager.ts). Absent: the
   * sidecar runs without identity (no certificate; readiness waits for config only).
   */
  readonly identity?: SidecarIdentityOptions;
  /**
   * A workload certificate from elsewhere than the CA (tests pass a static one); `identity` (the
   * certificate manager) takes precedence. With either, the sidecar terminates and originates mesh
   * mTLS and tells the control plane (node metadata `WEFT_MTLS`); with neither, plaintext only.
   */
  readonly identityProvider?: IdentityProvider;
  /** Trust bundles used when xDS has sent none of that name (tests; SDS `ROOTCA` supersedes). */
  readonly trustBundles?: ReadonlyMap<string, TrustBundle>;
  readonly log?: Logger;
}

export interface SidecarIdentityOptions {
  /** The service-account token, audience `weft` (WEFT_TOKEN_PATH); re-read at every request. */
  readonly tokenPath: string;
  /** PEM root(s) the control plane's 15012 certificate chains to (WEFT_CA_ROOT_CERT). */
  readonly rootCertPath: string;
  /** host:port of the CA (WEFT_CA_ADDRESS; default the xDS host with port 15012). */
  readonly caAddress: string;
  /** Requested certificate lifetime (0 or absent: the CA's default). */
  readonly validitySeconds?: number;
}

export interface Sidecar {
  /** Resolves once the first complete config is applied and, with identity, a certificate is held (what /healthz/ready reports). */
  readonly ready: Promise<void>;
  /** Resolves when the sidecar has stopped (after `close()`, or `POST /quitquitquit`). */
  readonly closed: Promise<void>;
  /** The workload certificate (when identity is configured): what mTLS builds its contexts from. */
  readonly identity?: IdentityProvider;
  /** Graceful drain then stop. Idempotent. */
  close(): Promise<void>;
  destroy(): void;
}

/**
 * Reads SPEC.md's sidecar environment. Returns a list of problems (one line each) when a
 * required variable is missing or malformed.
 */
export function sidecarOptionsFromEnv(env: NodeJS.ProcessEnv): { options?: SidecarOptions; errors: string[] } {
  const errors: string[] = [];
  const need = (k: string): string => {
    const v = env[k];
    if (!v) errors.push(`${k} is required`);
    return v ?? '';
  };
  const options: SidecarOptions = {
    xdsAddress: need('WEFT_XDS_ADDRESS'),
    podName: need('POD_NAME'),
    namespace: need('POD_NAMESPACE'),
    podIp: need('POD_IP'),
    serviceAccount: env.SERVICE_ACCOUNT || 'default',
    trustDomain: env.WEFT_TRUST_DOMAIN || 'cluster.local',
    capture: env.WEFT_CAPTURE === 'true',
  };
  if (env.WEFT_CAPTURE !== undefined && env.WEFT_CAPTURE !== 'true' && env.WEFT_CAPTURE !== 'false') {
    errors.push(`WEFT_CAPTURE must be true or false, got "${env.WEFT_CAPTURE}"`);
  }
  if (env.WEFT_APP_PROBES) {
    const parsed = parseAppProbes(env.WEFT_APP_PROBES);
    if ('error' in parsed) errors.push(parsed.error);
    else (options as { appProbes?: AppProbes }).appProbes = parsed.probes;
  }
  if (options.xdsAddress && !/^[^\s:]+:\d+$/.test(options.xdsAddress)) {
    errors.push(`WEFT_XDS_ADDRESS must be host:port, got "${options.xdsAddress}"`);
  }
  if (env.WEFT_TOKEN_PATH) {
    if (!env.WEFT_CA_ROOT_CERT) errors.push('WEFT_CA_ROOT_CERT is required with WEFT_TOKEN_PATH (the root the CA on 15012 is verified against)');
    const caAddress = env.WEFT_CA_ADDRESS || `${options.xdsAddress.slice(0, options.xdsAddress.lastIndexOf(':'))}:15012`;
    if (!/^[^\s:]+:\d+$/.test(caAddress)) errors.push(`WEFT_CA_ADDRESS must be host:port, got "${caAddress}"`);
    return errors.length ? { errors } : { options: { ...options, identity: { tokenPath: env.WEFT_TOKEN_PATH, rootCertPath: env.WEFT_CA_ROOT_CERT!, caAddress } }, errors };
  }
  return errors.length ? { errors } : { options, errors };
}

/**
 * How long, at least, a closing sidecar keeps accepting after leaving xDS. Callers must learn that this pod is
 * leaving (a push from the control plane) before it stops answering; 1 s was seen too short for a
 * push on two busy cores (e2e lifecycle test). Istio drains for 5 s.
 */
const DRAIN_ACCEPT_MS = 2000;
/** After that minimum, how long without a new connection means callers have moved on. */
const DRAIN_QUIET_MS = 300;

const SUBSCRIBED = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Secret];

export async function startSidecar(opts: SidecarOptions): Promise<Sidecar> {
  const log = opts.log ?? createLogger({ component: 'sidecar', pod: `${opts.namespace}/${opts.podName}` });
  if (opts.capture) assertCaptureAvailable();
  const nodeId = sidecarNodeId(opts.podIp, opts.podName, opts.namespace);
  let config: ProxyConfig = EMPTY_CONFIG;
  let state: ServerState = 'INITIALIZING';
  const transition = (to: ServerState): void => {
    if (state === to) return;
    log.info(`sidecar ${state} -> ${to}`);
    state = to;
  };
  const metrics = new MetricsRegistry();
  const certs = opts.identity && new CertManager({
    ...opts.identity,
    spiffeId: formatSpiffeId({ trustDomain: opts.trustDomain, namespace: opts.namespace, serviceAccount: opts.serviceAccount }),
    metrics,
    log: log.child({ module: 'cert-manager' }),
    // After a root rotation the CA's serving certificate may chain to a root newer than the file.
    extraRoots: () => config.trustBundles?.get('ROOTCA')?.caPem,
  });
  const identity: IdentityProvider | undefined = certs || opts.identityProvider;
  // Tracing (trace-stats.ts): who this sidecar is on its spans; drops counted on /metrics.
  configureTracing({ metrics, log: log.child({ module: 'trace' }), local: { namespace: opts.namespace, podName: opts.podName, spiffeId: identity ? formatSpiffeId({ trustDomain: opts.trustDomain, namespace: opts.namespace, serviceAccount: opts.serviceAccount }) : undefined } });
  const tls = new TlsContexts({
    ...(identity ? { identity } : {}),
    trustBundles: () => (config.trustBundles?.size || !opts.trustBundles ? config.trustBundles : opts.trustBundles),
    log,
  });
  const pool = new UpstreamPool({ tls });
  const authzDenials = new AuthzDenials(metrics, log.child({ module: 'authz' }));
  const tlsRefusals = metrics.counter('weft_inbound_tls_refusals_total', 'Inbound connections closed for want of mesh mTLS (plaintext or TLS on an mTLS-only port, a missing or unverifiable client certificate).', ['reason']);
  const requestMetrics = new RequestMetrics(metrics, { workload: workloadOfPod(opts.podName), namespace: opts.namespace }, () => clusterStats(config, pool));
  const xdsMetrics = new XdsMetrics(metrics);
  const listeners = new ListenerManager(() => config, { log, pool, authzDenials, tlsRefusals, requestMetrics, ...(opts.capture ? { originalDestination } : {}) });

  // In a cluster, xDS is served on the CA's TLS port (15012) too: one port, verified like the CA.
  const xdsRoot = opts.identity && opts.identity.caAddress === opts.xdsAddress ? opts.identity.rootCertPath : undefined;
  const xds: XdsClient = new XdsClient({
    address: opts.xdsAddress,
    ...(xdsRoot ? { tls: () => ({ ca: readFileSync(xdsRoot, 'utf8') }) } : {}),
    nodeId,
    nodeMetadata: { ...(opts.capture ? { [INTERCEPTION_MODE]: 'REDIRECT' } : {}), ...(identity ? { [MTLS_CAPABLE]: 'true' } : {}) },
    types: SUBSCRIBED,
    log: log.child({ module: 'xds-client' }),
    metrics: xdsMetrics,
    apply: async (candidate) => {
      const built = buildProxyConfig(resourcesOf(candidate));
      if (!built.ok) return built.errors.join('; ');
      const previous = config;
      config = retainReferencedClusters(previous, built.config);
      const errors = await listeners.apply(config);
      if (errors.length === 0) {
        SHARED_RETRY_BUDGETS.retain(retryBudgetKeys(config));
        requestMetrics.retain(config);
        return undefined;
      }
      // A listener that cannot bind rejects the whole update: back to exactly what ran before.
      config = previous;
      await listeners.apply(previous);
      return errors.join('; ');
    },
  });

  let closing: Promise<void> | undefined;
  let markClosed!: () => void;
  const closed = new Promise<void>((r) => (markClosed = r));
  // SPEC.md, "Ports": admin is pod-local (127.0.0.1 in a captured pod, the pod IP in local mode);
  // health must be reachable by the kubelet.
  const admin = new AdminServer({
    address: opts.capture ? '127.0.0.1' : opts.podIp,
    port: opts.adminPort ?? 15000,
    log,
    config: () => config,
    state: () => state,
    dump: () => ({
      node: nodeId,
      state,
      xds: { versions: Object.fromEntries(xds.versions), rejected: Object.fromEntries(xds.nacks) },
      config,
      // The certificate and chain only: the private key never appears here (or anywhere outside TLS contexts).
      ...(certs ? { identity: certs.describe() ?? null } : {}),
      resources: Object.fromEntries([...xds.current].map(([t, m]) => [t, Object.fromEntries([...m].map(([n, r]) => [n, r.resource]))])),
    }),
    drain: () => transition('DRAINING'),
    quit: () => void close(),
  });
  const health = new HealthServer({ address: opts.capture ? '0.0.0.0' : opts.podIp, port: opts.healthPort ?? 15021, log, ready: () => state === 'LIVE', appAddress: opts.podIp, ...(opts.appProbes ? { appProbes: opts.appProbes } : {}) });
  const metricsServer = new MetricsServer({ address: opts.capture ? '0.0.0.0' : opts.podIp, port: opts.metricsPort ?? 15020, log, registry: metrics });

  const close = (): Promise<void> => (closing ??= (async () => {
    transition('DRAINING');
    // Shutdown order (FIELD-NOTES 4): withdraw first — leaving xDS makes the control plane stop
    // sending callers through this sidecar (local mode), as a terminating pod leaves its
    // EndpointSlice in a cluster — and keep accepting while callers learn it; only then stop
    // accepting and let in-flight requests finish.
    xds.close();
    certs?.close();
    const drainMs = opts.drainTimeoutMs ?? 5000;
    // From now on HTTP/1 responses close their connections, so a caller that still sends here
    // opens new ones: while connections keep arriving, callers have not learnt yet that this pod is
    // leaving, and the listeners keep accepting (up to the drain timeout); once none arrived for
    // DRAIN_QUIET_MS after the minimum window, they stop. Envoy drains the same way.
    listeners.softDrain();
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    const started = performance.now();
    await sleep(Math.min(opts.drainAcceptMs ?? DRAIN_ACCEPT_MS, drainMs));
    while (performance.now() - listeners.lastAcceptAt() < DRAIN_QUIET_MS && performance.now() - started < drainMs) await sleep(50);
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      listeners.close().then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), drainMs))),
    ]);
    clearTimeout(timer);
    if (!drained) {
      log.warn('drain timed out; closing the remaining connections', { drainTimeoutMs: drainMs });
      listeners.destroy();
    }
    pool.close();
    tls.close();
    // Spans of the drained requests get one last export (bounded; no-op when tracing was never on).
    await Promise.all([admin.close(), health.close(), metricsServer.close(), stopTracing(1000)]);
    log.info('sidecar stopped');
    markClosed();
  })());

  try {
    await admin.listen();
    await health.listen();
    await metricsServer.listen();
  } catch (err) {
    await Promise.all([admin.close(), health.close(), metricsServer.close()]);
    throw err;
  }
  xds.start();
  certs?.start();
  // Ready = config applied AND (with identity) a certificate held.
  const ready = Promise.all([xds.synced, certs?.ready]).then(() => {
    if (state === 'INITIALIZING') transition('LIVE');
  });

  return {
    ready,
    closed,
    identity,
    close,
    destroy: () => {
      transition('DRAINING');
      xds.close();
      certs?.close();
      listeners.destroy();
      pool.destroy();
      tls.close();
      admin.destroy();
      health.destroy();
      metricsServer.destroy();
      markClosed();
    },
  };
}

function resourcesOf(held: HeldState): XdsResources {
  const of = (t: string): Record<string, unknown>[] => [...(held.get(t)?.values() ?? [])].map((r) => r.resource);
  return {
    listeners: of(TypeUrl.Listener),
    routes: of(TypeUrl.RouteConfiguration),
    clusters: of(TypeUrl.Cluster),
    assignments: of(TypeUrl.ClusterLoadAssignment),
    secrets: of(TypeUrl.Secret),
  };
}

/** The retry budgets a config still uses (one per destination virtual host). */
function retryBudgetKeys(config: ProxyConfig): Set<string> {
  const keys = new Set<string>();
  const tables = [...config.routeTables.values(), ...[...config.listeners.values()].flatMap((l) => (l.routes.kind === 'inline' ? [l.routes.table] : []))];
  for (const t of tables) for (const vh of t.virtualHosts) for (const r of vh.routes) if (r.retry) keys.add(r.retry.budget.key);
  return keys;
}
