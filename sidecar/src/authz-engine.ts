/**
 * Envoy RBAC as this sidecar enforces it (docs/configuration.md, "AuthorizationPolicy"): a list
 * of engines, each an action and named policies, compiled once per config (authz-from-xds.ts)
 * into plain predicates over a request's facts. Evaluated in order, as Envoy runs its RBAC
 * filters: a DENY engine denies when any policy matches; an ALLOW engine denies when none does.
 * Translation emits DENY before ALLOW (translate-authz.ts), so DENY always wins.
 *
 * Pure and synchronous; no allocation per request beyond the decision object of a denial.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** What authorization may look at, for one request or one TCP connection. */
export interface AuthzFacts {
  /** The peer's verified SPIFFE ID (identity.ts `peerSpiffeId`); undefined for plaintext. */
  readonly principal: string | undefined;
  /** The connection's peer address. */
  readonly sourceAddress: string | undefined;
  /** The app port the request or connection is for; undefined when it has none. */
  readonly destinationPort: number | undefined;
  /** HTTP only; absent on a TCP connection, where HTTP matchers never match. */
  readonly http?: AuthzHttpFacts;
}

export interface AuthzHttpFacts {
  readonly method: string;
  /** The normalized path without the query (path-normalize.ts): what `url_path` matches. */
  readonly path: string;
  /** The normalized path with the query as received: what a `:path` header matcher sees. */
  readonly pathWithQuery: string;
  /** The normalized Host / `:authority` (lower case, no trailing dot). */
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
}

/** A compiled `Permission` or `Principal`. */
export type AuthzPredicate = (f: AuthzFacts) => boolean;

export interface RbacPolicy {
  /** The RBAC `policies` map key: Istio's `ns[<ns>]-policy[<name>]-rule[<i>]`. */
  readonly name: string;
  readonly permissions: AuthzPredicate;
  readonly principals: AuthzPredicate;
}

export interface RbacEngine {
  readonly action: 'ALLOW' | 'DENY';
  readonly policies: readonly RbacPolicy[];
}

/** An immutable list of engines, in filter order. */
export type Authz = readonly RbacEngine[];

export type AuthzDecision =
  | { readonly allowed: true }
  /** `policy`: the matching DENY policy's key; undefined when an ALLOW engine matched nothing. */
  | { readonly allowed: false; readonly action: 'ALLOW' | 'DENY'; readonly policy: string | undefined };

const ALLOWED: AuthzDecision = { allowed: true };

/** Runs the engines in order; the first denial wins. */
export function authorize(authz: Authz, facts: AuthzFacts): AuthzDecision {
  for (const engine of authz) {
    let matched: RbacPolicy | undefined;
    for (const p of engine.policies) {
      if (p.permissions(facts) && p.principals(facts)) {
        matched = p;
        break;
      }
    }
    if (engine.action === 'DENY' && matched) return { allowed: false, action: 'DENY', policy: matched.name };
    if (engine.action === 'ALLOW' && !matched) return { allowed: false, action: 'ALLOW', policy: undefined };
  }
  return ALLOWED;
}

/**
 * The policy and rule a key names: `ns[shop]-policy[readers]-rule[0]` → `shop/readers`, rule 0.
 * Keys in another form are returned whole as the policy.
 */
export function policyOfKey(key: string): { readonly policy: string; readonly rule: number | undefined } {
  const m = /^ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[(\d+)\]$/.exec(key);
  return m ? { policy: `${m[1]}/${m[2]}`, rule: Number(m[3]) } : { policy: key, rule: undefined };
}
