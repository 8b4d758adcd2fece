/**
 * One state-of-the-world ADS stream: subscriptions, nonces, ACK/NACK, and pushes of whole types
 * when the node's snapshot changes. A request with a stale nonce is ignored (xDS protocol: the
 * client has not yet seen our latest response).
 */
import { RESOURCE_TYPES, TypeUrl, type ResourceTypeUrl } from '@weft/api';
import type { WireNode, WireStatus } from './ads-hooks';
import { AdsStreamBase } from './ads-stream-base';
import type { NodeSnapshot } from './snapshot-cache';

export interface SotwRequest {
  version_info?: string;
  node?: WireNode | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: WireStatus | null;
}

export interface SotwResponse {
  version_info: string;
  resources: { type_url: string; value: Buffer }[];
  type_url: string;
  nonce: string;
  control_plane: { identifier: string };
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  sentVersion?: string;
  sentNames?: string;
  nonce?: string;
}

/** LDS and CDS treat an empty first request as a wildcard subscription; RDS and EDS do not. */
const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.Listener, TypeUrl.Cluster]);

export class SotwStream extends AdsStreamBase<SotwResponse> {
  private readonly types = new Map<string, TypeState>();

  handle(req: SotwRequest): void {
    const typeUrl = this.begin(req);
    if (!typeUrl || !this.node) return;
    let st = this.types.get(typeUrl);
    const first = !st;
    if (!st) this.types.set(typeUrl, (st = { wildcard: false, names: new Set() }));
    const nonce = req.response_nonce ?? '';
    if (nonce && nonce !== st.nonce) return; // stale
    if (nonce && req.error_detail) {
      this.hooks.nacked(this.node, typeUrl, st.sentVersion ?? '', req.error_detail.message ?? '');
    } else if (nonce) {
      this.hooks.acked(this.node, typeUrl, req.version_info ?? '');
    }
    const names = req.resource_names ?? [];
    st.wildcard = names.includes('*') || (names.length === 0 && (WILDCARD_TYPES.has(typeUrl) && (first || st.wildcard)));
    st.names = new Set(names.filter((n) => n !== '*'));
    const snapshot = this.hooks.cache.get(this.node.id);
    if (snapshot) this.push(typeUrl, st, snapshot);
  }

  protected pushAll(snapshot: NodeSnapshot): void {
    for (const t of RESOURCE_TYPES) {
      const st = this.types.get(t);
      if (st) this.push(t, st, snapshot);
    }
  }

  /** Sends the type when its version or the subscribed names differ from what was last sent. */
  private push(typeUrl: string, st: TypeState, snapshot: NodeSnapshot): void {
    const ts = snapshot.types.get(typeUrl as ResourceTypeUrl);
    if (!ts || !this.node) return;
    const namesKey = st.wildcard ? '*' : [...st.names].sort().join(',');
    if (st.sentVersion === ts.version && st.sentNames === namesKey) return;
    const resources = [...ts.resources.values()]
      .filter((r) => st.wildcard || st.names.has(r.name))
      .map((r) => r.any);
    st.sentVersion = ts.version;
    st.sentNames = namesKey;
    st.nonce = String(++this.nonceSeq);
    this.write({ version_info: ts.version, resources, type_url: typeUrl, nonce: st.nonce, control_plane: { identifier: this.identifier } });
    this.hooks.sent(this.node, typeUrl, ts.version, st.nonce, resources.length);
  }

}
