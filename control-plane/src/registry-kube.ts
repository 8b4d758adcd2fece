/**
 * The Kubernetes registry (`weft control-plane --kubeconfig F`, or in-cluster): one informer per
 * kind Weft reads — Services, Pods, EndpointSlices, Namespaces and the three `weft.dev` CRDs —
 * whose stores hold the parsed, typed objects (never the raw ones: a Pod's spec is mostly what Weft
 * does not need). Changes are coalesced and published as the same snapshot the files registry
 * publishes, so translation is the same code in both modes. A policy the parser refuses is listed
 * in `invalid`, for its `Accepted=False` status; as in local mode, a bad update never takes down
 * what was working: the object's last valid version stays in the snapshot until it is fixed or
 * deleted (docs/operations.md).
 */
import { objectKey, parseKubeObject, type KubeObject, type Logger } from '@weft/api';
import * as prom from 'prom-client';
import type { KubeClient } from './kube-client';
import { Informer, type InformerMetrics, type ResourceType } from './kube-informer';
import type { Diagnostic } from './manifests-load';

export const POLICY_TYPES = {
  TrafficPolicy: { group: 'weft.dev', version: 'v1alpha1', plural: 'trafficpolicies', kind: 'TrafficPolicy' },
  PeerAuthentication: { group: 'weft.dev', version: 'v1alpha1', plural: 'peerauthentications', kind: 'PeerAuthentication' },
  AuthorizationPolicy: { group: 'weft.dev', version: 'v1alpha1', plural: 'authorizationpolicies', kind: 'AuthorizationPolicy' },
} as const satisfies Record<string, ResourceType>;

const OBJECT_TYPES: readonly ResourceType[] = [
  { group: '', version: 'v1', plural: 'services', kind: 'Service' },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod' },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', kind: 'EndpointSlice' },
  ...Object.values(POLICY_TYPES),
];
/** On a Namespace: the other namespaces (comma-separated, or `*`) its sidecars may call. */
export const REACH_ANNOTATION = 'weft.dev/reach';

const NAMESPACES: ResourceType = { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace' };

/** What the store keeps of one object. */
export interface StoredObject {
  readonly key: string;
  readonly kind: string;
  readonly value?: KubeObject;
  /** Why the parser refused its current version (`value`, if any, is then its last valid one). */
  readonly errors?: readonly string[];
  /** The generation of `value` when it is a retained last valid version. */
  readonly retainedGeneration?: number;
  readonly generation?: number;
  /** The conditions the object carries now (CRDs only): the status writer writes only differences. */
  readonly conditions?: readonly Record<string, unknown>[];
  readonly creationTimestamp?: string;
}

export interface NamespaceInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The `weft.dev/reach` annotation, if set (scoped pushes). */
  readonly reach?: string;
}

/** A policy the parser refused: never pushed, reported through its status. */
export interface InvalidPolicy {
  readonly key: string;
  readonly errors: readonly string[];
  /** The generation of the last valid version still in effect, if there is one. */
  readonly retainedGeneration?: number;
}

export interface KubeSnapshot {
  /** Oldest first (creationTimestamp, then kind/namespace/name): age decides policy conflicts. */
  readonly objects: readonly KubeObject[];
  readonly diagnostics: readonly Diagnostic[];
  readonly invalid: readonly InvalidPolicy[];
  readonly generation: number;
}

export interface KubeRegistryOptions {
  /** How long to gather informer events into one snapshot (default 20 ms). */
  readonly debounceMs?: number;
  readonly metrics?: prom.Registry;
  /** Tests: the watch timeout the server is asked for. */
  readonly watchTimeoutSeconds?: () => number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export class KubeRegistry {
  private readonly informers: Informer<StoredObject>[];
  private readonly byKind = new Map<string, Informer<StoredObject>>();
  private readonly namespaces: Informer<NamespaceInfo>;
  private readonly listeners = new Set<(s: KubeSnapshot) => void>();
  private readonly nsListeners = new Set<() => void>();
  private snapshot: KubeSnapshot = { objects: [], diagnostics: [], invalid: [], generation: 0 };
  private timer?: NodeJS.Timeout;
  private started = false;
  private closed = false;
  private readonly debounceMs: number;

  constructor(client: KubeClient, private readonly log: Logger, opts: KubeRegistryOptions = {}) {
    this.debounceMs = opts.debounceMs ?? 20;
    const metrics = opts.metrics ? informerMetrics(opts.metrics) : undefined;
    const common = {
      client, metrics,
      ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
      ...(opts.backoff ? { backoff: opts.backoff } : {}),
    };
    this.informers = OBJECT_TYPES.map((type) => new Informer<StoredObject>({
      ...common, type, log: log.child({ kind: type.kind }), transform: store, onChange: () => this.schedule(),
    }));
    OBJECT_TYPES.forEach((t, i) => this.byKind.set(t.kind, this.informers[i]!));
    this.namespaces = new Informer<NamespaceInfo>({
      ...common, type: NAMESPACES, log: log.child({ kind: 'Namespace' }),
      transform: (raw) => {
        const m = (raw.metadata ?? {}) as { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
        const reach = m.annotations?.[REACH_ANNOTATION];
        return { name: m.name ?? '', labels: Object.freeze({ ...(m.labels ?? {}) }), ...(reach !== undefined ? { reach } : {}) };
      },
      onChange: () => {
        for (const l of this.nsListeners) l();
      },
    });
  }

  /** Starts every informer; resolves when all have listed once and the first snapshot is out. */
  async start(): Promise<void> {
    if (this.closed) throw new Error('KubeRegistry is closed');
    await Promise.all([...this.informers.map((i) => i.start()), this.namespaces.start()]);
    if (this.closed) return;
    this.started = true;
    this.publish();
  }

  /** Like FilesRegistry.onChange: called now if started, then after each change. */
  onChange(listener: (s: KubeSnapshot) => void): () => void {
    this.listeners.add(listener);
    if (this.started) listener(this.snapshot);
    return () => void this.listeners.delete(listener);
  }

  onNamespacesChange(listener: () => void): () => void {
    this.nsListeners.add(listener);
    return () => void this.nsListeners.delete(listener);
  }

  current(): KubeSnapshot {
    return this.snapshot;
  }

  /** Every namespace and its labels. */
  namespaceList(): NamespaceInfo[] {
    return [...this.namespaces.values()];
  }

  /** A stored weft.dev object (its generation and current conditions), for the status writer. */
  storedPolicy(kind: keyof typeof POLICY_TYPES, namespace: string, name: string): StoredObject | undefined {
    return this.byKind.get(kind)?.get(namespace, name);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([...this.informers.map((i) => i.stop()), this.namespaces.stop()]);
  }

  private schedule(): void {
    if (!this.started || this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.publish();
    }, this.debounceMs);
  }

  private publish(): void {
    const stored: StoredObject[] = [];
    for (const inf of this.informers) for (const s of inf.values()) stored.push(s);
    stored.sort((a, b) => age(a) - age(b) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const objects: KubeObject[] = [];
    const diagnostics: Diagnostic[] = [];
    const invalid: InvalidPolicy[] = [];
    for (const s of stored) {
      if (s.value) objects.push(s.value);
      if (!s.errors) continue;
      if (s.kind in POLICY_TYPES) invalid.push({ key: s.key, errors: s.errors, ...(s.retainedGeneration !== undefined ? { retainedGeneration: s.retainedGeneration } : {}) });
      else diagnostics.push({ file: s.key, severity: 'error', reason: s.errors.join('; ') });
    }
    this.snapshot = { objects, diagnostics, invalid, generation: this.snapshot.generation + 1 };
    for (const l of this.listeners) {
      try {
        l(this.snapshot);
      } catch (err) {
        this.log.error('registry listener failed', { error: err as Error });
      }
    }
  }
}

function store(raw: Record<string, unknown>, previous: StoredObject | undefined): StoredObject {
  const meta = (raw.metadata ?? {}) as { name?: string; namespace?: string; generation?: number; creationTimestamp?: string };
  const key = `${String(raw.kind)}/${meta.namespace ?? ''}/${meta.name ?? ''}`;
  const outcome = parseKubeObject(raw);
  const conditions = raw.kind && String(raw.apiVersion).startsWith('weft.dev/')
    ? ((raw.status as { conditions?: Record<string, unknown>[] } | undefined)?.conditions ?? [])
    : undefined;
  const common = {
    kind: String(raw.kind),
    ...(meta.generation !== undefined ? { generation: meta.generation } : {}),
    ...(meta.creationTimestamp ? { creationTimestamp: meta.creationTimestamp } : {}),
    ...(conditions ? { conditions } : {}),
  };
  switch (outcome.kind) {
    case 'object': return { key: objectKey(outcome.value), value: outcome.value, ...common };
    case 'invalid':
    case 'ignored': {
      const errors = outcome.kind === 'invalid' ? outcome.errors : [outcome.reason];
      // A bad update keeps the last valid version in effect (as a bad edit does in local mode).
      const kept = previous?.value ? { value: previous.value, retainedGeneration: previous.retainedGeneration ?? previous.generation ?? 0 } : {};
      return { key: previous?.key ?? key, errors, ...kept, ...common };
    }
  }
}

function age(s: StoredObject): number {
  const t = s.creationTimestamp ? Date.parse(s.creationTimestamp) : NaN;
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t;
}

function informerMetrics(registry: prom.Registry): InformerMetrics {
  return {
    events: new prom.Counter({ name: 'weft_informer_events_total', help: 'Watch events applied to the informers\' stores, by kind and event (added, updated, deleted).', labelNames: ['kind', 'event'], registers: [registry] }),
    relists: new prom.Counter({ name: 'weft_informer_relists_total', help: 'Relists after the watched resourceVersion expired (410 Gone).', labelNames: ['kind'], registers: [registry] }),
    failures: new prom.Counter({ name: 'weft_informer_watch_failures_total', help: 'Failed lists and watches (each is retried with backoff).', labelNames: ['kind'], registers: [registry] }),
    lag: new prom.Histogram({ name: 'weft_informer_lag_seconds', help: 'From an object\'s last change (its newest managedFields time, a second\'s precision) to its watch event here.', labelNames: ['kind'], buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30], registers: [registry] }),
  };
}
