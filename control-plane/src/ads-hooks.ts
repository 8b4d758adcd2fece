/** What an ADS stream tells the rest of the control plane, and what it needs from it. */
import type { NodeIdentity } from '@weft/api';
import type { SnapshotCache } from './snapshot-cache';

export interface AdsHooks {
  readonly cache: SnapshotCache;
  /** A stream identified its node. Must make sure a snapshot exists for it (now or soon). */
  connected(node: NodeIdentity, stream: StreamInfo): void;
  disconnected(node: NodeIdentity, stream: StreamInfo): void;
  sent(node: NodeIdentity, typeUrl: string, version: string, nonce: string, count: number): void;
  acked(node: NodeIdentity, typeUrl: string, version: string): void;
  nacked(node: NodeIdentity, typeUrl: string, version: string, detail: string): void;
}

export interface StreamInfo {
  readonly id: number;
  readonly protocol: 'sotw' | 'delta';
  readonly peer: string;
}

/** How `envoy.config.core.v3.Node` and `google.rpc.Status` arrive decoded (api/src/xds-protos.ts). */
export interface WireNode {
  id?: string;
  cluster?: string;
  /** google.protobuf.Struct */
  metadata?: unknown;
}
export interface WireStatus {
  code?: number;
  message?: string;
}
