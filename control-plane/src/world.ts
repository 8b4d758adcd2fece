/**
 * The world snapshot: one consistent, immutable view of everything translation needs, built from
 * a registry's objects (files or Kubernetes) plus which pods have a connected sidecar. Policy
 * acceptance (conflicts, missing targets) is decided here, once, so translation only sees policies
 * that were accepted.
 */
import {
  objectKey,
  type AuthorizationPolicy,
  type EndpointSlice,
  type KubeObject,
  type PeerAuthentication,
  type Pod,
  type Service,
  type TrafficPolicy,
} from '@weft/api';
import { deriveEndpointSlices } from './endpoints-derive';
import type { Diagnostic } from './manifests-load';
import { localPorts, type LocalPorts } from './port-protocol';
import { acceptPeerAuthentications, type PeerAuthIndex } from './peer-auth';
import type { MeshTracing } from './translate-listeners';

export interface Condition {
  readonly type: 'Accepted' | 'ResolvedRefs';
  readonly status: 'True' | 'False';
  readonly reason: string;
  readonly message: string;
}

export interface PolicyStatus {
  /** `TrafficPolicy/<ns>/<name>` */
  readonly key: string;
  readonly conditions: readonly Condition[];
}

export interface World {
  /** Increases with every rebuild; used in logs and debug output. */
  readonly generation: number;
  /** Keyed `<ns>/<name>`. */
  readonly services: ReadonlyMap<string, Service>;
  /** Keyed `<ns>/<name>`. */
  readonly pods: ReadonlyMap<string, Pod>;
  /** Given and derived slices, grouped by `<ns>/<service>`. */
  readonly slices: ReadonlyMap<string, readonly EndpointSlice[]>;
  /** Accepted policies by target Service, keyed `<ns>/<service>`. */
  readonly policies: ReadonlyMap<string, TrafficPolicy>;
  readonly policyStatus: readonly PolicyStatus[];
  /**
   * Every AuthorizationPolicy, sorted by namespace and name (all parsed ones are accepted: what
   * cannot be enforced is refused by the parser). translate-authz.ts picks those selecting a pod.
   */
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  /** `<ns>/<pod>` of every pod whose sidecar is connected to this control plane. */
  readonly meshedPods: ReadonlySet<string>;
  /** Local mode's per-upstream ports and the Service that owns each (port-protocol.ts). */
  readonly localPorts: LocalPorts;
  /** Accepted PeerAuthentications by level (peer-auth.ts). */
  readonly peerAuth: PeerAuthIndex;
  /**
   * `<ns>/<pod>` of every connected sidecar that holds a workload identity (node metadata
   * `WEFT_MTLS=true`): callers reach these pods over mTLS (auto mTLS).
   */
  readonly identityPods: ReadonlySet<string>;
  /** Problems found in a consistent view (not in one document): served at `/debug/diagnostics`. */
  readonly diagnostics: readonly Diagnostic[];
  /** Every root the mesh trusts (PEM), from the CA; sent as the `ROOTCA` Secret. Absent without a CA. */
  readonly trustBundlePem?: string;
  /** Mesh tracing (translate-listeners.ts `hcmTracing`); absent: off. */
  readonly tracing?: MeshTracing;
  /**
   * Which namespaces' Services a sidecar in `namespace` is sent (scoped pushes, docs/operations.md
   * "What each proxy receives"); absent: every namespace (local mode).
   */
  readonly reach?: ReachFn;
}

/** The namespaces whose Services a sidecar in `namespace` may reach: a set, or `'all'`. */
export type ReachFn = (namespace: string) => ReadonlySet<string> | 'all';

export const nsName = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * The label the injector puts on every pod it gives a sidecar with identity (as Istio's
 * `security.istio.io/tlsMode: istio`): callers use mTLS to such a pod whichever control-plane
 * replica its sidecar is connected to.
 */
export const TLS_MODE_LABEL = 'security.weft.dev/tlsMode';

/** Connected sidecars with identity, plus the pods labelled for mTLS by the injector. */
function withLabelledIdentities(connected: ReadonlySet<string>, pods: ReadonlyMap<string, Pod>): ReadonlySet<string> {
  let out: Set<string> | undefined;
  for (const [key, pod] of pods) {
    if (pod.meta.labels[TLS_MODE_LABEL] === 'weft' && !connected.has(key)) (out ??= new Set(connected)).add(key);
  }
  return out ?? connected;
}

/**
 * Builds a World. `objects` are in registry order, which stands in for age where objects carry no
 * creationTimestamp (local mode): for two policies targeting one Service, the older wins.
 */
export function buildWorld(
  objects: readonly KubeObject[],
  meshedPods: ReadonlySet<string>,
  generation: number,
  opts: { readonly identityPods?: ReadonlySet<string>; readonly rootNamespace?: string; readonly reach?: ReachFn } = {},
): World {
  const services = new Map<string, Service>();
  const pods = new Map<string, Pod>();
  const givenSlices: EndpointSlice[] = [];
  const policies: { policy: TrafficPolicy; order: number }[] = [];
  const authz: AuthorizationPolicy[] = [];
  const peerAuths: PeerAuthentication[] = [];
  objects.forEach((o, order) => {
    switch (o.kind) {
      case 'Service': services.set(nsName(o.meta.namespace, o.meta.name), o); break;
      case 'Pod': pods.set(nsName(o.meta.namespace, o.meta.name), o); break;
      case 'EndpointSlice': givenSlices.push(o); break;
      case 'TrafficPolicy': policies.push({ policy: o, order }); break;
      case 'AuthorizationPolicy': authz.push(o); break;
      case 'PeerAuthentication': peerAuths.push(o); break;
    }
  });

  const slices = new Map<string, EndpointSlice[]>();
  for (const s of deriveEndpointSlices([...services.values()], [...pods.values()], givenSlices)) {
    const key = nsName(s.meta.namespace, s.serviceName);
    const list = slices.get(key) ?? [];
    list.push(s);
    slices.set(key, list);
  }

  const { accepted, status } = acceptPolicies(policies, services);
  const ports = localPorts([...services.values()]);
  const diagnostics: Diagnostic[] = ports.problems.map((p) => ({ file: `Service ${p.service}`, severity: 'warning', reason: p.message }));
  authz.sort((a, b) => nsName(a.meta.namespace, a.meta.name).localeCompare(nsName(b.meta.namespace, b.meta.name)));
  const peer = acceptPeerAuthentications(peerAuths, pods.values(), opts.rootNamespace);
  status.push(...authz.map((p) => ({ key: objectKey(p), conditions: [cond('Accepted', true, 'Accepted', authzScope(p, peer.index.rootNamespace))] })));
  for (const p of peer.status) status.push({ key: p.key, conditions: [cond('Accepted', p.accepted, p.reason, p.message)] });
  return {
    generation, services, pods, slices, policies: accepted, policyStatus: status, authorizationPolicies: authz, meshedPods, localPorts: ports, diagnostics,
    peerAuth: peer.index, identityPods: withLabelledIdentities(opts.identityPods ?? new Set(), pods), ...(opts.reach ? { reach: opts.reach } : {}),
  };
}

function acceptPolicies(
  policies: readonly { policy: TrafficPolicy; order: number }[],
  services: ReadonlyMap<string, Service>,
): { accepted: Map<string, TrafficPolicy>; status: PolicyStatus[] } {
  const sorted = [...policies].sort((a, b) => age(a) - age(b) || a.order - b.order);
  const accepted = new Map<string, TrafficPolicy>();
  const status: PolicyStatus[] = [];
  for (const { policy } of sorted) {
    const key = objectKey(policy);
    const target = nsName(policy.meta.namespace, policy.targetRef.name);
    const conditions: Condition[] = [];
    const winner = accepted.get(target);
    if (!services.has(target)) {
      conditions.push(cond('Accepted', false, 'TargetNotFound', `Service ${target} does not exist`));
    } else if (winner) {
      conditions.push(cond('Accepted', false, 'Conflicted',
        `Service ${target} is already governed by the older TrafficPolicy ${winner.meta.name}`));
    } else {
      const missing = missingBackendServices(policy, services);
      if (missing.length) {
        conditions.push(cond('ResolvedRefs', false, 'BackendNotFound', `unknown backend Service: ${missing.join(', ')}`));
        conditions.push(cond('Accepted', false, 'BackendNotFound', `unknown backend Service: ${missing.join(', ')}`));
      } else {
        accepted.set(target, policy);
        conditions.push(cond('ResolvedRefs', true, 'ResolvedRefs', 'every backend exists'));
        const later = policy.notYetSupported.length
          ? `; not yet enforced by this version: ${policy.notYetSupported.join(', ')}`
          : '';
        conditions.push(cond('Accepted', true, 'Accepted', `policy applies to Service ${target}${later}`));
      }
    }
    status.push({ key, conditions });
  }
  return { accepted, status };
}

/** Backend Services (and ports) a policy names that do not exist, as `name` or `name:port`. */
function missingBackendServices(policy: TrafficPolicy, services: ReadonlyMap<string, Service>): string[] {
  const missing = new Set<string>();
  for (const r of policy.routes) {
    for (const b of r.backends) {
      if (b.kind !== 'service') continue;
      const svc = services.get(nsName(policy.meta.namespace, b.service));
      if (!svc) missing.add(b.service);
      else if (b.port !== undefined && !svc.ports.some((p) => p.port === b.port)) missing.add(`${b.service}:${b.port}`);
      else if (b.port === undefined && svc.ports.length > 1) missing.add(`${b.service}:? (it has several ports: name one)`);
    }
  }
  return [...missing];
}

/** What an AuthorizationPolicy applies to, for its Accepted condition. */
function authzScope(p: AuthorizationPolicy, rootNamespace: string): string {
  const what = p.selector ? `workloads labelled ${Object.entries(p.selector).map(([k, v]) => `${k}=${v}`).join(',')}` : 'every workload';
  const where = p.meta.namespace === rootNamespace ? 'in the mesh (root namespace)' : `in namespace ${p.meta.namespace}`;
  const rules = p.rules.length === 0 ? (p.action === 'ALLOW' ? '; no rules: allows nothing' : '; no rules: denies nothing') : '';
  return `${p.action} policy enforced on ${what} ${where}${rules}`;
}

function age(p: { policy: TrafficPolicy; order: number }): number {
  const t = p.policy.meta.creationTimestamp ? Date.parse(p.policy.meta.creationTimestamp) : NaN;
  return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t;
}

function cond(type: Condition['type'], ok: boolean, reason: string, message: string): Condition {
  return { type, status: ok ? 'True' : 'False', reason, message };
}
