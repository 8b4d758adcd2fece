/** What both kinds of ADS stream share: node identification, the snapshot watch, the end. */
import { nodeMetadataStrings, parseNodeId, RESOURCE_TYPES, type NodeIdentity, type ResourceTypeUrl } from '@weft/api';
import type { AdsHooks, StreamInfo, WireNode } from './ads-hooks';
import type { NodeSnapshot } from './snapshot-cache';

export abstract class AdsStreamBase<Res> {
  protected node?: NodeIdentity;
  private unwatch?: () => void;
  protected nonceSeq = 0;

  constructor(
    protected readonly info: StreamInfo,
    protected readonly hooks: AdsHooks,
    protected readonly write: (r: Res) => void,
    private readonly fail: (message: string) => void,
    protected readonly identifier: string,
  ) {}

  /**
   * Identifies the node on the stream's first request (failing the stream without one) and
   * returns the request's type when it is one Weft serves. Unknown types are ignored, as a
   * server that does not know a type sends nothing for it.
   */
  protected begin(req: { node?: WireNode | null; type_url?: string }): ResourceTypeUrl | undefined {
    if (!this.node) {
      if (!req.node?.id) {
        this.fail('the first request on an ADS stream must carry node.id');
        return undefined;
      }
      this.node = parseNodeId(req.node.id, nodeMetadataStrings(req.node.metadata));
      this.unwatch = this.hooks.cache.watch(this.node.id, (s) => this.pushAll(s));
      this.hooks.connected(this.node, this.info);
    }
    const typeUrl = req.type_url ?? '';
    return RESOURCE_TYPES.includes(typeUrl as ResourceTypeUrl) ? (typeUrl as ResourceTypeUrl) : undefined;
  }

  /** Called synchronously whenever the node's snapshot changes. */
  protected abstract pushAll(snapshot: NodeSnapshot): void;

  /** Idempotent. */
  end(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    if (this.node) this.hooks.disconnected(this.node, this.info);
    this.node = undefined;
  }
}
