/**
 * PeerAuthentication acceptance and the effective mTLS mode of a pod's port (Istio's semantics,
 * docs/configuration.md "PeerAuthentication"):
 *
 * - levels: mesh-wide (the root namespace, no selector), namespace (no selector), workload (a
 *   selector); a workload policy's `portLevelMtls` entry for the port beats its own `mtls`;
 * - precedence: port > workload > namespace > mesh; `UNSET` (or no mode) inherits from the level
 *   above; nothing set anywhere is `PERMISSIVE`;
 * - two policies at one level for the same workloads: the oldest wins (creationTimestamp, then
 *   registry order), the other is `Accepted=False`, reason `Conflicted`.
 *
 * Pure: the world calls `acceptPeerAuthentications` once per rebuild; translation asks `mtlsModeOf`.
 */
import { matchesSelector, MESH_ROOT_NAMESPACE, objectKey, type MtlsMode, type PeerAuthentication, type Pod } from '@weft/api';

/** Istio's default root namespace is `istio-system`; Weft's is where it is installed. */
export const DEFAULT_ROOT_NAMESPACE = MESH_ROOT_NAMESPACE;

export type EffectiveMode = Exclude<MtlsMode, 'UNSET'>;

export interface PeerAuthConditions {
  readonly key: string;
  readonly accepted: boolean;
  readonly reason: string;
  readonly message: string;
}

/** The accepted policies, by level. */
export interface PeerAuthIndex {
  readonly rootNamespace: string;
  readonly mesh?: PeerAuthentication;
  /** By namespace. */
  readonly namespaces: ReadonlyMap<string, PeerAuthentication>;
  /** Oldest first. */
  readonly workloads: readonly PeerAuthentication[];
}

export const EMPTY_PEER_AUTH: PeerAuthIndex = { rootNamespace: DEFAULT_ROOT_NAMESPACE, namespaces: new Map(), workloads: [] };

/** `policies` in registry order (which stands in for age where there is no creationTimestamp). */
export function acceptPeerAuthentications(
  policies: readonly PeerAuthentication[],
  pods: Iterable<Pod>,
  rootNamespace = DEFAULT_ROOT_NAMESPACE,
): { index: PeerAuthIndex; status: PeerAuthConditions[] } {
  const sorted = policies.map((p, order) => ({ p, order })).sort((a, b) => age(a.p) - age(b.p) || a.order - b.order).map((x) => x.p);
  const podList = [...pods];
  let mesh: PeerAuthentication | undefined;
  const namespaces = new Map<string, PeerAuthentication>();
  const workloads: PeerAuthentication[] = [];
  const status: PeerAuthConditions[] = [];
  const claimed = new Map<string, PeerAuthentication>(); // pod `<ns>/<name>` → workload policy
  for (const p of sorted) {
    const key = objectKey(p);
    const ns = p.meta.namespace;
    const conflicted = (older: PeerAuthentication, what: string): void => {
      status.push({ key, accepted: false, reason: 'Conflicted', message: `${what} is already governed by the older PeerAuthentication ${older.meta.namespace}/${older.meta.name}` });
    };
    if (!p.selector) {
      const isMesh = ns === rootNamespace;
      const older = isMesh ? mesh : namespaces.get(ns);
      if (older) {
        conflicted(older, isMesh ? 'the mesh' : `namespace ${ns}`);
        continue;
      }
      if (isMesh) mesh = p;
      // A root-namespace policy without selector is both mesh-wide and that namespace's own.
      namespaces.set(ns, p);
      status.push({ key, accepted: true, reason: 'Accepted', message: `applies to ${isMesh ? 'the whole mesh' : `namespace ${ns}`}: mode ${p.mode}` });
      continue;
    }
    const selected = podList.filter((pod) => pod.meta.namespace === ns && matchesSelector(pod.meta.labels, p.selector!));
    const clash = selected.map((pod) => claimed.get(`${ns}/${pod.meta.name}`)).find((o) => o !== undefined);
    if (clash) {
      conflicted(clash, `a pod it selects`);
      continue;
    }
    for (const pod of selected) claimed.set(`${ns}/${pod.meta.name}`, p);
    workloads.push(p);
    const ports = [...p.portLevel].map(([port, m]) => `${port}: ${m}`).join(', ');
    status.push({ key, accepted: true, reason: 'Accepted', message: `applies to ${selected.length} pod(s) in ${ns}: mode ${p.mode}${ports ? `; ports ${ports}` : ''}` });
  }
  return { index: { rootNamespace, ...(mesh ? { mesh } : {}), namespaces, workloads }, status };
}

/** The mode for `pod`'s app port `port` (a container port); `port` undefined: the workload's mode. */
export function mtlsModeOf(index: PeerAuthIndex, pod: Pod, port?: number): EffectiveMode {
  const workload = index.workloads.find((p) => p.meta.namespace === pod.meta.namespace && matchesSelector(pod.meta.labels, p.selector!));
  const chain: (MtlsMode | undefined)[] = [
    port === undefined ? undefined : workload?.portLevel.get(port),
    workload?.mode,
    index.namespaces.get(pod.meta.namespace)?.mode,
    index.mesh?.mode,
  ];
  for (const m of chain) if (m && m !== 'UNSET') return m;
  return 'PERMISSIVE';
}

function age(p: PeerAuthentication): number {
  const t = p.meta.creationTimestamp ? Date.parse(p.meta.creationTimestamp) : NaN;
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t;
}
