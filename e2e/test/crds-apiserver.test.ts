/**
 * The weft.dev CRDs in a real kube-apiserver (the test cluster of e2e/cluster, through
 * ./kube-cluster.ts): they install, every example of the repository is accepted, every malformed
 * policy of api/test/fixtures/crd-invalid/ is refused by the API server itself (no webhook runs)
 * with its expected message, and status only changes through the status subresource.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { CRD_GROUP, CRD_KINDS, YAML_OPTIONS } from '@weft/api';
import { FULL_AUTHORIZATION_POLICY, FULL_PEER_AUTHENTICATION, FULL_TRAFFIC_POLICY, invalidFixtures, weftExamples } from '@weft/api/dist/test/crd-samples';
import { installCrds, startKubeCluster } from './kube-cluster';

const ROOT = resolve(__dirname, '../../..');

const yaml = (obj: unknown): string => stringify(obj, YAML_OPTIONS);

test('kube-apiserver enforces the weft.dev CRDs: examples accepted, malformed policies refused with their messages, status only through its subresource', async (t) => {
  const cluster = await startKubeCluster();
  if (typeof cluster === 'string') return t.skip(cluster);
  const ok = async (args: string[], input?: string): Promise<string> => {
    const r = await cluster.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  try {
    await t.test('the generated CRDs install and become Established', async () => {
      await installCrds(cluster);
      for (const k of CRD_KINDS) assert.match(await ok(['get', 'crd', `${k.plural}.${CRD_GROUP}`, '-o', 'name']), new RegExp(`${k.plural}\\.${CRD_GROUP}`));
      for (const ns of ['shop', 'demo', 'crd-invalid']) await ok(['create', 'namespace', ns]);
    });

    await t.test('every example of manifests/ and docs/, and the fully-populated samples, is accepted', async () => {
      const all = [...weftExamples(ROOT).map((e) => e.obj), FULL_TRAFFIC_POLICY, FULL_PEER_AUTHENTICATION, FULL_AUTHORIZATION_POLICY];
      for (const obj of all) {
        const { status: _status, ...body } = obj as Record<string, unknown>;
        const ns = (body.metadata as { namespace?: string }).namespace ?? 'default';
        await ok(['apply', '-n', ns, '-f', '-'], yaml({ ...body, metadata: { ...(body.metadata as object), name: `ex-${all.indexOf(obj)}` } }));
      }
    });

    await t.test('each malformed policy is refused by the API server with its expected message, and nothing is stored', async () => {
      const failures: string[] = [];
      for (const f of invalidFixtures(ROOT)) {
        const r = await cluster.kubectl(['apply', '-n', 'crd-invalid', '-f', f.path]);
        if (r.code === 0) failures.push(`${f.file}: accepted`);
        else if (!r.stderr.includes(f.expect)) failures.push(`${f.file}: expected "${f.expect}" in: ${r.stderr.trim()}`);
      }
      assert.deepEqual(failures, []);
      for (const k of CRD_KINDS) {
        assert.equal((await ok(['get', `${k.plural}.${CRD_GROUP}`, '-n', 'crd-invalid', '-o', 'name'])).trim(), '', `${k.kind} stored`);
      }
    });

    await t.test('status changes only through the status subresource; kubectl get shows Target and Accepted', async () => {
      const tp = { apiVersion: 'weft.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'status-demo', namespace: 'shop' }, spec: { targetRef: { kind: 'Service', name: 'reviews' } } };
      await ok(['apply', '-f', '-'], yaml(tp));
      const condition = (status: string) => ({ type: 'Accepted', status, reason: status === 'True' ? 'Accepted' : 'TargetNotFound', message: 'm', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 });
      await ok(['patch', 'tp', 'status-demo', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: [condition('True')] } })]);
      // A status in the main resource is ignored by the API server.
      await ok(['apply', '-f', '-'], yaml({ ...tp, status: { conditions: [condition('False')] } }));
      const table = await ok(['get', 'tp', 'status-demo', '-n', 'shop']);
      const [head, row] = table.trim().split('\n').map((l) => l.trim().split(/\s+/));
      assert.deepEqual(head, ['NAME', 'TARGET', 'ACCEPTED', 'AGE'], table);
      assert.deepEqual(row.slice(0, 3), ['status-demo', 'reviews', 'True'], table);
      const bad = await cluster.kubectl(['patch', 'tp', 'status-demo', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: [{ type: 'Accepted', status: 'Maybe' }] } })]);
      assert.notEqual(bad.code, 0, 'a condition status outside True/False/Unknown is refused');
      assert.match(bad.stderr, /Unsupported value: "Maybe"/);
    });
  } finally {
    await cluster.close();
  }
});
