/**
 * `weft_registry_events_total{kind,event}`: what each registry snapshot changed, object by object
 * (local mode's manifest directory; Kubernetes mode counts its watch events in `weft_informer_events_total`). `kind` is the object
 * kind (`Service`, `Pod`, …: at most 6), `event` `added`, `updated` or `deleted`.
 */
import { objectKey, type KubeObject } from '@weft/api';
import * as prom from 'prom-client';
import { canonicalJson } from './registry-files';

export class RegistryEvents {
  private readonly events: prom.Counter<'kind' | 'event'>;
  private last = new Map<string, { readonly kind: string; readonly json: string }>();

  constructor(registry: prom.Registry) {
    this.events = new prom.Counter({ name: 'weft_registry_events_total', help: 'Registry objects added, updated or deleted, by kind (the first load counts as added).', labelNames: ['kind', 'event'], registers: [registry] });
  }

  /** A new snapshot of every object: counts the differences from the previous one. */
  snapshot(objects: readonly KubeObject[]): void {
    const now = new Map<string, { kind: string; json: string }>();
    for (const o of objects) {
      const key = objectKey(o);
      const json = canonicalJson(o);
      now.set(key, { kind: o.kind, json });
      const was = this.last.get(key);
      if (!was) this.events.inc({ kind: o.kind, event: 'added' });
      else if (was.json !== json) this.events.inc({ kind: o.kind, event: 'updated' });
    }
    for (const [key, was] of this.last) if (!now.has(key)) this.events.inc({ kind: was.kind, event: 'deleted' });
    this.last = now;
  }
}
