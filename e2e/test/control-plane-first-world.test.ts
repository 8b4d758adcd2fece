/**
 * A control plane serves xDS only once its first world is built: a sidecar that connects at once
 * (one reconnecting to a restarted control plane does) is sent the routes, never the empty world
 * of the debounce window. The debounce here is long enough that a sidecar sent the empty world
 * would answer 404 for the whole test.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ShopMesh } from './mesh';

const mesh = new ShopMesh(12, 'first-world');

after(() => mesh.close());

test('a sidecar connecting before the first debounce ends is sent the whole mesh, not an empty one', async () => {
  await mesh.start([100, 0], { debounceMs: 60_000 });
  const r = await mesh.client.get(ShopMesh.HOST);
  assert.deepEqual(r, { status: 200, body: mesh.v1.name });
});
