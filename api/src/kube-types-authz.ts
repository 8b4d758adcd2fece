/**
 * `weft.dev/v1alpha1 AuthorizationPolicy` (SPEC.md "CRDs"), with Istio's semantics
 * (docs/configuration.md, "AuthorizationPolicy"). Values are kept as written: `abc*` is a prefix,
 * `*abc` a suffix, `*` "present"; translate-authz.ts turns them into Envoy RBAC matchers.
 */
import type { ObjectMeta } from './kube-types';

export type AuthzAction = 'ALLOW' | 'DENY';

/** One `from` entry: every field set must match (AND); within a field, any value (OR). */
export interface AuthzSource {
  /** SPIFFE IDs, `spiffe://td/ns/x/sa/y` or Istio's `td/ns/x/sa/y` (both mean the same). */
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  /** IPv4/IPv6 addresses or CIDRs of the connection's peer (Istio's `ipBlocks`). */
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
}

/** One `to` entry: every field set must match (AND); within a field, any value (OR). */
export interface AuthzOperation {
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  readonly ports?: readonly number[];
  readonly notPorts?: readonly number[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}

/** A rule matches when any `from` entry and any `to` entry match; an absent list matches anything. */
export interface AuthzRule {
  readonly from?: readonly AuthzSource[];
  readonly to?: readonly AuthzOperation[];
}

export interface AuthorizationPolicy {
  readonly kind: 'AuthorizationPolicy';
  readonly meta: ObjectMeta;
  /** `matchLabels`; absent: every workload of the namespace (of the mesh, in the root namespace). */
  readonly selector?: Readonly<Record<string, string>>;
  readonly action: AuthzAction;
  /**
   * Istio's meanings: no rules (absent or `[]`) matches nothing — an ALLOW policy then allows
   * nothing (deny-all), a DENY policy denies nothing; a rule `{}` matches everything.
   */
  readonly rules: readonly AuthzRule[];
}

/**
 * The mesh's default root namespace (`weft control-plane --root-namespace`): a PeerAuthentication
 * or AuthorizationPolicy there without selector applies to every workload.
 */
export const MESH_ROOT_NAMESPACE = 'weft-system';
