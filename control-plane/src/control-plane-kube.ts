/**
 * Kubernetes mode's parts around the shared pipeline: the informer registry, the leader election
 * and what only the leader does (policy status today; the CA Secret's rotations and the webhooks'
 * caBundles hang off the same switch). Every replica serves xDS and signs certificates.
 */
import { supportsNativeSidecars, type KubeVersion, type Logger } from '@weft/api';
import type { InjectionConfig } from './inject-config';
import type * as prom from 'prom-client';
import type { KubeClient } from './kube-client';
import { watchNamed, type Informer } from './kube-informer';
import { LeaderElector } from './kube-leader';
import { CA_SECRET_NAME } from './ca-store-secret';
import { ClusterPublisher } from './kube-publish';
import { desiredStatuses, StatusWriter } from './kube-status';
import { KubeRegistry, type NamespaceInfo } from './registry-kube';
import type { ReachFn, World } from './world';

export interface KubeModeOptions {
  readonly client: KubeClient;
  /** The control plane's own namespace: its Lease, its CA Secret. */
  readonly namespace: string;
  /** This replica's name in the leader election (its pod name). */
  readonly identity: string;
  /** false: this replica always leads (a single replica); default: elect through the Lease. */
  readonly leaderElection?: false | { readonly leaseDurationMs?: number; readonly renewDeadlineMs?: number; readonly retryMs?: number };
  /**
   * Namespaces every sidecar may reach besides its own and those its Namespace's `weft.dev/reach`
   * annotation lists; `*` is every namespace. Default: none (docs/operations.md, "Scoped pushes").
   */
  readonly defaultReach?: readonly string[];
  /** Tests: shorter watches and backoff. */
  readonly watchTimeoutSeconds?: () => number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export const LEASE_NAME = 'weft-control-plane-leader';

export class KubeMode {
  readonly registry: KubeRegistry;
  private readonly status: StatusWriter;
  private readonly publisher: ClusterPublisher;
  private trustBundlePem?: string;
  private caSecret?: Informer<string>;
  private readonly elector?: LeaderElector;
  private leaderNow = false;
  private readonly leaderHooks: ((leading: boolean) => void)[] = [];

  constructor(private readonly opts: KubeModeOptions, private readonly log: Logger, metrics: prom.Registry) {
    this.registry = new KubeRegistry(opts.client, log.child({ module: 'registry-kube' }), {
      metrics,
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    this.status = new StatusWriter(opts.client, (k, ns, n) => this.registry.storedPolicy(k, ns, n), log.child({ module: 'status' }));
    this.publisher = new ClusterPublisher({
      client: opts.client, log: log.child({ module: 'publish' }),
      namespaces: () => this.registry.namespaceList(), trustBundle: () => this.trustBundlePem,
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    });
    this.registry.onNamespacesChange(() => this.publisher.kick());
    if (opts.leaderElection !== false) {
      this.elector = new LeaderElector({
        client: opts.client, namespace: opts.namespace, name: LEASE_NAME, identity: opts.identity,
        ...(opts.leaderElection ?? {}), log: log.child({ module: 'leader' }),
        onStartedLeading: () => this.setLeader(true),
        onStoppedLeading: () => this.setLeader(false),
      });
    }
  }

  get isLeader(): boolean {
    return this.leaderNow;
  }

  /** Called with true when this replica starts leading, false when it stops. */
  onLeaderChange(hook: (leading: boolean) => void): void {
    this.leaderHooks.push(hook);
  }

  start(): void {
    if (this.elector) this.elector.start();
    else this.setLeader(true);
  }

  /** What each namespace's sidecars may reach, from the Namespaces as they are now. */
  reach(): ReachFn {
    return reachFrom(this.registry.namespaceList(), this.opts.defaultReach ?? []);
  }

  /**
   * Watches the CA Secret: when another replica rotated the root, `reload` makes this one sign
   * with it and trust the same roots (calls are serialized).
   */
  watchCaSecret(reload: () => Promise<unknown>, log: Logger): void {
    let chain = Promise.resolve();
    let first = true;
    this.caSecret = watchNamed({
      type: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret' }, client: this.opts.client, log,
      namespace: this.opts.namespace, name: CA_SECRET_NAME, ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}),
      onChange: () => {
        if (first) return void (first = false); // the initial list: what the CA just loaded
        chain = chain.then(() => reload()).then(() => undefined, (e: Error) => log.warn('could not reload the CA from its Secret', { error: e.message }));
      },
    });
    void this.caSecret.start();
  }

  /**
   * The injection config for this cluster: native sidecars (init containers with `restartPolicy:
   * Always`) need Kubernetes 1.29; on an older API server they become regular containers, with a
   * warning. An API server that cannot be asked leaves the config as it is.
   */
  async injectionFor(config: InjectionConfig): Promise<InjectionConfig> {
    if (!config.nativeSidecar) return config;
    let version: KubeVersion;
    try {
      version = await this.opts.client.request('GET', '/version');
    } catch (e) {
      this.log.warn('could not read the API server version: injecting native sidecars', { error: (e as Error).message });
      return config;
    }
    if (supportsNativeSidecars(version)) return config;
    this.log.warn('Kubernetes has no native sidecars before 1.29: injecting the proxy as a regular container', { version: version.gitVersion });
    return { ...config, nativeSidecar: false };
  }

  /** The CA's trust bundle (at start and after each change): published by the leader. */
  setTrustBundle(pem: string): void {
    this.trustBundlePem = pem;
    this.publisher.kick();
  }

  /** Resolves when what the leader is publishing now has been written (tests). */
  published(): Promise<void> {
    return this.publisher.settled();
  }

  /** Every rebuilt world: the statuses it decided, plus the policies the parser refused. */
  worldBuilt(world: World): void {
    this.status.update(desiredStatuses(world.policyStatus, this.registry.current().invalid));
  }

  async close(): Promise<void> {
    this.status.close();
    await this.publisher.close();
    await this.elector?.stop();
    await this.caSecret?.stop();
    await this.registry.close();
    this.opts.client.close();
  }

  private setLeader(on: boolean): void {
    this.leaderNow = on;
    this.status.setActive(on);
    this.publisher.setActive(on);
    for (const h of this.leaderHooks) h(on);
  }
}

/**
 * A sidecar in namespace N is sent the Services of N, of the `defaults`, and of the namespaces
 * N's `weft.dev/reach` annotation lists (comma-separated; `*` anywhere means every namespace).
 */
export function reachFrom(namespaces: readonly NamespaceInfo[], defaults: readonly string[]): ReachFn {
  const parse = (v: string | undefined): string[] => (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const byName = new Map(namespaces.map((n) => [n.name, parse(n.reach)]));
  const cache = new Map<string, ReadonlySet<string> | 'all'>();
  return (ns) => {
    let r = cache.get(ns);
    if (r === undefined) {
      const list = [...defaults, ...(byName.get(ns) ?? [])];
      r = list.includes('*') ? 'all' : new Set([ns, ...list]);
      cache.set(ns, r);
    }
    return r;
  };
}
