import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { parseKubeObject, type AuthorizationPolicy } from '../src/index';

function parse(spec: string): AuthorizationPolicy | string[] {
  const out = parseKubeObject(parseYaml(`apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: shop}\nspec:\n${spec}`));
  if (out.kind === 'object') return out.value as AuthorizationPolicy;
  assert.equal(out.kind, 'invalid', JSON.stringify(out));
  return (out as { errors: string[] }).errors;
}
const valid = (spec: string): AuthorizationPolicy => {
  const p = parse(spec);
  assert.ok(!Array.isArray(p), `expected valid: ${JSON.stringify(p)}`);
  return p;
};
const invalid = (spec: string): string => {
  const p = parse(spec);
  assert.ok(Array.isArray(p), `expected errors: ${JSON.stringify(p)}`);
  return p.join('\n');
};

test('SPEC.md example parses: selector, action, flat from/to entries, integer ports', () => {
  const p = valid(`
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{principals: ["spiffe://cluster.local/ns/shop/sa/frontend"], namespaces: [shop]}]
    to: [{paths: ["/api/*"], methods: [GET], ports: [9080]}]`);
  assert.deepEqual(p.selector, { app: 'reviews' });
  assert.equal(p.action, 'ALLOW');
  assert.deepEqual(p.rules, [{
    from: [{ principals: ['spiffe://cluster.local/ns/shop/sa/frontend'], namespaces: ['shop'] }],
    to: [{ paths: ['/api/*'], methods: ['GET'], ports: [9080] }],
  }]);
});

test("Istio's wrapped form (source/operation), string ports and the scheme-less principal are accepted as the same policy", () => {
  const p = valid(`
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/frontend"], notNamespaces: [test]}}]
    to: [{operation: {notPaths: ["/admin*"], ports: ["9080"]}}]`);
  assert.equal(p.action, 'ALLOW'); // the default
  assert.deepEqual(p.rules[0], { from: [{ principals: ['cluster.local/ns/shop/sa/frontend'], notNamespaces: ['test'] }], to: [{ notPaths: ['/admin*'], ports: [9080] }] });
});

test("empty-rules semantics are kept as Istio's: no rules and rules: [] match nothing; a rule {} matches everything", () => {
  assert.deepEqual(valid('  action: ALLOW').rules, []);
  assert.deepEqual(valid('  action: DENY\n  rules: []').rules, []);
  assert.deepEqual(valid('  rules: [{}]').rules, [{}]);
  assert.equal(valid('  {}').selector, undefined);
});

test('invalid policies are refused with the field path and a reason', () => {
  const table: [string, RegExp][] = [
    ['  action: AUDIT', /spec.action: AUDIT is not supported/],
    ['  action: allow', /spec.action: must be one of ALLOW, DENY/],
    ['  rules: [{to: [{ports: [0]}]}]', /spec.rules\[0\].to\[0\].ports\[0\]: must be a port number between 1 and 65535/],
    ['  rules: [{to: [{ports: ["http"]}]}]', /ports\[0\]: must be a port number/],
    ['  rules: [{to: [{paths: ["api/*"]}]}]', /paths\[0\]: must start with \//],
    ['  rules: [{to: [{paths: ["/a/../b"]}]}]', /must be a normalized path/],
    ['  rules: [{to: [{paths: ["/a//b"]}]}]', /must be a normalized path/],
    ['  rules: [{to: [{paths: ["/admin%2Fx"]}]}]', /%2F never appears in a normalized path/],
    ['  rules: [{to: [{paths: ["/a?x=1"]}]}]', /without the query string/],
    ['  rules: [{to: [{paths: ["/a/*/b"]}]}]', /one \* only/],
    ['  rules: [{to: [{methods: [get]}]}]', /methods\[0\]: must be an HTTP method in upper case/],
    ['  rules: [{to: [{paths: []}]}]', /paths: must list at least one value/],
    ['  rules: [{from: [{}]}]', /spec.rules\[0\].from\[0\]: must set at least one of principals/],
    ['  rules: [{to: [{operation: {}}]}]', /to\[0\].operation: must set at least one of hosts/],
    ['  rules: [{from: [{source: {namespaces: [a]}, principals: [b]}]}]', /either source/],
    ['  rules: [{from: [{requestPrincipals: ["*"]}]}]', /request principals \(JWT\) are not supported/],
    ['  rules: [{when: [{key: request.auth.claims, values: [x]}]}]', /when: conditions \(when\) are not supported/],
    ['  rules: [{from: [{ipBlocks: ["10.0.0.0/33"]}]}]', /prefix length must be between 0 and 32/],
    ['  rules: [{from: [{namespaces: ["Shop"]}]}]', /must be a namespace/],
    ['  rules: [{to: [{pathz: ["/"]}]}]', /pathz: unknown field/],
    ['  selector: {app: x}', /spec.selector.app: unknown field/],
    ['  provider: {name: ext}', /CUSTOM authorization providers are not supported/],
  ];
  for (const [spec, want] of table) assert.match(invalid(spec), want, spec);
});

test('prefix, suffix and presence values are accepted where Istio accepts them', () => {
  const p = valid(`
  rules:
  - from: [{principals: ["*", "cluster.local/ns/shop/*", "*/sa/frontend"], namespaces: ["shop-*", "*"]}]
    to: [{paths: ["*", "*.css", "/static/*"], methods: ["*"], hosts: ["*.Example.com", "api.example.com:8080"]}]`);
  assert.deepEqual(p.rules[0]!.to![0]!.hosts, ['*.example.com', 'api.example.com:8080']);
});

test('AuthorizationPolicy and PeerAuthentication are parsed, not ignored', () => {
  for (const kind of ['AuthorizationPolicy', 'PeerAuthentication']) {
    const out = parseKubeObject({ apiVersion: 'weft.dev/v1alpha1', kind, metadata: { name: 'x', namespace: 'shop' }, spec: {} });
    assert.equal(out.kind, 'object', `${kind}: ${JSON.stringify(out)}`);
  }
});
