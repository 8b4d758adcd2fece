/**
 * An informer for one resource type, as client-go's reflector keeps one: list (in pages), then
 * watch from the list's resourceVersion with bookmarks, re-watch from the last version seen when
 * the server ends a watch, relist when the version is too old (410 Gone, or an ERROR event with
 * code 410), and back off (exponential, with jitter) on any other failure. Its store is a map of
 * what `transform` makes of each object; `onChange` fires after every change to it.
 */
import type { Logger } from '@weft/api';
import type * as prom from 'prom-client';
import { KubeApiError, type KubeClient, type WatchEvent } from './kube-client';

export interface ResourceType {
  /** `''` for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
}

/** `/api/v1/pods`, `/apis/weft.dev/v1alpha1/trafficpolicies`, optionally in one namespace. */
export function resourcePath(t: ResourceType, namespace?: string, name?: string): string {
  const base = t.group ? `/apis/${t.group}/${t.version}` : `/api/${t.version}`;
  return `${base}${namespace ? `/namespaces/${namespace}` : ''}/${t.plural}${name ? `/${name}` : ''}`;
}

export const apiVersionOf = (t: ResourceType): string => (t.group ? `${t.group}/${t.version}` : t.version);

export interface InformerMetrics {
  readonly events: prom.Counter<'kind' | 'event'>;
  readonly relists: prom.Counter<'kind'>;
  readonly failures: prom.Counter<'kind'>;
  readonly lag: prom.Histogram<'kind'>;
}

export interface InformerOptions<T> {
  readonly type: ResourceType;
  readonly client: KubeClient;
  readonly log: Logger;
  /**
   * What the store keeps of an object (kind and apiVersion are filled in first): small and
   * immutable. `previous` is what the store held for the same object, if anything.
   */
  readonly transform: (raw: Record<string, unknown>, previous: T | undefined) => T;
  readonly onChange: () => void;
  readonly metrics?: InformerMetrics;
  /** Only this namespace's objects (default: every namespace). */
  readonly namespace?: string;
  /** Only objects matching this field selector (`metadata.name=X`). */
  readonly fieldSelector?: string;
  /** Items per list page (default 500). */
  readonly pageSize?: number;
  /** First and longest pause after a failure (default 250 ms and 30 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** The server ends each watch after a random 5 to 10 minutes (as client-go asks); tests shorten it. */
  readonly watchTimeoutSeconds?: () => number;
}

interface Meta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  managedFields?: { time?: string }[];
}

export class Informer<T> {
  private readonly store = new Map<string, T>();
  private readonly abort = new AbortController();
  private resourceVersion = '';
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private running?: Promise<void>;
  private readonly kindLabel: { kind: string };

  constructor(private readonly opts: InformerOptions<T>) {
    this.kindLabel = { kind: opts.type.kind };
  }

  /** Starts the list-and-watch loop; resolves once the first list is in the store. */
  start(): Promise<void> {
    this.running ??= this.run();
    return this.hasSynced();
  }

  hasSynced(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get isSynced(): boolean {
    return this.synced;
  }

  /** Every stored value, in no particular order. */
  values(): IterableIterator<T> {
    return this.store.values();
  }

  get(namespace: string, name: string): T | undefined {
    return this.store.get(`${namespace}/${name}`);
  }

  get size(): number {
    return this.store.size;
  }

  /** The last resourceVersion seen (list, event or bookmark). */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  /** Stops watching. Idempotent; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const { log, type } = this.opts;
    const backoff = this.opts.backoff ?? { initialMs: 250, maxMs: 30_000 };
    let delay = backoff.initialMs;
    while (!this.abort.signal.aborted) {
      try {
        if (!this.resourceVersion) await this.list();
        await this.watchOnce();
        delay = backoff.initialMs; // a watch that ran and ended normally: start afresh
      } catch (err) {
        if (this.abort.signal.aborted) break;
        if (err instanceof KubeApiError && (err.status === 410 || err.reason === 'Expired' || err.reason === 'Gone')) {
          log.info('resourceVersion too old: relisting', { kind: type.kind, resourceVersion: this.resourceVersion });
          this.resourceVersion = '';
          this.opts.metrics?.relists.inc(this.kindLabel);
          continue;
        }
        this.opts.metrics?.failures.inc(this.kindLabel);
        const wait = Math.round(delay * (0.5 + Math.random() * 0.5));
        log.warn('list/watch failed: retrying', { kind: type.kind, retryInMs: wait, error: (err as Error).message });
        await sleep(wait, this.abort.signal);
        delay = Math.min(delay * 2, backoff.maxMs);
      }
    }
  }

  private async list(): Promise<void> {
    const { client, type } = this.opts;
    const seen = new Map<string, T>();
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await client.request<{ items?: Record<string, unknown>[]; metadata?: { resourceVersion?: string; continue?: string } }>(
        'GET', resourcePath(type, this.opts.namespace), { query: { limit: this.opts.pageSize ?? 500, continue: cont, fieldSelector: this.opts.fieldSelector } });
      for (const item of page.items ?? []) seen.set(keyOf(item), this.transform(item, this.store.get(keyOf(item))));
      rv = page.metadata?.resourceVersion ?? '';
      cont = page.metadata?.continue || undefined;
    } while (cont !== undefined && !this.abort.signal.aborted);
    let changed = false;
    for (const key of this.store.keys()) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.opts.metrics?.events.inc({ kind: type.kind, event: 'deleted' });
        changed = true;
      }
    }
    for (const [key, value] of seen) {
      this.store.set(key, value);
      changed = true;
    }
    this.resourceVersion = rv;
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    if (changed) this.opts.onChange();
  }

  private async watchOnce(): Promise<void> {
    const { client, type } = this.opts;
    const timeout = this.opts.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300);
    await client.watch(resourcePath(type, this.opts.namespace), {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: timeout,
      fieldSelector: this.opts.fieldSelector,
    }, (e) => this.apply(e), this.abort.signal);
  }

  private apply(e: WatchEvent): void {
    const { type, metrics } = this.opts;
    if (e.type === 'ERROR') {
      const status = e.object as { code?: number; reason?: string; message?: string };
      throw new KubeApiError('WATCH', resourcePath(type), status.code ?? 0, status.reason ?? 'Error', status.message ?? 'watch error');
    }
    const meta = (e.object.metadata ?? {}) as Meta;
    if (meta.resourceVersion) this.resourceVersion = meta.resourceVersion;
    if (e.type === 'BOOKMARK') return;
    const key = keyOf(e.object);
    if (e.type === 'DELETED') {
      if (!this.store.delete(key)) return;
      metrics?.events.inc({ kind: type.kind, event: 'deleted' });
    } else {
      const previous = this.store.get(key);
      const existed = previous !== undefined;
      this.store.set(key, this.transform(e.object, previous));
      metrics?.events.inc({ kind: type.kind, event: existed ? 'updated' : 'added' });
      const changedAt = lastChange(meta);
      if (changedAt !== undefined) metrics?.lag.observe(this.kindLabel, Math.max(0, (Date.now() - changedAt) / 1000));
    }
    this.opts.onChange();
  }

  private transform(raw: Record<string, unknown>, previous: T | undefined): T {
    const { type } = this.opts;
    return this.opts.transform({ ...raw, apiVersion: apiVersionOf(type), kind: type.kind }, previous);
  }
}

/**
 * An informer on one named object (a field selector on its name) that keeps only its
 * resourceVersion: `onChange` runs whenever the object appears, changes or goes away.
 */
export function watchNamed(opts: {
  readonly client: KubeClient;
  readonly type: ResourceType;
  readonly name: string;
  readonly namespace?: string;
  readonly log: Logger;
  readonly onChange: () => void;
  readonly backoff?: InformerOptions<string>['backoff'];
}): Informer<string> {
  return new Informer<string>({
    type: opts.type, client: opts.client, log: opts.log, fieldSelector: `metadata.name=${opts.name}`,
    ...(opts.namespace ? { namespace: opts.namespace } : {}),
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
    transform: (raw) => String((raw.metadata as Meta | undefined)?.resourceVersion ?? ''),
    onChange: opts.onChange,
  });
}

function keyOf(o: Record<string, unknown>): string {
  const m = (o.metadata ?? {}) as Meta;
  return `${m.namespace ?? ''}/${m.name ?? ''}`;
}

/**
 * When the object last changed, as far as it says: the newest managedFields time (a second's
 * precision), else its creation. Informer lag is the time from then to the event's arrival.
 */
function lastChange(meta: Meta): number | undefined {
  let t = meta.creationTimestamp ? Date.parse(meta.creationTimestamp) : NaN;
  for (const f of meta.managedFields ?? []) {
    const ft = f.time ? Date.parse(f.time) : NaN;
    if (!Number.isNaN(ft) && (Number.isNaN(t) || ft > t)) t = ft;
  }
  return Number.isNaN(t) ? undefined : t;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
