import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointKey, UpstreamPool } from '../src/upstream-pool';
import { send, sleep, startUpstream } from './fixtures';

test('the pool hands out one agent per address:port and keeps it across calls', () => {
  const pool = new UpstreamPool();
  const a = pool.agentFor({ address: '10.0.0.1', port: 80 });
  assert.equal(pool.agentFor({ address: '10.0.0.1', port: 80 }), a);
  assert.notEqual(pool.agentFor({ address: '10.0.0.1', port: 81 }), a);
  assert.deepEqual(pool.keys(), ['10.0.0.1:80', '10.0.0.1:81']);
  assert.equal(endpointKey({ address: 'fd00::1', port: 80 }), '[fd00::1]:80');
  pool.destroy();
  pool.destroy();
});

test('retain() closes idle connections of endpoints that are gone and keeps the rest', async (t) => {
  const keep = await startUpstream('keep');
  const drop = await startUpstream('drop');
  const pool = new UpstreamPool();
  t.after(async () => {
    pool.destroy();
    await Promise.all([keep.close(), drop.close()]);
  });
  const ka = pool.agentFor(keep.endpoint());
  const da = pool.agentFor(drop.endpoint());
  await send(keep.port, { agent: ka });
  await send(drop.port, { agent: da });
  pool.retain([endpointKey(keep.endpoint())]);
  await sleep(20);
  assert.equal(drop.closedConnections, 1);
  assert.equal(keep.closedConnections, 0);
  assert.deepEqual(pool.keys(), [endpointKey(keep.endpoint())]);
  await send(keep.port, { agent: pool.agentFor(keep.endpoint()) });
  assert.equal(keep.connections, 1);
});

test('close() lets an in-flight request finish and then closes its connection', async (t) => {
  const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('done'), 100));
  const pool = new UpstreamPool();
  t.after(async () => {
    pool.destroy();
    await slow.close();
  });
  const inFlight = send(slow.port, { agent: pool.agentFor(slow.endpoint()) });
  await sleep(30);
  pool.close();
  pool.close();
  assert.equal((await inFlight).body, 'done');
  await sleep(20);
  assert.equal(slow.closedConnections, 1);
  assert.deepEqual(pool.keys(), []);
});
