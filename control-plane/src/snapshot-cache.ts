/**
 * Per-node snapshots: each resource encoded once into an `Any`, versioned by a hash of its bytes
 * (so delta versions are content hashes and an identical resource is never resent, even by a
 * restarted control plane), and each type versioned by a hash of its names and versions.
 * Watchers hear of a node's new snapshot synchronously from `set()`.
 */
import { createHash } from 'node:crypto';
import { encodeResource, RESOURCE_TYPES, type AnyMessage, type ResourceTypeUrl } from '@weft/api';
import type { Resources } from './translate';

export interface EncodedResource {
  readonly name: string;
  readonly version: string;
  readonly any: AnyMessage;
}

export interface TypeSnapshot {
  readonly version: string;
  readonly resources: ReadonlyMap<string, EncodedResource>;
}

export interface NodeSnapshot {
  /** The world generation it was translated from. */
  readonly generation: number;
  readonly types: ReadonlyMap<ResourceTypeUrl, TypeSnapshot>;
}

const hash = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex').slice(0, 16);

/** Encodes translated resources; throws when a resource does not fit its proto (a translation bug). */
export function encodeSnapshot(resources: Resources, generation: number): NodeSnapshot {
  const types = new Map<ResourceTypeUrl, TypeSnapshot>();
  for (const typeUrl of RESOURCE_TYPES) {
    const byName = resources.get(typeUrl);
    const encoded = new Map<string, EncodedResource>();
    for (const [name, object] of [...(byName ?? new Map())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const value = encodeResource(typeUrl, object);
      encoded.set(name, { name, version: hash(value), any: { type_url: typeUrl, value } });
    }
    const version = hash([...encoded.values()].map((r) => `${r.name}@${r.version}`).join('\n'));
    types.set(typeUrl, { version, resources: encoded });
  }
  return { generation, types };
}

export type SnapshotWatcher = (snapshot: NodeSnapshot) => void;

export class SnapshotCache {
  private readonly snapshots = new Map<string, NodeSnapshot>();
  private readonly watchers = new Map<string, Set<SnapshotWatcher>>();

  get(nodeId: string): NodeSnapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  /** Stores the node's snapshot and tells its watchers, unless every type version is unchanged. */
  set(nodeId: string, snapshot: NodeSnapshot): boolean {
    const prev = this.snapshots.get(nodeId);
    this.snapshots.set(nodeId, snapshot);
    if (prev && sameVersions(prev, snapshot)) return false;
    for (const w of [...(this.watchers.get(nodeId) ?? [])]) w(snapshot);
    return true;
  }

  delete(nodeId: string): void {
    this.snapshots.delete(nodeId);
  }

  nodeIds(): string[] {
    return [...this.snapshots.keys()];
  }

  /** Calls `watcher` on every later change of the node's snapshot. Returns the unsubscribe. */
  watch(nodeId: string, watcher: SnapshotWatcher): () => void {
    let set = this.watchers.get(nodeId);
    if (!set) this.watchers.set(nodeId, (set = new Set()));
    set.add(watcher);
    return () => {
      set!.delete(watcher);
      if (set!.size === 0) this.watchers.delete(nodeId);
    };
  }
}

function sameVersions(a: NodeSnapshot, b: NodeSnapshot): boolean {
  for (const [t, s] of b.types) if (a.types.get(t)?.version !== s.version) return false;
  return a.types.size === b.types.size;
}
