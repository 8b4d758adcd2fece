/**
 * Wiring of the control plane: registry → world snapshot → translation → snapshot cache → ADS
 * server (STYLE.md, "The control plane is a pipeline of pure steps"). Registry changes and
 * sidecars coming and going are coalesced for `debounceMs` before one rebuild and push.
 */
import * as http from 'node:http';
import { hostname } from 'node:os';
import * as prom from 'prom-client';
import { createLogger, type KubeObject, type Logger, type NodeIdentity } from '@weft/api';
import { AdsServer } from './ads-server';
import { CertificateAuthority, type OperatorCa } from './ca-authority';
import { CaConfigError } from './ca-errors';
import { DEFAULT_RATE_LIMIT, type RateLimit } from './ca-rate-limit';
import { CaServer, servingDnsNames } from './ca-server';
import { ServingCertificate, servingNamesFor } from './ca-serving-cert';
import type { InjectionConfig } from './inject-config';
import { WebhookServer } from './webhook-server';
import { SigningService } from './ca-service';
import { FileCaStore } from './ca-store-files';
import { loadTokenKey, TokenFiles } from './token-files';
import { LocalTokenValidator, type TokenValidator } from './token-validator';
import type { AdsHooks } from './ads-hooks';
import { FilesRegistry, type Diagnostic } from './registry-files';
import { KubeMode, type KubeModeOptions } from './control-plane-kube';
import { CaStoreRaceError, SecretCaStore } from './ca-store-secret';
import { TokenReviewValidator } from './token-review';
import { RegistryEvents } from './registry-events';
import { encodeSnapshot, SnapshotCache } from './snapshot-cache';
import { SyncStatus } from './sync-status';
import { translate } from './translate';
import type { MeshTracing } from './translate-listeners';
import { buildWorld, nsName, type ReachFn, type World } from './world';

export interface ControlPlaneOptions {
  /** Local mode: a directory of Kubernetes YAML. Exactly one of `manifestsDir` and `kube`. */
  readonly manifestsDir?: string;
  /** Kubernetes mode: informers, leader election, status (control-plane-kube.ts). */
  readonly kube?: KubeModeOptions;
  /** host:port for plaintext xDS (default 127.0.0.1:15010; port 0 picks a free one). */
  readonly xdsAddress?: string;
  /** host:port for /metrics and /debug/* (default 127.0.0.1:15014; port 0 picks one). */
  readonly debugAddress?: string;
  /** How long to gather registry changes before a push (default 100 ms). */
  readonly debounceMs?: number;
  /** The CA, local-mode tokens and the signing API on 15012. Absent: no identity (no 15012, no ROOTCA Secret). */
  readonly identity?: IdentityOptions;
  /** Where a PeerAuthentication without selector is mesh-wide (default `weft-system`). */
  readonly rootNamespace?: string;
  /** Mesh tracing: OTLP endpoint and sampling percent (docs/tracing.md). Absent: off. */
  readonly tracing?: MeshTracing;
  /** The admission webhooks on HTTPS (webhook-server.ts), with a serving certificate from the CA: needs `identity`. Absent: off. */
  readonly webhooks?: WebhookOptions;
  readonly log?: Logger;
}

export interface WebhookOptions {
  /** host:port (15017 in a cluster; port 0 picks one). */
  readonly address: string;
  readonly injection: InjectionConfig;
  /** The control plane's namespace, for the certificate's `weft-control-plane.<ns>.svc` names (default `weft-system`). */
  readonly namespace?: string;
}

export interface IdentityOptions {
  /**
   * Local mode: where the CA's root, the trust state and the tokens live (docs/configuration.md).
   * Kubernetes mode keeps the CA in the Secret `weft-ca` and validates tokens with TokenReview.
   */
  readonly dataDir?: string;
  /** host:port of the TLS port for signing and ADS (default 127.0.0.1:15012; port 0 picks one). */
  readonly caAddress?: string;
  /** The operator's root or intermediate instead of a generated root. */
  readonly operatorCa?: OperatorCa;
  /** Generate a new root at start; the old one stays trusted for `rootOverlapMs`. */
  readonly rotateRoot?: boolean;
  /** Workload certificate lifetime (default 24 h). */
  readonly workloadTtlMs?: number;
  /** How long a replaced root stays trusted (default twice the workload lifetime). */
  readonly rootOverlapMs?: number;
  /** Per-identity issuance limit (default 100 at once, then 10/s). */
  readonly rateLimit?: RateLimit;
  /** Default `cluster.local`. */
  readonly trustDomain?: string;
  /** Lifetime of local-mode tokens (default 1 h). */
  readonly tokenTtlMs?: number;
  /** Default: the local validator of tokens this control plane signs. */
  readonly tokenValidator?: TokenValidator;
}

export interface ControlPlane {
  readonly xdsPort: number;
  readonly debugPort: number;
  /** The TLS port for signing and ADS (15012), when identity is on. */
  readonly caPort?: number;
  /** The CA, when identity is on (root rotation, the trust bundle). */
  readonly ca?: CertificateAuthority;
  /** The admission webhooks' HTTPS port, when they are on. */
  readonly webhookPort?: number;
  /** Graceful: stops watching, ends streams, closes listeners. Idempotent. */
  close(): Promise<void>;
  /** Immediate. Idempotent. */
  destroy(): void;
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const log = opts.log ?? createLogger({ component: 'control-plane' });
  if ((opts.manifestsDir === undefined) === (opts.kube === undefined)) throw new Error('startControlPlane: give exactly one of manifestsDir (local mode) and kube (Kubernetes mode)');
  if (opts.webhooks && !opts.identity) throw new Error('the admission webhooks need identity (their serving certificate comes from the CA)');
  const metrics = new prom.Registry();
  const kube = opts.kube ? new KubeMode(opts.kube, log, metrics) : undefined;
  const registry = kube?.registry ?? new FilesRegistry(opts.manifestsDir ?? '', log.child({ module: 'registry-files' }));
  prom.collectDefaultMetrics({ register: metrics });
  // Gauges named like counters, which `promtool check metrics` rejects; their per-type
  // counterparts (nodejs_active_handles{type}, …) carry the same numbers (docs/metrics.md).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) metrics.removeSingleMetric(name);
  const state = new MeshState(log, opts.debounceMs ?? 100, metrics, opts.rootNamespace, opts.tracing, kube ? (w) => kube.worldBuilt(w) : undefined);
  const identifier = `weft-control-plane@${hostname()}`;
  const id = opts.identity;
  let ca: CertificateAuthority | undefined;
  let tokens: TokenFiles | undefined;
  let caServer: CaServer | undefined;
  let webhooks: WebhookServer | undefined;
  let webhookCert: ServingCertificate | undefined;
  if (id) {
    try {
      const store = opts.kube ? new SecretCaStore(opts.kube.client, opts.kube.namespace) : new FileCaStore(requireDataDir(id));
      const openCa = (): Promise<CertificateAuthority> => CertificateAuthority.open({
        store, operator: id.operatorCa, rotateRoot: id.rotateRoot,
        workloadTtlMs: id.workloadTtlMs, rootOverlapMs: id.rootOverlapMs, log: log.child({ module: 'ca' }),
      });
      // Replicas starting together: the first to create the Secret wins; the others load its root.
      ca = await openCa().catch((e: unknown) => {
        if (!(e instanceof CaStoreRaceError)) throw e;
        log.info('another replica created the CA Secret first: loading its root');
        return openCa();
      });
      state.setTrustBundle(ca.trustBundlePem());
      kube?.setTrustBundle(ca.trustBundlePem());
      ca.onBundleChange((pem) => {
        state.setTrustBundle(pem);
        kube?.setTrustBundle(pem);
      });
      const theCa = ca;
      kube?.watchCaSecret(() => theCa.reload(), log.child({ module: 'ca-secret' }));
      let validator = id.tokenValidator;
      if (!opts.kube) {
        const tokenKey = await loadTokenKey(requireDataDir(id));
        tokens = new TokenFiles(requireDataDir(id), tokenKey, log.child({ module: 'tokens' }), id.tokenTtlMs);
        validator ??= new LocalTokenValidator(tokenKey);
      }
      validator ??= new TokenReviewValidator(opts.kube!.client);
      const signing = new SigningService({
        ca, tokens: validator, trustDomain: id.trustDomain ?? 'cluster.local',
        rateLimit: id.rateLimit ?? DEFAULT_RATE_LIMIT, metrics, log: log.child({ module: 'ca-signing' }),
      });
      caServer = new CaServer({ address: id.caAddress ?? '127.0.0.1:15012', ca, signing, hooks: state.hooks, identifier, ...(opts.kube ? { namespace: opts.kube.namespace } : {}), log: log.child({ module: 'ca-server' }) });
      if (opts.webhooks) {
        const ns = opts.webhooks.namespace ?? opts.kube?.namespace ?? 'weft-system';
        const cert = new ServingCertificate(ca, servingNamesFor(opts.webhooks.address, servingDnsNames(ns)), log.child({ module: 'webhook-cert' }));
        webhookCert = cert;
        const injection = kube ? await kube.injectionFor(opts.webhooks.injection) : opts.webhooks.injection;
        webhooks = new WebhookServer({ address: opts.webhooks.address, tls: () => cert.current(), injection, metrics, log: log.child({ module: 'webhooks' }) });
      }
    } catch (err) {
      state.stop();
      webhookCert?.close();
      ca?.close();
      throw err;
    }
  }
  await registry.start();
  if (kube) {
    const updateReach = (): void => state.setReach(kube.reach());
    kube.registry.onNamespacesChange(updateReach);
    updateReach();
    kube.start();
  }
  const registryEvents = new RegistryEvents(metrics);
  registry.onChange((s) => {
    if (!kube) registryEvents.snapshot(s.objects); // Kubernetes mode counts watch events (weft_informer_events_total)
    state.setObjects(s.objects, s.diagnostics);
    void tokens?.update(s.objects);
  });
  await tokens?.settled();
  // The first world is built before xDS listens: a sidecar reconnecting to a restarted control
  // plane must never be sent the empty world of the debounce window (it would route nothing).
  state.flush();

  const ads = new AdsServer(state.hooks, log.child({ module: 'ads' }), identifier);
  const debug = http.createServer((req, res) => void state.serveDebug(req, res, ca, kube));
  const stopIdentity = (): void => {
    tokens?.close();
    webhookCert?.close();
    ca?.close();
  };
  try {
    const xdsPort = await ads.listen(opts.xdsAddress ?? '127.0.0.1:15010');
    const caPort = caServer ? await caServer.listen() : undefined;
    const webhookPort = webhooks ? await webhooks.listen() : undefined;
    const [dHost, dPort] = splitHostPort(opts.debugAddress ?? '127.0.0.1:15014');
    await new Promise<void>((resolve, reject) => {
      debug.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${dHost}:${dPort} (debug): ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message} (${e.code})`, { cause: e })));
      debug.listen(dPort, dHost, () => resolve());
    });
    const debugPort = (debug.address() as { port: number }).port;
    log.info('control plane ready', { ...(opts.manifestsDir ? { manifests: opts.manifestsDir } : { kubernetes: opts.kube?.client.serverUrl }), xdsPort, debugPort, ...(caPort !== undefined ? { caPort, dataDir: id?.dataDir } : {}), ...(webhookPort !== undefined ? { webhookPort } : {}) });
    let closing: Promise<void> | undefined;
    return {
      xdsPort,
      debugPort,
      caPort,
      ca,
      webhookPort,
      close: () => (closing ??= (async () => {
        state.stop();
        stopIdentity();
        await (kube ?? registry).close();
        await Promise.all([ads.close(), caServer?.close(), webhooks?.close()]);
        await new Promise<void>((r) => debug.close(() => r()));
        debug.closeAllConnections();
      })()),
      destroy: () => {
        state.stop();
        stopIdentity();
        void (kube ?? registry).close();
        ads.destroy();
        caServer?.destroy();
        webhooks?.destroy();
        debug.closeAllConnections();
        debug.close();
      },
    };
  } catch (err) {
    state.stop();
    stopIdentity();
    await (kube ?? registry).close();
    ads.destroy();
    caServer?.destroy();
    webhooks?.destroy();
    debug.close();
    throw err;
  }
}

function requireDataDir(id: IdentityOptions): string {
  if (id.dataDir === undefined) throw new Error('identity in local mode needs a data directory (dataDir)');
  return id.dataDir;
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address "${address}", want host:port`);
  return [address.slice(0, i), port];
}

/** The mutable edge of an otherwise pure pipeline: current objects, connected nodes, the cache. */
class MeshState {
  readonly cache = new SnapshotCache();
  readonly sync: SyncStatus;
  private objects: readonly KubeObject[] = [];
  private diagnostics: readonly Diagnostic[] = [];
  private readonly meshed = new Set<string>();
  /** Meshed pods whose sidecar has a workload identity (node metadata WEFT_MTLS). */
  private readonly identities = new Set<string>();
  private world: World;
  private generation = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastStatus = new Map<string, string>();
  private trustBundlePem?: string;
  private reach?: ReachFn;
  private readonly rebuilds: prom.Counter;
  private readonly rebuildSeconds: prom.Histogram;
  /** How long the last rebuild (world, translation and encoding for every proxy) took. */
  private lastRebuildMs = 0;
  /** When the change the pending rebuild is for was seen (`performance.now()`). */
  private changeSeen = 0;
  /** When the first change of the pending rebuild was seen. */
  private pendingSince = 0;
  readonly hooks: AdsHooks;

  constructor(
    private readonly log: Logger, private readonly debounceMs: number, private readonly metrics: prom.Registry,
    private readonly rootNamespace?: string, private readonly tracing?: MeshTracing,
    /** Kubernetes mode: every rebuilt world goes to the status writer. */
    private readonly onWorld?: (world: World) => void,
  ) {
    this.sync = new SyncStatus(metrics);
    this.rebuilds = new prom.Counter({ name: 'weft_world_rebuilds_total', help: 'Translations of the whole mesh.', registers: [metrics] });
    this.rebuildSeconds = new prom.Histogram({ name: 'weft_world_rebuild_duration_seconds', help: 'Time to rebuild the world and translate and encode it for every connected proxy; the next rebuild waits at least as long.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10], registers: [metrics] });
    this.world = buildWorld([], this.meshed, 0);
    this.hooks = {
      cache: this.cache,
      connected: (node, stream) => {
        const first = this.sync.connected(node, stream.protocol);
        log.info('proxy connected', { node: node.id, protocol: stream.protocol, stream: stream.id });
        if (first) this.cache.set(node.id, encodeSnapshot(translate(this.world, node), this.world.generation));
        // Local mode only: a captured pod's app ports are reached directly (iptables does the rest).
        if (node.kind === 'sidecar' && !node.capture && !this.meshed.has(podKey(node))) {
          this.meshed.add(podKey(node));
          this.schedule();
        }
        if (node.kind === 'sidecar' && node.mtls && !this.identities.has(podKey(node))) {
          this.identities.add(podKey(node));
          this.schedule();
        }
      },
      disconnected: (node, stream) => {
        log.info('proxy disconnected', { node: node.id, stream: stream.id });
        if (!this.sync.disconnected(node)) return;
        this.cache.delete(node.id);
        if (node.kind === 'sidecar' && this.meshed.delete(podKey(node))) this.schedule();
        if (node.kind === 'sidecar' && this.identities.delete(podKey(node))) this.schedule();
      },
      sent: (node, type, version, nonce) => this.sync.sent(node, type, version, nonce),
      acked: (node, type, version) => this.sync.acked(node, type, version),
      nacked: (node, type, version, detail) => {
        log.warn('proxy rejected config', { node: node.id, type, version, detail });
        this.sync.nacked(node, type, version, detail);
      },
    };
  }

  /** A new trust bundle (CA start, root rotation, an overlap ending): rebuild and push ROOTCA. */
  setTrustBundle(pem: string): void {
    this.trustBundlePem = pem;
    this.world = { ...this.world, trustBundlePem: pem };
    this.schedule();
  }

  /** Kubernetes mode: which namespaces each namespace's sidecars are sent (scoped pushes). */
  setReach(reach: ReachFn): void {
    this.reach = reach;
    this.schedule();
  }

  setObjects(objects: readonly KubeObject[], diagnostics: readonly Diagnostic[]): void {
    this.objects = objects;
    this.diagnostics = diagnostics;
    this.schedule();
  }

  /** Rebuilds now whatever is pending (the first world, before serving). */
  flush(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.runRebuild(this.pendingSince);
  }

  /**
   * Coalesces changes: the first one starts the clock, the rebuild takes everything since. The
   * wait is at least as long as the last rebuild took, so a large mesh under a stream of changes
   * (thousands of EndpointSlices being written) spends at most half its time rebuilding and
   * the rest serving, instead of rebuilding back to back.
   */
  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.pendingSince = performance.now(); // the start of push convergence (SyncStatus.changed)
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runRebuild(this.pendingSince);
    }, Math.max(this.debounceMs, this.lastRebuildMs));
  }

  private runRebuild(changeSeen: number): void {
    this.changeSeen = changeSeen;
    const started = performance.now();
    this.rebuild();
    this.lastRebuildMs = performance.now() - started;
    this.rebuildSeconds.observe(this.lastRebuildMs / 1000);
  }

  private rebuild(): void {
    const world = { ...buildWorld(this.objects, new Set(this.meshed), ++this.generation, { identityPods: new Set(this.identities), ...(this.rootNamespace ? { rootNamespace: this.rootNamespace } : {}), ...(this.reach ? { reach: this.reach } : {}) }), trustBundlePem: this.trustBundlePem, ...(this.tracing ? { tracing: this.tracing } : {}) };
    this.world = world;
    this.rebuilds.inc();
    this.reportPolicies(world);
    this.onWorld?.(world);
    let pushed = 0;
    for (const { node } of this.sync.nodes.values()) {
      try {
        const snapshot = encodeSnapshot(translate(world, node), world.generation);
        // Before `set`: its watchers may send at once, and what they send counts toward convergence.
        const started = this.sync.changed(node.id, this.changeSeen);
        if (this.cache.set(node.id, snapshot)) pushed++;
        else if (started) this.sync.unchanged(node.id);
      } catch (err) {
        // A resource that does not encode is a translation bug: keep the node's last snapshot.
        this.log.error('translation failed; the proxy keeps its last config', { node: node.id, error: err as Error });
      }
    }
    this.log.debug('world rebuilt', { generation: world.generation, proxies: this.sync.nodes.size, changed: pushed });
  }

  private reportPolicies(world: World): void {
    const now = new Map<string, string>();
    for (const s of world.policyStatus) {
      const accepted = s.conditions.find((c) => c.type === 'Accepted');
      const line = accepted ? `${accepted.status} ${accepted.reason}: ${accepted.message}` : '';
      now.set(s.key, line);
      if (this.lastStatus.get(s.key) !== line && accepted) {
        const fields = { policy: s.key, accepted: accepted.status, reason: accepted.reason, message: accepted.message };
        if (accepted.status === 'True') this.log.info('policy accepted', fields);
        else this.log.warn('policy not accepted', fields);
      }
    }
    this.lastStatus = now;
  }

  async serveDebug(req: http.IncomingMessage, res: http.ServerResponse, ca?: CertificateAuthority, kube?: KubeMode): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const json = (body: unknown): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body, null, 2));
    };
    switch (url.pathname) {
      // Liveness and readiness (the chart's probes): serving means the registry has listed once.
      case '/healthz':
      case '/ready':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return;
      case '/debug/leader': return json({ kubernetes: kube !== undefined, leader: kube ? kube.isLeader : true });
      case '/metrics':
        res.writeHead(200, { 'content-type': this.metrics.contentType });
        res.end(await this.metrics.metrics());
        return;
      case '/debug/syncz': return json(this.sync.toJSON());
      case '/debug/ca': {
        if (!ca) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('this control plane runs without a CA (--no-ca)\n');
          return;
        }
        return json(ca.describe());
      }
      case '/debug/ca/rotate-root': {
        // POST only: rotating is an action (docs/operations.md, "Root rotation").
        if (req.method === 'POST' && ca && kube && !kube.isLeader) {
          // Only the leader writes the CA Secret; the other replicas follow it (they watch it).
          res.writeHead(409, { 'content-type': 'text/plain' });
          res.end('this replica is not the leader: rotate on the leader (GET /debug/leader tells which replica leads)\n');
          return;
        }
        if (req.method !== 'POST' || !ca) {
          res.writeHead(req.method !== 'POST' ? 405 : 404, { 'content-type': 'text/plain' });
          res.end(ca ? 'POST to rotate the root\n' : 'this control plane runs without a CA (--no-ca)\n');
          return;
        }
        try {
          await ca.rotateRoot();
          return json({ rotated: true, roots: ca.trustBundlePem().match(/BEGIN CERTIFICATE/g)?.length ?? 0 });
        } catch (e) {
          res.writeHead(e instanceof CaConfigError ? 409 : 500, { 'content-type': 'text/plain' });
          res.end(`rotation failed: ${(e as Error).message}\n`);
          return;
        }
      }
      case '/debug/policies': return json(this.world.policyStatus);
      case '/debug/diagnostics': return json([...this.diagnostics, ...this.world.diagnostics]);
      case '/debug/config_dump': {
        const id = url.searchParams.get('node') ?? '';
        const n = this.sync.nodes.get(id);
        if (!n) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end(`no connected proxy with node id "${id}"\n`);
          return;
        }
        const resources = translate(this.world, n.node);
        return json(Object.fromEntries([...resources].map(([t, m]) => [t, [...m.values()]])));
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('endpoints: /metrics /debug/syncz /debug/policies /debug/diagnostics /debug/config_dump?node=ID /debug/ca, POST /debug/ca/rotate-root\n');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

function podKey(node: NodeIdentity & { kind: 'sidecar' }): string {
  return nsName(node.namespace, node.podName);
}
