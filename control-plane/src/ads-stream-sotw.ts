/**
 * One state-of-the-world ADS stream: subscriptions, nonces, ACK/NACK, and pushes of whole types
 * when the node's snapshot changes. A request with a stale nonce is ignored (xDS protocol: the
 * client has not yet seen our latest response).
 */
import { parseNodeId, RESOURCE_TYPES, type NodeIdentity, type ResourceTypeUrl } from '@weft/api';
import type { AdsHooks, StreamInfo, WireNode, WireStatus } from './ads-hooks';
import type { NodeSnapshot } from './snapshot-cache';
import { TypeUrl } from '@weft/api';

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

export class SotwStream {
  private node?: NodeIdentity;
  private readonly types = new Map<string, TypeState>();
  private unwatch?: () => void;
  private nonceSeq = 0;

  constructor(
    private readonly info: StreamInfo,
    private readonly hooks: AdsHooks,
    private readonly write: (r: SotwResponse) => void,
    private readonly fail: (message: string) => void,
    private readonly identifier: string,
  ) {}

  handle(req: SotwRequest): void {
    if (!this.node) {
      if (!req.node?.id) return this.fail('the first DiscoveryRequest on a stream must carry node.id');
      this.node = parseNodeId(req.node.id);
      this.unwatch = this.hooks.cache.watch(this.node.id, (s) => this.pushAll(s));
      this.hooks.connected(this.node, this.info);
    }
    const typeUrl = req.type_url ?? '';
    if (!RESOURCE_TYPES.includes(typeUrl as ResourceTypeUrl)) return;
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

  private pushAll(snapshot: NodeSnapshot): void {
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

  /** Idempotent. */
  end(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.node) this.hooks.disconnected(this.node, this.info);
    this.node = undefined;
  }
}
