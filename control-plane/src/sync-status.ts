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
}

export class SyncStatus {
  readonly nodes = new Map<string, NodeSync>();
  private readonly connectedGauge: prom.Gauge;
  private readonly pushes: prom.Counter<'type'>;
  private readonly acks: prom.Counter<'type'>;
  private readonly nacks: prom.Counter<'type'>;

  constructor(registry: prom.Registry) {
    this.connectedGauge = new prom.Gauge({ name: 'weft_xds_connected_proxies', help: 'Proxies with an open ADS stream.', registers: [registry] });
    this.pushes = new prom.Counter({ name: 'weft_xds_pushes_total', help: 'xDS responses sent, by resource type.', labelNames: ['type'], registers: [registry] });
    this.acks = new prom.Counter({ name: 'weft_xds_acks_total', help: 'xDS responses acknowledged, by resource type.', labelNames: ['type'], registers: [registry] });
    this.nacks = new prom.Counter({ name: 'weft_xds_nacks_total', help: 'xDS responses rejected by a proxy, by resource type.', labelNames: ['type'], registers: [registry] });
  }

  /** Returns true when this is the node's first stream. */
  connected(node: NodeIdentity, protocol: string): boolean {
    let n = this.nodes.get(node.id);
    const first = !n;
    if (!n) this.nodes.set(node.id, (n = { node, streams: 0, protocol, types: new Map() }));
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
    this.pushes.inc({ type: shortTypeName(typeUrl) });
  }

  acked(node: NodeIdentity, typeUrl: string, version: string): void {
    const t = this.type(node, typeUrl);
    if (t) t.ackedVersion = version;
    this.acks.inc({ type: shortTypeName(typeUrl) });
  }

  nacked(node: NodeIdentity, typeUrl: string, version: string, detail: string): void {
    const t = this.type(node, typeUrl);
    if (t) t.lastNack = { version, detail, at: new Date().toISOString() };
    this.nacks.inc({ type: shortTypeName(typeUrl) });
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
