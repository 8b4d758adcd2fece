import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CRD_KINDS, crdDocuments, crdFileName } from '../src/crd-define';
import { CRD_DIRS, CRD_DOC, REPO_ROOT, staleCrdFiles } from '../src/crd-gen';

test('the checked-in CRDs in manifests/crds and charts/weft/crds, and the docs\' schema tables, are what `npm run gen:crds` writes', () => {
  const stale = staleCrdFiles();
  assert.deepEqual(stale, [], `out of date: ${stale.join(', ')}; regenerate with: npm run gen:crds`);
  for (const k of CRD_KINDS) {
    const [a, b] = CRD_DIRS.map((d) => readFileSync(join(REPO_ROOT, d, crdFileName(k)), 'utf8'));
    assert.equal(a, b, `${crdFileName(k)} differs between ${CRD_DIRS.join(' and ')}`);
  }
});

test('a hand-edited or missing CRD file, or a hand-edited schema table in the docs, is reported as stale, naming it', () => {
  const root = mkdtempSync(join(tmpdir(), 'weft-crds-'));
  try {
    for (const d of [...CRD_DIRS, CRD_DOC]) cpSync(join(REPO_ROOT, d), join(root, d), { recursive: true });
    assert.deepEqual(staleCrdFiles(root), []);
    const doc = join(root, CRD_DOC);
    writeFileSync(doc, readFileSync(doc, 'utf8').replace('| `spec.routes[].timeout` | string | The whole request', '| `spec.routes[].timeout` | string | Each try'));
    const edited = join(root, 'charts/weft/crds', 'weft.dev_trafficpolicies.yaml');
    writeFileSync(edited, readFileSync(edited, 'utf8').replace('maxItems: 64', 'maxItems: 65'));
    rmSync(join(root, 'manifests/crds', 'weft.dev_authorizationpolicies.yaml'));
    assert.deepEqual(staleCrdFiles(root).sort(), [
      'charts/weft/crds/weft.dev_trafficpolicies.yaml',
      'docs/configuration.md',
      'manifests/crds/weft.dev_authorizationpolicies.yaml',
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('each CRD carries the contract: group, version, scope, names, status subresource, printer columns, conditions keyed by type', () => {
  const docs = crdDocuments();
  assert.deepEqual(docs.map((d) => d.name), ['weft.dev_trafficpolicies.yaml', 'weft.dev_peerauthentications.yaml', 'weft.dev_authorizationpolicies.yaml']);
  const short: Record<string, string> = { TrafficPolicy: 'tp', PeerAuthentication: 'pa', AuthorizationPolicy: 'ap' };
  for (const d of docs) {
    const crd = parse(d.text);
    assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
    assert.equal(crd.spec.group, 'weft.dev');
    assert.equal(crd.spec.scope, 'Namespaced');
    assert.equal(crd.metadata.name, `${crd.spec.names.plural}.weft.dev`);
    assert.deepEqual(crd.spec.names.shortNames, [short[crd.spec.names.kind]]);
    assert.equal(crd.spec.names.singular, crd.spec.names.kind.toLowerCase());
    const [v] = crd.spec.versions;
    assert.equal(crd.spec.versions.length, 1);
    assert.equal(v.name, 'v1alpha1');
    assert.ok(v.served && v.storage);
    assert.deepEqual(v.subresources, { status: {} });
    const cols = v.additionalPrinterColumns.map((c: { name: string }) => c.name);
    assert.equal(cols[0], 'Target');
    assert.ok(cols.includes('Accepted') && cols.at(-1) === 'Age', cols.join(','));
    const conditions = v.schema.openAPIV3Schema.properties.status.properties.conditions;
    assert.equal(conditions['x-kubernetes-list-type'], 'map');
    assert.deepEqual(conditions['x-kubernetes-list-map-keys'], ['type']);
    assert.deepEqual(Object.keys(conditions.items.properties), ['type', 'status', 'reason', 'message', 'lastTransitionTime', 'observedGeneration']);
  }
});

test('the generated CRDs and the invalid-policy fixtures read the same as YAML 1.1 (kubectl) and YAML 1.2', () => {
  const fixtures = join(REPO_ROOT, 'api', 'test', 'fixtures', 'crd-invalid');
  const texts = [
    ...crdDocuments().map((d) => ({ name: d.name, text: d.text })),
    ...readdirSync(fixtures).map((name) => ({ name, text: readFileSync(join(fixtures, name), 'utf8') })),
  ];
  for (const { name, text } of texts) assert.deepEqual(parse(text, { version: '1.1' }), parse(text), name);
  assert.notDeepEqual(parse('a: y', { version: '1.1' }), parse('a: y'), 'YAML 1.1 reads y as a boolean');
});
