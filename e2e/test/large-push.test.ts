/**
 * A sidecar whose first push is larger than gRPC's default 4 MiB message limit still gets its
 * config: 8,000 Services in scope make one Cluster response of about 4.7 MB (bench/kube-scale.mjs
 * found 10,000 Services, 5.8 MB, leaving a new sidecar reconnecting forever). Local mode, real
 * sockets: the control plane on 127.0.53.20, the sidecar on 127.0.53.21.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { controlPlane, getJson, podYaml, sidecar, tempDir } from './mesh';

const SERVICES = 8000;

test('a sidecar accepts a first Cluster push over 4 MiB (8,000 Services) and holds every cluster', async () => {
  const dir = tempDir('large-push');
  const docs = [podYaml('big', { name: 'client', ip: '127.0.53.21', labels: { app: 'client' } })];
  for (let i = 0; i < SERVICES; i++) {
    docs.push(`apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}, namespace: big}\nspec: {selector: {app: none-${i}}, ports: [{name: http, port: 80, targetPort: 8080}]}\n`);
  }
  fs.writeFileSync(path.join(dir, 'all.yaml'), docs.join('---\n'));
  const cp = await controlPlane(dir, '127.0.53.20');
  try {
    const side = await sidecar('127.0.53.20', 'big', { name: 'client', ip: '127.0.53.21', labels: { app: 'client' } });
    try {
      const dump = await getJson('http://127.0.53.21:15000/config_dump');
      const clusters = Object.keys(dump.config.clusters).filter((n) => n.includes('|svc-'));
      assert.equal(clusters.length, SERVICES);
    } finally {
      await side.close();
    }
  } finally {
    await cp.close();
  }
});
