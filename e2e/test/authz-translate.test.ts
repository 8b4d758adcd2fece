/**
 * AuthorizationPolicy from YAML to a decision: parsed by api/, translated by the control plane,
 * encoded as it is sent, decoded through the sidecar's proto subset, validated by the sidecar's
 * buildProxyConfig and evaluated by its RBAC engine. One table of requests per policy set pins
 * Istio's semantics across the whole pipeline (the socket-level matrix is in
 * sidecar/test/authz.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { parseKubeObject, parseNodeId, sidecarNodeId, sidecarXdsRoot, TypeUrl, unpackAny, type KubeObject } from '@weft/api';
import { buildWorld, encodeSnapshot, translate } from '@weft/control-plane';
import { authorize, buildProxyConfig, type Authz, type AuthzFacts } from '@weft/sidecar';

const BASE = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {selector: {app: reviews}, ports: [{name: http, port: 80, targetPort: 9080}, {name: tcp-db, port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-1, namespace: shop, labels: {app: reviews}}
status: {podIP: 127.0.43.21}
`;

function objects(yaml: string): KubeObject[] {
  return parseAllDocuments(BASE + '---\n' + yaml).filter((d) => d.toJS() !== null).map((d) => {
    const out = parseKubeObject(d.toJS());
    assert.equal(out.kind, 'object', JSON.stringify(out));
    return (out as { value: KubeObject }).value;
  });
}

/** The reviews pod's inbound authorization, HTTP and TCP, as its sidecar would hold it. */
function inboundAuthz(yaml: string): { http: Authz; tcp: Authz } {
  const snap = encodeSnapshot(translate(buildWorld(objects(yaml), new Set(), 1), parseNodeId(sidecarNodeId('127.0.43.21', 'reviews-1', 'shop'))), 1);
  const listeners = [...snap.types.get(TypeUrl.Listener)!.resources.values()].map((r) => unpackAny(r.any, sidecarXdsRoot()));
  const built = buildProxyConfig({ listeners, routes: [], clusters: [], assignments: [] });
  assert.ok(built.ok, JSON.stringify(built));
  const inbound = built.config.listeners.get('virtualInbound')!;
  const tcpChain = inbound.connections!.chains.find((c) => c.match.destinationPort === 5432)!;
  return { http: inbound.authz ?? [], tcp: tcpChain.filter.kind === 'tcp' ? tcpChain.filter.authz ?? [] : [] };
}

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const req = (method: string, path: string, opts: { principal?: string; port?: number; host?: string } = {}): AuthzFacts => ({
  principal: opts.principal,
  sourceAddress: '127.0.43.11',
  destinationPort: opts.port ?? 9080,
  http: { method, path, pathWithQuery: path, host: opts.host ?? 'reviews', headers: {} },
});
const tcp = (principal?: string): AuthzFacts => ({ principal, sourceAddress: '127.0.43.11', destinationPort: 5432 });
const decide = (authz: Authz, f: AuthzFacts): string => {
  const d = authorize(authz, f);
  return d.allowed ? 'allow' : `deny ${d.action} ${d.policy ?? 'none'}`;
};

const SPEC_POLICY = `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews-readers, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{principals: ["spiffe://cluster.local/ns/shop/sa/frontend"], namespaces: [shop]}]
    to: [{paths: ["/api/*"], methods: [GET], ports: [9080]}]
`;

test("SPEC.md's policy: only the frontend's GET /api/* on 9080 is allowed; every other request, and all TCP, is denied", () => {
  const { http, tcp: t } = inboundAuthz(SPEC_POLICY);
  const table: [AuthzFacts, string][] = [
    [req('GET', '/api/books', { principal: FRONTEND }), 'allow'],
    [req('POST', '/api/books', { principal: FRONTEND }), 'deny ALLOW none'],
    [req('GET', '/admin', { principal: FRONTEND }), 'deny ALLOW none'],
    [req('GET', '/api/books', { principal: FRONTEND, port: 9090 }), 'deny ALLOW none'],
    [req('GET', '/api/books', { principal: 'spiffe://cluster.local/ns/test/sa/frontend' }), 'deny ALLOW none'],
    [req('GET', '/api/books'), 'deny ALLOW none'], // plaintext: no principal
  ];
  for (const [f, want] of table) assert.equal(decide(http, f), want, JSON.stringify(f));
  // The rule needs methods and paths, which TCP cannot carry: dropped for TCP, so TCP is denied.
  assert.equal(decide(t, tcp(FRONTEND)), 'deny ALLOW none');
});

test("Istio's form, DENY over ALLOW, deny-all and allow-all, namespaces, mesh-wide root policies", () => {
  const { http, tcp: t } = inboundAuthz(`
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: allow-shop, namespace: shop}
spec:
  rules:
  - from: [{source: {namespaces: [shop]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: shop}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin, /admin/*], methods: [GET]}}]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: mesh-deny-test, namespace: weft-system}
spec:
  action: DENY
  rules:
  - from: [{principals: ["cluster.local/ns/test/*"]}]
`);
  const table: [AuthzFacts, string][] = [
    [req('GET', '/x', { principal: FRONTEND }), 'allow'],
    [req('GET', '/admin/x', { principal: FRONTEND }), 'deny DENY ns[shop]-policy[deny-admin]-rule[0]'],
    [req('GET', '/x', { principal: 'spiffe://cluster.local/ns/test/sa/t' }), 'deny DENY ns[weft-system]-policy[mesh-deny-test]-rule[0]'],
    [req('GET', '/x', { principal: 'spiffe://cluster.local/ns/other/sa/t' }), 'deny ALLOW none'],
    [req('GET', '/x'), 'deny ALLOW none'],
  ];
  for (const [f, want] of table) assert.equal(decide(http, f), want, JSON.stringify(f));
  // TCP: the DENY rule on paths+methods loses them and denies every connection (Istio's choice).
  assert.equal(decide(t, tcp(FRONTEND)), 'deny DENY ns[shop]-policy[deny-admin]-rule[0]');

  const denyAll = inboundAuthz('apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: shop}\nspec: {}\n');
  assert.equal(decide(denyAll.http, req('GET', '/', { principal: FRONTEND })), 'deny ALLOW none');
  assert.equal(decide(denyAll.tcp, tcp(FRONTEND)), 'deny ALLOW none');
  const allowAll = inboundAuthz('apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: all, namespace: shop}\nspec: {rules: [{}]}\n');
  assert.equal(decide(allowAll.http, req('DELETE', '/anything')), 'allow');
  assert.equal(decide(allowAll.tcp, tcp()), 'allow');
  const denyNothing = inboundAuthz('apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: d, namespace: shop}\nspec: {action: DENY}\n');
  assert.equal(decide(denyNothing.http, req('GET', '/')), 'allow');
  const none = inboundAuthz('');
  assert.deepEqual([none.http, none.tcp], [[], []]);
});

test('values: prefix, suffix, presence, notX, hosts with ports and case', () => {
  const { http } = inboundAuthz(`
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: p, namespace: shop}
spec:
  rules:
  - to: [{paths: ["*.css"]}]
  - to: [{paths: ["/static/*"], notMethods: [DELETE]}]
  - from: [{principals: ["*"]}]
    to: [{hosts: ["API.example.com"]}]
`);
  const table: [AuthzFacts, string][] = [
    [req('GET', '/a/b.css'), 'allow'],
    [req('GET', '/static/x'), 'allow'],
    [req('DELETE', '/static/x'), 'deny ALLOW none'],
    [req('GET', '/x', { principal: FRONTEND, host: 'api.example.com:8443' }), 'allow'],
    [req('GET', '/x', { principal: FRONTEND, host: 'api.example.com.evil' }), 'deny ALLOW none'],
    [req('GET', '/x', { host: 'api.example.com' }), 'deny ALLOW none'], // "*" principals: any verified caller
  ];
  for (const [f, want] of table) assert.equal(decide(http, f), want, JSON.stringify(f));
});
