/**
 * curl, a client we did not write, through a sidecar's outbound listener: routed by Host, and
 * used as an HTTP proxy (absolute-form requests), which is how an app in local mode can send
 * through the mesh with nothing but `http_proxy` set.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { ShopMesh } from './mesh';

const mesh = new ShopMesh(8, 'curl');
const curlMissing = ((): string | false => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'curl is not installed (.ci/run installs it)';
  }
})();
if (curlMissing) console.log(`# skipping curl tests: ${curlMissing}`);

function curl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '5', ...args], (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
  });
}

before(async () => {
  if (!curlMissing) await mesh.start([0, 100]);
});
after(() => mesh.close());

test('curl with a Host header reaches the Service through the sidecar', { skip: curlMissing }, async () => {
  const r = await curl('-H', 'Host: backend.shop.svc.cluster.local', '-w', ' %{http_code}', `http://${mesh.frontend.ip}:15001/anything?x=1`);
  assert.equal(r.stdout, 'backend-v2 200', r.stderr);
});

test('curl using the sidecar as its HTTP proxy reaches the Service by its short name', { skip: curlMissing }, async () => {
  const r = await curl('-x', `http://${mesh.frontend.ip}:15001`, '-w', ' %{http_code}', 'http://backend/');
  assert.equal(r.stdout, 'backend-v2 200', r.stderr);
});

test('curl to an unknown host gets a 404 that names it', { skip: curlMissing }, async () => {
  const r = await curl('-H', 'Host: nothing.shop.svc.cluster.local', '-w', ' %{http_code}', `http://${mesh.frontend.ip}:15001/`);
  assert.match(r.stdout, /no route for host nothing\.shop\.svc\.cluster\.local.* 404$/s);
});
