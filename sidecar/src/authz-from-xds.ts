/**
 * Envoy's RBAC filter configs (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`) → a
 * compiled `RbacEngine` (authz-engine.ts), validated once when the listener arrives. Returns a
 * value or an error string (the NACK's detail): anything whose meaning this sidecar cannot
 * honour — LOG or shadow rules, CEL conditions, matchers it does not implement — is an error, as
 * authorizing differently from what the control plane meant is worse than keeping the last config.
 */
import net from 'node:net';
import type { AuthzFacts, AuthzPredicate, RbacEngine, RbacPolicy } from './authz-engine';
import type { Parsed } from './cluster-from-xds';
import { inRange } from './filter-chain';

type Obj = Record<string, any>;

const F = 'type.googleapis.com/envoy.extensions.filters.';
export const HTTP_RBAC_TYPE = `${F}http.rbac.v3.RBAC`;
export const NETWORK_RBAC_TYPE = `${F}network.rbac.v3.RBAC`;

class Bad extends Error {}
const bad = (at: string, why: string): never => { throw new Bad(`${at}: ${why}`); };

/**
 * One RBAC filter's config → its engine; `undefined` when it has no `rules` (Envoy then enforces
 * nothing). `at` names the filter in errors.
 */
export function rbacEngineOf(config: Obj, at: string): Parsed<RbacEngine | undefined> {
  try {
    return { ok: true, value: engine(config, at) };
  } catch (err) {
    if (err instanceof Bad) return { ok: false, error: err.message };
    throw err;
  }
}

function engine(c: Obj, at: string): RbacEngine | undefined {
  if (c.shadow_rules) bad(`${at}.shadow_rules`, 'shadow (dry-run) rules are not supported by this sidecar version');
  if (c.matcher || c.shadow_matcher) bad(`${at}.matcher`, 'the matcher API is not supported by this sidecar version (use rules)');
  const rules = c.rules;
  if (!rules) return undefined;
  const action = rules.action ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') bad(`${at}.rules.action`, `${action} is not supported by this sidecar version (ALLOW or DENY)`);
  if (rules.audit_logging_options) bad(`${at}.rules.audit_logging_options`, 'not supported by this sidecar version');
  const policies: RbacPolicy[] = Object.keys(rules.policies ?? {}).sort().map((name) => {
    const p: Obj = rules.policies[name];
    const pat = `${at}.rules.policies[${JSON.stringify(name)}]`;
    if (p.condition || p.checked_condition) bad(pat, 'CEL conditions are not supported by this sidecar version');
    const permissions: Obj[] = p.permissions ?? [];
    const principals: Obj[] = p.principals ?? [];
    if (!permissions.length) bad(`${pat}.permissions`, 'at least one permission is required');
    if (!principals.length) bad(`${pat}.principals`, 'at least one principal is required');
    return {
      name,
      permissions: anyOf(permissions.map((x, i) => permission(x, `${pat}.permissions[${i}]`))),
      principals: anyOf(principals.map((x, i) => principal(x, `${pat}.principals[${i}]`))),
    };
  });
  return { action, policies };
}

const anyOf = (list: AuthzPredicate[]): AuthzPredicate => (list.length === 1 ? list[0]! : (f) => list.some((p) => p(f)));
const allOf = (list: AuthzPredicate[]): AuthzPredicate => (list.length === 1 ? list[0]! : (f) => list.every((p) => p(f)));
const TRUE: AuthzPredicate = () => true;

function permission(p: Obj, at: string): AuthzPredicate {
  if (p.any) return TRUE;
  if (p.and_rules) return allOf(list(p.and_rules.rules, `${at}.and_rules.rules`).map((x, i) => permission(x, `${at}.and_rules.rules[${i}]`)));
  if (p.or_rules) return anyOf(list(p.or_rules.rules, `${at}.or_rules.rules`).map((x, i) => permission(x, `${at}.or_rules.rules[${i}]`)));
  if (p.not_rule) {
    const inner = permission(p.not_rule, `${at}.not_rule`);
    return (f) => !inner(f);
  }
  if (p.header) return header(p.header, `${at}.header`);
  if (p.url_path) {
    if (!p.url_path.path) bad(`${at}.url_path`, 'path is required');
    const m = stringMatcher(p.url_path.path, `${at}.url_path.path`);
    // On TCP there is no path: the permission cannot match (Envoy's network RBAC does the same).
    return (f) => f.http !== undefined && m(f.http.path);
  }
  if (p.destination_port !== undefined) {
    const port = Number(p.destination_port);
    return (f) => f.destinationPort === port;
  }
  if (p.destination_port_range) {
    const start = Number(p.destination_port_range.start ?? 0);
    const end = Number(p.destination_port_range.end ?? 0);
    return (f) => f.destinationPort !== undefined && f.destinationPort >= start && f.destinationPort < end;
  }
  return bad(at, `permission ${fieldsOf(p, 'rule')} is not supported by this sidecar version (any, and_rules, or_rules, not_rule, header, url_path, destination_port, destination_port_range)`);
}

function principal(p: Obj, at: string): AuthzPredicate {
  if (p.any) return TRUE;
  if (p.and_ids) return allOf(list(p.and_ids.ids, `${at}.and_ids.ids`).map((x, i) => principal(x, `${at}.and_ids.ids[${i}]`)));
  if (p.or_ids) return anyOf(list(p.or_ids.ids, `${at}.or_ids.ids`).map((x, i) => principal(x, `${at}.or_ids.ids[${i}]`)));
  if (p.not_id) {
    const inner = principal(p.not_id, `${at}.not_id`);
    return (f) => !inner(f);
  }
  if (p.authenticated) {
    // No principal_name: any peer with a verified certificate (Envoy's meaning).
    if (!p.authenticated.principal_name) return (f) => f.principal !== undefined;
    const m = stringMatcher(p.authenticated.principal_name, `${at}.authenticated.principal_name`);
    return (f) => f.principal !== undefined && m(f.principal);
  }
  const cidr = p.direct_remote_ip ?? p.source_ip;
  if (cidr) {
    const address = String(cidr.address_prefix ?? '');
    const v = net.isIP(address);
    const len = cidr.prefix_len ? Number(cidr.prefix_len.value ?? 0) : v === 6 ? 128 : 32;
    if (v === 0 || len < 0 || len > (v === 6 ? 128 : 32)) bad(`${at}.direct_remote_ip`, `${address}/${len} is not a CIDR range`);
    return (f) => f.sourceAddress !== undefined && inRange(f.sourceAddress, address, len);
  }
  if (p.header) return header(p.header, `${at}.header`);
  if (p.url_path) return permission({ url_path: p.url_path }, at);
  return bad(at, `principal ${fieldsOf(p, 'identifier')} is not supported by this sidecar version (any, and_ids, or_ids, not_id, authenticated, direct_remote_ip, header, url_path)`);
}

/** The set fields of a decoded oneof message, without the oneof's own virtual name. */
function fieldsOf(o: Obj, oneof: string): string {
  return Object.keys(o).filter((k) => k !== oneof).join(', ') || '(empty)';
}

function list(v: unknown, at: string): Obj[] {
  if (!Array.isArray(v) || v.length === 0) bad(at, 'at least one entry is required');
  return v as Obj[];
}

/** A header as this sidecar sees it: pseudo-headers from the normalized target; undefined when absent (or TCP). */
function headerValue(f: AuthzFacts, name: string): string | undefined {
  const h = f.http;
  if (!h) return undefined;
  switch (name) {
    case ':method': return h.method;
    case ':authority':
    case 'host': return h.host;
    case ':path': return h.pathWithQuery;
    case ':scheme': return 'http';
  }
  const v = h.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function header(h: Obj, at: string): AuthzPredicate {
  const name = String(h.name ?? '').toLowerCase();
  if (!name) bad(at, 'name is required');
  if (h.treat_missing_header_as_empty) bad(at, 'treat_missing_header_as_empty is not supported by this sidecar version');
  const invert = Boolean(h.invert_match);
  let test: (v: string | undefined) => boolean;
  if (h.present_match !== undefined) {
    const want = Boolean(h.present_match);
    test = (v) => (v !== undefined) === want;
  } else {
    const sm = h.string_match ?? (h.exact_match !== undefined ? { exact: h.exact_match }
      : h.prefix_match !== undefined ? { prefix: h.prefix_match }
        : h.suffix_match !== undefined ? { suffix: h.suffix_match }
          : h.contains_match !== undefined ? { contains: h.contains_match }
            : h.safe_regex_match ? { safe_regex: h.safe_regex_match } : undefined);
    if (!sm) return bad(at, 'a string_match or present_match is required');
    const m = stringMatcher(sm, `${at}.string_match`);
    test = (v) => v !== undefined && m(v);
  }
  // Envoy: an inverted match of a missing header matches (except present_match, handled above).
  return (f) => test(headerValue(f, name)) !== invert;
}

/** Envoy's `StringMatcher`: exact, prefix, suffix, contains or safe_regex (full match), `ignore_case`. */
export function stringMatcher(m: Obj, at: string): (v: string) => boolean {
  const ic = Boolean(m.ignore_case);
  const norm = ic ? (s: string): string => s.toLowerCase() : (s: string): string => s;
  if (m.exact !== undefined) {
    const want = norm(String(m.exact));
    return (v) => norm(v) === want;
  }
  if (m.prefix !== undefined) {
    const want = norm(String(m.prefix));
    return (v) => norm(v).startsWith(want);
  }
  if (m.suffix !== undefined) {
    const want = norm(String(m.suffix));
    return (v) => norm(v).endsWith(want);
  }
  if (m.contains !== undefined) {
    const want = norm(String(m.contains));
    return (v) => norm(v).includes(want);
  }
  if (m.safe_regex) {
    const source = m.safe_regex.regex;
    if (typeof source !== 'string' || source === '') bad(`${at}.safe_regex`, 'regex is required');
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${source})$`, 'u');
    } catch (err) {
      return bad(`${at}.safe_regex`, `regex ${JSON.stringify(source)} is not supported by this sidecar: ${(err as Error).message}`);
    }
    return (v) => re.test(v);
  }
  return bad(at, 'one of exact, prefix, suffix, contains or safe_regex is required');
}
