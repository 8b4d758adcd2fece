/**
 * The sidecar's xDS state as metrics (docs/metrics.md): connected or not, updates applied and
 * rejected per resource type, and when each type was last applied. `type` is the short type name
 * (`Cluster`, …): at most 5 series per metric.
 */
import { shortTypeName } from '@weft/api';
import type { Counter, Gauge, MetricsRegistry } from './metrics';

export class XdsMetrics {
  private readonly connected: Gauge;
  private readonly applied: Counter<'type'>;
  private readonly nacks: Counter<'type'>;
  private readonly lastApplied: Gauge<'type'>;

  constructor(registry: MetricsRegistry) {
    this.connected = registry.gauge('weft_xds_connected', '1 while the ADS stream to the control plane is up (a response received on it), else 0.');
    this.applied = registry.counter('weft_xds_updates_applied_total', 'xDS responses applied (and ACKed), by resource type.', ['type']);
    this.nacks = registry.counter('weft_xds_nacks_total', 'xDS responses rejected (NACKed), by resource type; the last good config stays.', ['type']);
    this.lastApplied = registry.gauge('weft_xds_last_applied_timestamp_seconds', 'When a response of this type was last applied (Unix seconds).', ['type']);
    this.connected.set({}, 0);
  }

  /** The client's state changed (xds-client.ts). */
  state(to: string): void {
    this.connected.set({}, to === 'READY' ? 1 : 0);
  }

  /** A response of `typeUrl` was applied (`ok`) or rejected. */
  response(typeUrl: string, ok: boolean): void {
    const type = { type: shortTypeName(typeUrl) };
    if (!ok) return this.nacks.inc(type);
    this.applied.inc(type);
    this.lastApplied.set(type, Date.now() / 1000);
  }
}
