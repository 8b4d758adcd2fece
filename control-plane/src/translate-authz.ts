/**
 * AuthorizationPolicy → Envoy RBAC on a sidecar's inbound listener, as Istio builds it
 * (docs/configuration.md, "AuthorizationPolicy"). Pure: the world and one pod in, filters out.
 *
 * - HTTP chains get `envoy.filters.http.rbac` filters before the router: one DENY filter (when a
 *   DENY policy applies), then one ALLOW filter (when any ALLOW policy applies — even one with no
 *   rules, whose empty policy set then denies everything the other ALLOW policies do not allow).
 * - TCP chains get `envoy.filters.network.rbac` filters the same way. A rule that needs HTTP
 *   (hosts, methods, paths) cannot be decided on a TCP connection; as Istio does, an ALLOW rule
 *   holding any such field is dropped (it allows nothing), and a DENY rule is kept without those
 *   fields (it denies more, never less).
 *
 * Each rule is one RBAC policy keyed `ns[<ns>]-policy[<name>]-rule[<i>]` (Istio's key), so a
 * denial names the policy and rule. Within a rule: any `from` entry and any `to` entry; within an
 * entry every field (AND); within a field any value (OR); `notX` fields are negated ORs.
 */
import {
  matchesSelector,
  type AuthorizationPolicy, type AuthzAction, type AuthzOperation, type AuthzRule, type AuthzSource, type Pod,
} from '@weft/api';
import type { World } from './world';

type Obj = Record<string, unknown>;

const F = 'type.googleapis.com/envoy.extensions.filters.';
export const HTTP_RBAC_TYPE = `${F}http.rbac.v3.RBAC`;
export const NETWORK_RBAC_TYPE = `${F}network.rbac.v3.RBAC`;

/** The RBAC filters of one pod's inbound chains; both empty when no policy applies. */
export interface InboundAuthzFilters {
  /** HTTP filters, before the router. */
  readonly http: readonly Obj[];
  /** Network filters, before each TCP proxy. */
  readonly network: readonly Obj[];
}

export const NO_AUTHZ: InboundAuthzFilters = { http: [], network: [] };

/** The policies that apply to `pod`: its namespace's and the root namespace's (`--root-namespace`), by selector. */
export function policiesFor(world: World, pod: Pod): AuthorizationPolicy[] {
  return world.authorizationPolicies.filter((p) => {
    const ns = p.meta.namespace;
    if (ns !== pod.meta.namespace && ns !== world.peerAuth.rootNamespace) return false;
    return !p.selector || matchesSelector(pod.meta.labels, p.selector);
  });
}

/** The inbound RBAC filters for `pod` (DENY first, then ALLOW, as Istio emits them). */
export function inboundAuthz(world: World, pod: Pod | undefined): InboundAuthzFilters {
  const policies = pod ? policiesFor(world, pod) : [];
  if (!policies.length) return NO_AUTHZ;
  const http: Obj[] = [];
  const network: Obj[] = [];
  for (const action of ['DENY', 'ALLOW'] as const) {
    const mine = policies.filter((p) => p.action === action);
    if (!mine.length) continue;
    const rules = (tcp: boolean): Obj => ({ action, policies: rbacPolicies(mine, action, tcp) });
    http.push({ name: 'envoy.filters.http.rbac', typed_config: { '@type': HTTP_RBAC_TYPE, rules: rules(false) } });
    network.push({ name: 'envoy.filters.network.rbac', typed_config: { '@type': NETWORK_RBAC_TYPE, stat_prefix: `tcp.authz.${action.toLowerCase()}.`, rules: rules(true) } });
  }
  return { http, network };
}

/** Istio's key for one rule's RBAC policy. */
export function rbacPolicyKey(p: AuthorizationPolicy, rule: number): string {
  return `ns[${p.meta.namespace}]-policy[${p.meta.name}]-rule[${rule}]`;
}

function rbacPolicies(policies: readonly AuthorizationPolicy[], action: AuthzAction, tcp: boolean): Obj {
  const out: Obj = {};
  for (const p of policies) {
    p.rules.forEach((rule, i) => {
      const r = tcp ? tcpRule(rule, action) : rule;
      if (r) out[rbacPolicyKey(p, i)] = { permissions: permissions(r.to), principals: principals(r.from) };
    });
  }
  return out;
}

const HTTP_ONLY = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

/** A rule as it applies to TCP: ALLOW rules with HTTP fields are dropped, DENY rules lose those fields. */
function tcpRule(rule: AuthzRule, action: AuthzAction): AuthzRule | undefined {
  const http = (o: AuthzOperation): boolean => HTTP_ONLY.some((f) => o[f] !== undefined);
  if (!rule.to?.some(http)) return rule;
  if (action === 'ALLOW') return undefined;
  const to = rule.to.map((o) => {
    const kept: Record<string, unknown> = { ...o };
    for (const f of HTTP_ONLY) delete kept[f];
    return kept as AuthzOperation;
  });
  // An operation left with no field matches any connection: the whole `to` then does.
  return { ...rule, to: to.some((o) => Object.keys(o).length === 0) ? undefined : to };
}

const ANY = { any: true };
const or = (key: 'or_rules' | 'or_ids', list: Obj[]): Obj => (list.length === 1 ? list[0]! : { [key]: key === 'or_rules' ? { rules: list } : { ids: list } });

function permissions(to: readonly AuthzOperation[] | undefined): Obj[] {
  if (!to?.length) return [ANY];
  return to.map((o) => {
    const rules: Obj[] = [];
    const field = (values: readonly (string | number)[] | undefined, negate: boolean, one: (v: any) => Obj): void => {
      if (!values) return;
      const m = or('or_rules', values.map(one));
      rules.push(negate ? { not_rule: m } : m);
    };
    const host = (v: string): Obj => ({ header: { name: ':authority', string_match: { safe_regex: { regex: hostRegex(v) } } } });
    const port = (v: number): Obj => ({ destination_port: v });
    const method = (v: string): Obj => ({ header: { name: ':method', string_match: stringMatch(v) } });
    const path = (v: string): Obj => ({ url_path: { path: stringMatch(v) } });
    field(o.hosts, false, host);
    field(o.notHosts, true, host);
    field(o.ports, false, port);
    field(o.notPorts, true, port);
    field(o.methods, false, method);
    field(o.notMethods, true, method);
    field(o.paths, false, path);
    field(o.notPaths, true, path);
    return rules.length === 1 ? rules[0]! : { and_rules: { rules } };
  });
}

function principals(from: readonly AuthzSource[] | undefined): Obj[] {
  if (!from?.length) return [ANY];
  return from.map((s) => {
    const ids: Obj[] = [];
    const field = (values: readonly string[] | undefined, negate: boolean, one: (v: string) => Obj): void => {
      if (!values) return;
      const m = or('or_ids', values.map(one));
      ids.push(negate ? { not_id: m } : m);
    };
    const principal = (v: string): Obj => ({ authenticated: { principal_name: stringMatch(spiffe(v)) } });
    const namespace = (v: string): Obj => ({ authenticated: { principal_name: { safe_regex: { regex: namespaceRegex(v) } } } });
    const ip = (v: string): Obj => {
      const [address, len] = v.split('/');
      return { direct_remote_ip: { address_prefix: address, prefix_len: { value: len !== undefined ? Number(len) : address!.includes(':') ? 128 : 32 } } };
    };
    field(s.principals, false, principal);
    field(s.notPrincipals, true, principal);
    field(s.namespaces, false, namespace);
    field(s.notNamespaces, true, namespace);
    field(s.ipBlocks, false, ip);
    field(s.notIpBlocks, true, ip);
    return ids.length === 1 ? ids[0]! : { and_ids: { ids } };
  });
}

/** `*` → present (any non-empty value), `abc*` → prefix, `*abc` → suffix, else exact. */
export function stringMatch(v: string): Obj {
  if (v === '*') return { safe_regex: { regex: '.+' } };
  if (v.startsWith('*')) return { suffix: v.slice(1) };
  if (v.endsWith('*')) return { prefix: v.slice(0, -1) };
  return { exact: v };
}

/** Istio's principal form `td/ns/x/sa/y` is the SPIFFE ID without its scheme. */
function spiffe(v: string): string {
  if (v === '*' || v.startsWith('*') || v.startsWith('spiffe://')) return v;
  return `spiffe://${v}`;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A SPIFFE ID whose namespace segment matches the pattern. */
function namespaceRegex(v: string): string {
  const ns = v === '*' ? '[^/]+' : v.startsWith('*') ? `[^/]*${escapeRe(v.slice(1))}` : v.endsWith('*') ? `${escapeRe(v.slice(0, -1))}[^/]*` : escapeRe(v);
  return `spiffe://[^/]+/ns/${ns}/sa/[^/]+`;
}

/**
 * A host pattern against the normalized (lower-case) `:authority`, with or without a port: a rule
 * on `admin.example` also matches `admin.example:8080`, so adding a port cannot bypass a DENY.
 */
function hostRegex(v: string): string {
  if (v === '*') return '.+';
  if (v.startsWith('*')) return `.*${escapeRe(v.slice(1))}(:[0-9]+)?`;
  if (v.endsWith('*')) return `${escapeRe(v.slice(0, -1))}.*`;
  return `${escapeRe(v)}(:[0-9]+)?`;
}
