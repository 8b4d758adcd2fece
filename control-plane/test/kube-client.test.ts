import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { KubeApiError, KubeClient } from '../src/kube-client';

/**
 * A connection that goes silent (a dead path, no reset): the server answers the watch's headers
 * and then sends nothing. The real API server is exercised in e2e/test/kube-*.test.ts; this is a
 * network fault no API server produces on request.
 */
test('a watch that receives nothing for idleMs fails, so a silently dead connection is noticed', async () => {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kube-client-'));
  const kubeconfig = path.join(dir, 'kubeconfig');
  const port = (server.address() as { port: number }).port;
  fs.writeFileSync(kubeconfig, JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'c', cluster: { server: `http://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }], users: [{ name: 'u', user: {} }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
  }));
  const client = await KubeClient.load({ kubeconfig }).catch((e: unknown) => {
    server.close();
    throw e;
  });
  try {
    const started = Date.now();
    await assert.rejects(client.watch('/api/v1/pods', {}, () => undefined, new AbortController().signal, 300), (e: unknown) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.reason, 'Idle');
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 3000, `failed after ${took} ms`);
  } finally {
    client.close();
    server.closeAllConnections();
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
