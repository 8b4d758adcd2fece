/**
 * Builders for driving ADS streams directly: hooks that record what a stream reports, a real
 * `SnapshotCache`, snapshots translated from a world, and streams whose responses are recorded.
 * No part of the control plane is replaced.
 */
import { parseNodeId, shortTypeName, sidecarNodeId, type KubeObject, type NodeIdentity } from '@weft/api';
import type { AdsHooks, StreamInfo } from '../src/ads-hooks';
import { DeltaStream, type DeltaRequest, type DeltaResponse } from '../src/ads-stream-delta';
import { SotwStream, type SotwRequest, type SotwResponse } from '../src/ads-stream-sotw';
import { encodeSnapshot, SnapshotCache, type NodeSnapshot } from '../src/snapshot-cache';
import { translate } from '../src/translate';
import { buildWorld } from '../src/world';

export const FRONTEND_ID = sidecarNodeId('127.0.0.11', 'frontend', 'shop');
export const BACKEND_HOST = 'backend.shop.svc.cluster.local';
export const IDENTIFIER = 'weft-control-plane@test';

export interface Ack { readonly node: string; readonly type: string; readonly version: string }
export interface Nack extends Ack { readonly detail: string }

/** Hooks over a real cache that record every report, with types as short names (`Cluster`). */
export class RecordingHooks implements AdsHooks {
  readonly cache = new SnapshotCache();
  readonly connections: string[] = [];
  readonly disconnections: string[] = [];
  readonly acks: Ack[] = [];
  readonly nacks: Nack[] = [];
  readonly sends: { node: string; type: string; version: string; nonce: string; count: number }[] = [];

  connected(node: NodeIdentity): void { this.connections.push(node.id); }
  disconnected(node: NodeIdentity): void { this.disconnections.push(node.id); }
  sent(node: NodeIdentity, typeUrl: string, version: string, nonce: string, count: number): void {
    this.sends.push({ node: node.id, type: shortTypeName(typeUrl), version, nonce, count });
  }
  acked(node: NodeIdentity, typeUrl: string, version: string): void {
    this.acks.push({ node: node.id, type: shortTypeName(typeUrl), version });
  }
  nacked(node: NodeIdentity, typeUrl: string, version: string, detail: string): void {
    this.nacks.push({ node: node.id, type: shortTypeName(typeUrl), version, detail });
  }
}

/** The snapshot the control plane would serve `nodeId` for these objects. */
export function snapshotFor(objects: readonly KubeObject[], nodeId = FRONTEND_ID, generation = 1, meshed: string[] = []): NodeSnapshot {
  return encodeSnapshot(translate(buildWorld(objects, new Set(meshed), generation), parseNodeId(nodeId)), generation);
}

let streamSeq = 0;
const info = (protocol: 'sotw' | 'delta'): StreamInfo => ({ id: ++streamSeq, protocol, peer: 'ipv4:127.0.0.1:1' });

export interface Driven<Req, Res> {
  readonly responses: Res[];
  readonly failures: string[];
  handle(req: Req): void;
  end(): void;
  /** Responses written since the last call. */
  take(): Res[];
}

function drive<Req, Res>(make: (write: (r: Res) => void, fail: (m: string) => void) => { handle(r: Req): void; end(): void }): Driven<Req, Res> {
  const responses: Res[] = [];
  const failures: string[] = [];
  let seen = 0;
  const stream = make((r) => responses.push(r), (m) => failures.push(m));
  return {
    responses,
    failures,
    handle: (req) => stream.handle(req),
    end: () => stream.end(),
    take: () => responses.slice(seen, (seen = responses.length)),
  };
}

export const sotwStream = (hooks: AdsHooks): Driven<SotwRequest, SotwResponse> =>
  drive((write, fail) => new SotwStream(info('sotw'), hooks, write, fail, IDENTIFIER));

export const deltaStream = (hooks: AdsHooks): Driven<DeltaRequest, DeltaResponse> =>
  drive((write, fail) => new DeltaStream(info('delta'), hooks, write, fail, IDENTIFIER));
