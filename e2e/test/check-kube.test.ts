/**
 * `weft check --pre` against a real API server: a fresh cluster passes (native sidecars, the
 * admission API, permissions, tokens with audience weft issued and reviewed); a caller without
 * the permissions fails, naming what it may not create; an existing install is reported.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { tempDir } from './mesh';
import { installCrds, startKubeCluster, writeTokenKubeconfig, type KubeCluster } from './kube-cluster';
import { WEFT } from './netns-pods';

let cluster: KubeCluster | undefined;
let skip: string | undefined;

function check(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [WEFT, 'check', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

before(async () => {
  const c = await startKubeCluster();
  if (typeof c === 'string') skip = c;
  else cluster = c;
});

after(async () => {
  await cluster?.close();
});

test('weft check --pre: a fresh cluster passes every pre-install check', (t) => {
  if (skip) return t.skip(skip);
  const r = check('--pre', '--kubeconfig', cluster!.kubeconfig);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^√ reachable at https:\/\/127\.0\.0\.1:\d+: Kubernetes v1\.37\.\d+$/m);
  assert.match(r.out, /^√ native sidecars supported/m);
  assert.match(r.out, /^√ admission webhooks API served/m);
  assert.match(r.out, /^√ you may create everything the chart installs/m);
  assert.match(r.out, /^√ tokens with audience weft are issued and accepted \(TokenReview: system:serviceaccount:default:default\)$/m);
  assert.match(r.out, /^√ no Weft CRDs yet: a fresh install$/m);
});

test('weft check --pre: a user who may not install fails, and what it may not create is named', async (t) => {
  if (skip) return t.skip(skip);
  const token = await cluster!.kubectl(['create', 'token', 'default', '-n', 'default']);
  const kubeconfig = writeTokenKubeconfig(cluster!, token.stdout.trim(), path.join(tempDir('check-kube'), 'kubeconfig'));
  const r = check('--pre', '--kubeconfig', kubeconfig);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /^× you may not create customresourcedefinitions\.apiextensions\.k8s\.io, create clusterroles\.rbac\.authorization\.k8s\.io/m);
  assert.match(r.out, /Status check results are ×/);
});

test('weft check --pre: Weft already installed is a warning pointing at helm upgrade', async (t) => {
  if (skip) return t.skip(skip);
  await installCrds(cluster!);
  const r = check('--pre', '--kubeconfig', cluster!.kubeconfig);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^‼ Weft's CRDs are already installed \(trafficpolicies, peerauthentications, authorizationpolicies\)$/m);
  assert.match(r.out, /helm upgrade/);
});
