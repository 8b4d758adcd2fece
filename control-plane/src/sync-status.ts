/**
 * What each connected proxy was sent, acknowledged and rejected, per type: the source of
 * `/debug/syncz` (and `weft proxy-status`) and of the xDS metrics.
 */
import { shortTypeName, type NodeIdentity } from '@weft/api';
import * as prom from 'prom-client';

export interface TypeSync {
  sentVersion?: string;
  sentNonce?: string;
  ackedVersion?: string;
  lastNack?: { version: string; detail: string; at: string };
}

export interface NodeSync {
  readonly node: NodeIdentity;
  streams: number;
  protocol: string;
  readonly types: Map<string, TypeSync>;
  /** When the oldest change not yet acknowledged by this node was seen (`performance.now()`). */
  changeSince?: number;
  /** Types sent since that change whose version the node has not acknowledged yet. */
  readonly pending: Set<string>;
}

export class SyncStatus {
  readonly nodes = new Map<string, NodeSync>();
  private readonly connectedGauge: prom.Gauge;
  private readonly pushes: prom.Counter<'type'>;
  private readonly acks: prom.Counter<'type'>;
  private readonly nacks: prom.Counter<'type'>;
  private readonly convergence: prom.Histogram;

  constructor(registry: prom.Registry) {
    this.connectedGauge = new prom.Gauge({ name: 'weft_xds_connected_proxies', help: 'Proxies with an open ADS stream.', registers: [registry] });
    this.pushes = new prom.Counter({ name: 'weft_xds_pushes_total', help: 'xDS responses sent, by resource type.', labelNames: ['type'], registers: [registry] });
    this.acks = new prom.Counter({ name: 'weft_xds_acks_total', help: 'xDS responses acknowledged, by resource type.', labelNames: ['type'], registers: [registry] });
    this.nacks = new prom.Counter({ name: 'weft_xds_nacks_total', help: 'xDS responses rejected by a proxy, by resource type.', labelNames: ['type'], registers: [registry] });
    this.convergence = new prom.Histogram({
      name: 'weft_xds_push_convergence_seconds',
      help: 'From a change to the mesh being seen to a proxy acknowledging every resource type the change made it send, seconds (one observation per proxy and change).',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  }

  /**
   * The rebuild of a change seen at `since` (`performance.now()`) gave `nodeId` a new snapshot:
   * what it is sent next counts toward that change's convergence. An older change still pending
   * keeps its start (convergence is measured from the oldest change not yet acknowledged).
   */
  changed(nodeId: string, since: number): boolean {
    const n = this.nodes.get(nodeId);
    if (!n || n.changeSince !== undefined) return false;
    n.changeSince = since;
    return true;
  }

  /** The rebuild did not change the node's snapshot after all: undoes the `changed` that started a clock. */
  unchanged(nodeId: string): void {
    const n = this.nodes.get(nodeId);
    if (n && n.pending.size === 0) n.changeSince = undefined;
  }

  /** Returns true when this is the node's first stream. */
  connected(node: NodeIdentity, protocol: string): boolean {
    let n = this.nodes.get(node.id);
    const first = !n;
    if (!n) this.nodes.set(node.id, (n = { node, streams: 0, protocol, types: new Map(), pending: new Set() }));
    n.streams++;
    n.protocol = protocol;
    this.connectedGauge.set(this.nodes.size);
    return first;
  }

  /** Returns true when the node has no stream left. */
  disconnected(node: NodeIdentity): boolean {
    const n = this.nodes.get(node.id);
    if (!n) return false;
    n.streams--;
    if (n.streams > 0) return false;
    this.nodes.delete(node.id);
    this.connectedGauge.set(this.nodes.size);
    return true;
  }

  sent(node: NodeIdentity, typeUrl: string, version: string, nonce: string): void {
    const t = this.type(node, typeUrl);
    if (t) Object.assign(t, { sentVersion: version, sentNonce: nonce });
    const n = this.nodes.get(node.id);
    if (n?.changeSince !== undefined) n.pending.add(typeUrl);
    this.pushes.inc({ type: shortTypeName(typeUrl) });
  }

  acked(node: NodeIdentity, typeUrl: string, version: string): void {
    const t = this.type(node, typeUrl);
    if (t) t.ackedVersion = version;
    this.acks.inc({ type: shortTypeName(typeUrl) });
    const n = this.nodes.get(node.id);
    if (n?.changeSince === undefined || !t || t.sentVersion !== version || !n.pending.delete(typeUrl) || n.pending.size) return;
    this.convergence.observe((performance.now() - n.changeSince) / 1000);
    n.changeSince = undefined;
  }

  nacked(node: NodeIdentity, typeUrl: string, version: string, detail: string): void {
    const t = this.type(node, typeUrl);
    if (t) t.lastNack = { version, detail, at: new Date().toISOString() };
    this.nacks.inc({ type: shortTypeName(typeUrl) });
    // A rejected change never converges; the next change starts the clock again.
    const n = this.nodes.get(node.id);
    if (n) {
      n.changeSince = undefined;
      n.pending.clear();
    }
  }

  /** JSON for `/debug/syncz`. */
  toJSON(): unknown[] {
    return [...this.nodes.values()].map((n) => ({
      node: n.node.id,
      kind: n.node.kind,
      protocol: n.protocol,
      streams: n.streams,
      types: Object.fromEntries([...n.types].map(([t, s]) => [shortTypeName(t), { ...s, synced: s.sentVersion === s.ackedVersion }])),
    }));
  }

  private type(node: NodeIdentity, typeUrl: string): TypeSync | undefined {
    const n = this.nodes.get(node.id);
    if (!n) return undefined;
    let t = n.types.get(typeUrl);
    if (!t) n.types.set(typeUrl, (t = {}));
    return t;
  }
}
