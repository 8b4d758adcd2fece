/**
 * Writes each weft.dev policy's `status.conditions` through the status subresource (leader only):
 * what the world decided (`Accepted` with its reason: Accepted, Conflicted, TargetNotFound, …;
 * `ResolvedRefs` for TrafficPolicies) and, for a policy the parser refused, `Accepted=False`
 * reason `Invalid` with the parser's message. Only differences are written (a condition's
 * `lastTransitionTime` changes only when its status does); writes run one at a time, and a
 * failed one is retried on the next change or after a pause.
 */
import type { Logger } from '@weft/api';
import { KubeApiError, type KubeClient } from './kube-client';
import { resourcePath } from './kube-informer';
import { POLICY_TYPES, type InvalidPolicy, type StoredObject } from './registry-kube';
import type { PolicyStatus } from './world';

type PolicyKind = keyof typeof POLICY_TYPES;

export interface DesiredStatus {
  readonly kind: PolicyKind;
  readonly namespace: string;
  readonly name: string;
  readonly conditions: readonly { type: string; status: 'True' | 'False'; reason: string; message: string }[];
}

/** The world's decisions plus the refused policies, as one list of desired statuses. */
export function desiredStatuses(policyStatus: readonly PolicyStatus[], invalid: readonly InvalidPolicy[]): DesiredStatus[] {
  const out: DesiredStatus[] = [];
  const refused = new Set(invalid.map((i) => i.key));
  for (const s of policyStatus) {
    const parsed = splitKey(s.key);
    // A retained last valid version is in the world too: its object's status says Invalid.
    if (parsed && !refused.has(s.key)) out.push({ ...parsed, conditions: s.conditions });
  }
  for (const i of invalid) {
    const parsed = splitKey(i.key);
    if (!parsed) continue;
    const kept = i.retainedGeneration !== undefined ? `; its last valid version (generation ${i.retainedGeneration}) stays in effect until this is fixed` : '';
    out.push({ ...parsed, conditions: [{ type: 'Accepted', status: 'False', reason: 'Invalid', message: `${i.errors.join('; ').slice(0, 900)}${kept}` }] });
  }
  return out;
}

function splitKey(key: string): { kind: PolicyKind; namespace: string; name: string } | undefined {
  const [kind, namespace, name] = key.split('/');
  if (!kind || !(kind in POLICY_TYPES) || !namespace || !name) return undefined;
  return { kind: kind as PolicyKind, namespace, name };
}

export class StatusWriter {
  private pending?: readonly DesiredStatus[];
  private busy = false;
  private active = false;
  private retryTimer?: NodeJS.Timeout;
  /** What this writer last wrote, per policy, so a write is not repeated before the informer sees it. */
  private written = new Map<string, string>();

  constructor(
    private readonly client: KubeClient,
    private readonly lookup: (kind: PolicyKind, namespace: string, name: string) => StoredObject | undefined,
    private readonly log: Logger,
  ) {}

  /** Leader only: while inactive, `update` only remembers the latest desired state. */
  setActive(on: boolean): void {
    this.active = on;
    this.written.clear();
    if (on) this.kick();
  }

  update(desired: readonly DesiredStatus[]): void {
    this.pending = desired;
    this.kick();
  }

  close(): void {
    this.active = false;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  private kick(): void {
    if (!this.active || this.busy || !this.pending) return;
    this.busy = true;
    void this.flush().finally(() => {
      this.busy = false;
    });
  }

  private async flush(): Promise<void> {
    const desired = this.pending ?? [];
    let failed = false;
    for (const d of desired) {
      if (!this.active) return;
      const stored = this.lookup(d.kind, d.namespace, d.name);
      if (!stored) continue; // deleted meanwhile
      const conditions = mergeConditions(stored, d.conditions);
      if (!conditions) continue;
      const id = `${d.kind}/${d.namespace}/${d.name}@${stored.generation ?? 0}`;
      const body = JSON.stringify(conditions.map(({ lastTransitionTime: _t, ...c }) => c));
      if (this.written.get(id) === body) continue;
      try {
        const path = `${resourcePath(POLICY_TYPES[d.kind], d.namespace, d.name)}/status`;
        await this.client.request('PATCH', path, { body: { status: { conditions } }, contentType: 'application/merge-patch+json' });
        this.written.set(id, body);
      } catch (e) {
        if (e instanceof KubeApiError && e.status === 404) continue;
        failed = true;
        this.log.warn('could not write policy status', { policy: `${d.kind}/${d.namespace}/${d.name}`, error: (e as Error).message });
      }
    }
    if (this.pending === desired && !failed) this.pending = undefined;
    if (failed && this.active && !this.retryTimer) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        this.kick();
      }, 2_000);
    } else if (this.pending) {
      setImmediate(() => this.kick());
    }
  }
}

interface WrittenCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

/** The conditions to write, or undefined when the object already carries them. */
function mergeConditions(stored: StoredObject, desired: DesiredStatus['conditions']): WrittenCondition[] | undefined {
  const current = stored.conditions ?? [];
  const generation = stored.generation ?? 0;
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  let differs = current.length !== desired.length;
  const out = desired.map((c) => {
    const was = current.find((w) => w.type === c.type);
    const same = was && was.status === c.status && was.reason === c.reason && was.message === c.message && was.observedGeneration === generation;
    if (!same) differs = true;
    const keepTime = was && was.status === c.status && typeof was.lastTransitionTime === 'string';
    return { type: c.type, status: c.status, reason: c.reason, message: c.message, observedGeneration: generation, lastTransitionTime: keepTime ? (was.lastTransitionTime as string) : now };
  });
  return differs ? out : undefined;
}
