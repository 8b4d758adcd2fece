/**
 * One incremental (delta) ADS stream. Each type tracks what the client has (name → version); a
 * push sends only resources whose version differs and names that went away. On a snapshot change
 * additions go first in the order CDS, EDS, LDS, RDS and removals last in the reverse order, so a
 * route never points at a cluster the proxy has already dropped (make before break).
 *
 * Flow control: while any response of the stream is unanswered (no ACK or NACK yet), snapshot
 * changes are not pushed; once every response is answered, one push brings the client to the
 * newest snapshot. A proxy busy applying a large config is thus sent one catch-up instead of a
 * queue of intermediate ones (a mesh of 10,000 Services being created otherwise buried the proxy
 * in outdated pushes: docs/performance.md, "Kubernetes mode at scale"). A client that leaves a
 * response unanswered for FLOW_CONTROL_MAX_WAIT_MS is pushed to anyway.
 */
import { RESOURCE_TYPES, TypeUrl, type ResourceTypeUrl } from '@weft/api';
import type { WireNode, WireStatus } from './ads-hooks';
import { AdsStreamBase } from './ads-stream-base';
import type { NodeSnapshot } from './snapshot-cache';

export interface DeltaRequest {
  node?: WireNode | null;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: WireStatus | null;
}

export interface DeltaResponse {
  system_version_info: string;
  resources: { name: string; version: string; resource: { type_url: string; value: Buffer } }[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
  control_plane: { identifier: string };
}

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the client holds, by name. */
  known: Map<string, string>;
  /** A first response is owed even when it would be empty (the client waits for it). */
  owed: boolean;
}

/** Longest a push waits for an unanswered response before going out anyway. */
export const FLOW_CONTROL_MAX_WAIT_MS = 5_000;

const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.Listener, TypeUrl.Cluster]);
const REMOVAL_ORDER: readonly ResourceTypeUrl[] = [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret];

export class DeltaStream extends AdsStreamBase<DeltaResponse> {
  private readonly types = new Map<string, TypeState>();
  /** Responses not yet answered, by nonce: what they carried. */
  private readonly pending = new Map<string, { version: string; names: string[]; removed: string[]; at: number }>();
  /** A snapshot change arrived while responses were unanswered: push the newest once they are. */
  private deferred = false;
  private deferTimer?: NodeJS.Timeout;

  handle(req: DeltaRequest): void {
    const typeUrl = this.begin(req);
    if (!typeUrl || !this.node) return;

    const nonce = req.response_nonce ?? '';
    if (nonce) {
      const sent = this.pending.get(nonce);
      this.pending.delete(nonce);
      if (sent && req.error_detail) {
        this.hooks.nacked(this.node, typeUrl, sent.version, req.error_detail.message ?? '');
        this.forget(typeUrl, sent);
      } else if (sent) this.hooks.acked(this.node, typeUrl, sent.version);
    }

    let st = this.types.get(typeUrl);
    const subscribe = req.resource_names_subscribe ?? [];
    const unsubscribe = req.resource_names_unsubscribe ?? [];
    if (!st) {
      st = {
        wildcard: subscribe.length === 0 && WILDCARD_TYPES.has(typeUrl),
        names: new Set(),
        known: new Map(Object.entries(req.initial_resource_versions ?? {})),
        owed: true,
      };
      this.types.set(typeUrl, st);
    }
    for (const n of subscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of unsubscribe) {
      if (n === '*') st.wildcard = false;
      else {
        st.names.delete(n);
        st.known.delete(n);
      }
    }
    const snapshot = this.hooks.cache.get(this.node.id);
    // Answering a NACK at once would send the rejected resources straight back; they wait for
    // the next push instead.
    if (!snapshot || (nonce && req.error_detail)) return;
    const diff = this.diff(typeUrl, st, snapshot);
    if (diff.adds.length || diff.removes.length || st.owed) this.send(typeUrl, st, snapshot, diff.adds, diff.removes);
    if (this.deferred && this.pending.size === 0) this.catchUp();
  }

  override end(): void {
    clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
    this.deferred = false;
    super.end();
  }

  /** Pushes the newest snapshot after a deferral. */
  private catchUp(): void {
    this.deferred = false;
    clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
    const snapshot = this.node ? this.hooks.cache.get(this.node.id) : undefined;
    if (snapshot) this.pushAll(snapshot);
  }

  protected pushAll(snapshot: NodeSnapshot): void {
    if (this.pending.size > 0) {
      let oldest = Infinity;
      for (const p of this.pending.values()) oldest = Math.min(oldest, p.at);
      const waited = performance.now() - oldest;
      if (waited < FLOW_CONTROL_MAX_WAIT_MS) {
        this.deferred = true;
        this.deferTimer ??= setTimeout(() => {
          this.deferTimer = undefined;
          if (this.deferred) this.catchUp();
        }, FLOW_CONTROL_MAX_WAIT_MS - waited);
        this.deferTimer.unref();
        return;
      }
    }
    this.deferred = false;
    const diffs = new Map<string, ReturnType<DeltaStream['diff']>>();
    for (const [t, st] of this.types) diffs.set(t, this.diff(t, st, snapshot));
    for (const t of RESOURCE_TYPES) {
      const st = this.types.get(t);
      const d = diffs.get(t);
      if (st && d && (d.adds.length || st.owed)) this.send(t, st, snapshot, d.adds, []);
    }
    for (const t of REMOVAL_ORDER) {
      const st = this.types.get(t);
      const d = diffs.get(t);
      if (st && d && d.removes.length) this.send(t, st, snapshot, [], d.removes);
    }
  }

  /**
   * The client rejected a response, so it holds neither what that response sent nor lacks what it
   * removed: mark both unknown, so the next push of this type offers them again.
   */
  private forget(typeUrl: string, sent: { names: string[]; removed: string[] }): void {
    const st = this.types.get(typeUrl);
    if (!st) return;
    for (const n of sent.names) st.known.delete(n);
    for (const n of sent.removed) st.known.set(n, '');
  }

  private diff(typeUrl: string, st: TypeState, snapshot: NodeSnapshot): { adds: string[]; removes: string[] } {
    const ts = snapshot.types.get(typeUrl as ResourceTypeUrl);
    const adds: string[] = [];
    const removes: string[] = [];
    for (const r of ts?.resources.values() ?? []) {
      if ((st.wildcard || st.names.has(r.name)) && st.known.get(r.name) !== r.version) adds.push(r.name);
    }
    for (const name of st.known.keys()) {
      if (!ts?.resources.has(name)) removes.push(name);
    }
    return { adds, removes };
  }

  private send(typeUrl: string, st: TypeState, snapshot: NodeSnapshot, adds: string[], removes: string[]): void {
    if (!this.node) return;
    const ts = snapshot.types.get(typeUrl as ResourceTypeUrl);
    const resources = adds.map((name) => {
      const r = ts!.resources.get(name)!;
      st.known.set(name, r.version);
      return { name, version: r.version, resource: r.any };
    });
    for (const n of removes) st.known.delete(n);
    st.owed = false;
    const nonce = String(++this.nonceSeq);
    const version = ts?.version ?? '';
    this.pending.set(nonce, { version, names: adds, removed: removes, at: performance.now() });
    this.write({ system_version_info: version, resources, type_url: typeUrl, removed_resources: removes, nonce, control_plane: { identifier: this.identifier } });
    this.hooks.sent(this.node, typeUrl, version, nonce, resources.length + removes.length);
  }

}
