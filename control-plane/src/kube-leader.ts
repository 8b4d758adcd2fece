/**
 * Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does:
 * every replica tries to acquire or renew the Lease every `retryMs`; a holder that has not renewed
 * for `leaseDurationMs` (measured on the local clock from when this replica last saw the record
 * change, so clock skew between replicas does not matter) may be replaced; updates carry the
 * resourceVersion read, so two replicas never both win. A leader that cannot renew within
 * `renewDeadlineMs` steps down before anyone else may take over. On `stop()` the leader releases
 * the Lease (empty holder) so a successor takes over at once, not after the lease runs out.
 * Every replica serves xDS either way; only the leader writes (status, CA Secret, caBundles).
 */
import type { Logger } from '@weft/api';
import { KubeApiError, type KubeClient } from './kube-client';
import { recordEvent } from './kube-events';

export interface LeaderElectionOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly name: string;
  /** This replica's identity (its pod name). */
  readonly identity: string;
  /** Default 10 s: with the defaults below, a dead leader is replaced within about 12 s. */
  readonly leaseDurationMs?: number;
  /** Default 8 s. */
  readonly renewDeadlineMs?: number;
  /** Default 2 s. */
  readonly retryMs?: number;
  readonly log: Logger;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec?: LeaseSpec;
}

export class LeaderElector {
  private leading = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private lastRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;
  private readonly path: string;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.leaseMs = opts.leaseDurationMs ?? 10_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 8_000;
    this.retryMs = opts.retryMs ?? 2_000;
    this.path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (this.running || this.stopped) return;
    this.running = this.tick();
  }

  /** Stops trying; a leader releases the Lease. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    if (this.leading) {
      this.setLeading(false);
      await this.release().catch((e: Error) => this.opts.log.warn('could not release the leader Lease', { error: e.message }));
    }
  }

  private async tick(): Promise<void> {
    try {
      const won = await this.tryAcquireOrRenew();
      if (won) this.lastRenew = performance.now();
      if (won && !this.leading) this.setLeading(true);
      if (!won && this.leading) this.setLeading(false);
    } catch (e) {
      this.opts.log.warn('leader election: the Lease could not be read or written', { error: (e as Error).message });
      if (this.leading && performance.now() - this.lastRenew > this.renewDeadlineMs) {
        this.opts.log.warn('leader election: could not renew within the deadline: stepping down', { renewDeadlineMs: this.renewDeadlineMs });
        this.setLeading(false);
      }
    }
    if (this.stopped) return;
    const jitter = this.leading ? 0 : Math.random() * this.retryMs * 0.2;
    this.timer = setTimeout(() => {
      this.running = this.tick();
    }, this.retryMs + jitter);
  }

  private setLeading(on: boolean): void {
    this.leading = on;
    const { client, identity, log, name, namespace } = this.opts;
    log.info(on ? 'became the leader' : 'no longer the leader', { lease: `${namespace}/${name}`, identity });
    if (on) {
      void recordEvent(client, log, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace, name },
        'LeaderElection', `${identity} became leader`, 'weft-control-plane');
    }
    try {
      if (on) this.opts.onStartedLeading();
      else this.opts.onStoppedLeading();
    } catch (e) {
      this.opts.log.error('leader callback failed', { error: e as Error });
    }
  }

  /** True when this replica holds the Lease after the attempt. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { client, identity, name, namespace } = this.opts;
    const now = new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
    let lease: Lease;
    try {
      lease = await client.request<Lease>('GET', `${this.path}/${name}`);
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 404)) throw e;
      const spec: LeaseSpec = { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.leaseMs / 1000), acquireTime: now, renewTime: now, leaseTransitions: 0 };
      try {
        await client.request('POST', this.path, { body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } });
        return true;
      } catch (ce) {
        if (ce instanceof KubeApiError && ce.status === 409) return false; // another replica created it first
        throw ce;
      }
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (record !== this.lastRecord) {
      this.lastRecord = record;
      this.observedAt = performance.now();
    }
    const holder = spec.holderIdentity ?? '';
    const duration = (spec.leaseDurationSeconds ?? Math.ceil(this.leaseMs / 1000)) * 1000;
    const mine = holder === identity;
    if (!mine && holder !== '' && performance.now() - this.observedAt < duration) return false;
    const next: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: mine ? spec.acquireTime ?? now : now,
      renewTime: now,
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine ? 0 : 1),
    };
    try {
      await client.request('PUT', `${this.path}/${name}`, { body: { ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', spec: next } });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409) return false; // someone else wrote it since we read it
      throw e;
    }
    return true;
  }

  private async release(): Promise<void> {
    const { client, identity, name } = this.opts;
    const lease = await client.request<Lease>('GET', `${this.path}/${name}`);
    if (lease.spec?.holderIdentity !== identity) return;
    const spec: LeaseSpec = { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1, acquireTime: null, renewTime: null };
    await client.request('PUT', `${this.path}/${name}`, { body: { ...lease, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', spec } });
  }
}
