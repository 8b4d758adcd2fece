/**
 * SPIFFE IDs as Weft uses them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`
 * (SPEC.md "Identity"), the URI SAN of every workload certificate.
 */
import { fail, ok, type Result } from './result';

export interface SpiffeIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

// A trust domain is a lowercase DNS-like name (SPIFFE-ID.md 2.1); namespace and service account
// are Kubernetes DNS-1123 labels/subdomains.
const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Checks the three parts; the message names the one that is wrong. */
export function validateSpiffeIdentity(id: SpiffeIdentity): Result<SpiffeIdentity> {
  if (!TRUST_DOMAIN.test(id.trustDomain)) return fail(`invalid trust domain "${id.trustDomain}" (lowercase letters, digits, ".", "-", "_")`);
  if (!NAMESPACE.test(id.namespace)) return fail(`invalid namespace "${id.namespace}" (a DNS-1123 label)`);
  if (!SERVICE_ACCOUNT.test(id.serviceAccount)) return fail(`invalid service account "${id.serviceAccount}" (a DNS-1123 subdomain)`);
  return ok(id);
}

/** `spiffe://td/ns/ns/sa/sa`; throws on invalid parts (callers validate input at the edge). */
export function formatSpiffeId(id: SpiffeIdentity): string {
  const v = validateSpiffeIdentity(id);
  if (!v.ok) throw new Error(v.errors.join('; '));
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Parses a Weft SPIFFE ID; anything else (other paths, query, fragment, port, userinfo) is an error. */
export function parseSpiffeId(uri: string): Result<SpiffeIdentity> {
  const m = /^spiffe:\/\/([^/?#:@]+)\/ns\/([^/?#]+)\/sa\/([^/?#]+)$/.exec(uri);
  if (!m) return fail(`"${uri}" is not a SPIFFE ID of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`);
  return validateSpiffeIdentity({ trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! });
}
