import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { silentLogger } from '@weft/api';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import { listener, proxyConfig, send, simpleConfig, sleep, startProxy, startUpstream } from './fixtures';

test('listen() rejects with a clear error when the port is taken', async (t) => {
  const taken = await startUpstream('squatter');
  t.after(() => taken.close());
  const l = new HttpProxyListener(listener('clash', { port: taken.port }), () => proxyConfig({}), { log: silentLogger, pool: new UpstreamPool() });
  await assert.rejects(l.listen(), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'LISTEN_FAILED');
    assert.match(err.message, new RegExp(`listener clash: cannot bind 127\\.0\\.0\\.1:${taken.port}: address already in use`));
    return true;
  });
  await l.close();
});

test('close() stops accepting at once, lets the in-flight request finish, and is idempotent', async (t) => {
  const up = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('finished'), 200));
  const proxy = await startProxy(simpleConfig('slow', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());

  const inFlight = send(proxy.port, { agent });
  await sleep(50);
  const closing = proxy.listener.close();
  assert.equal(proxy.listener.close(), proxy.listener.close());
  await assert.rejects(send(proxy.port), /ECONNREFUSED/);
  const r = await inFlight;
  assert.deepEqual([r.status, r.body, r.headers.connection], [200, 'finished', 'close']);
  await closing;
  proxy.listener.destroy();
});

test('softDrain(): the listener keeps accepting, every HTTP/1 response says Connection: close, idle keep-alive connections end, and lastAcceptAt moves', async (t) => {
  const up = await startUpstream('app');
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());

  const before = await send(proxy.port, { agent });
  assert.notEqual(before.headers.connection, 'close', 'keep-alive before the drain');
  const idle = Object.values(agent.freeSockets).flat()[0]!;
  const idleClosed = new Promise((r) => idle.once('close', r));
  const acceptedBefore = proxy.listener.lastAcceptAt;
  assert.ok(acceptedBefore > 0);

  proxy.listener.softDrain();
  await idleClosed; // the idle keep-alive connection was ended by the proxy
  for (let i = 0; i < 3; i++) {
    const r = await send(proxy.port, { agent });
    assert.deepEqual([r.status, r.body, r.headers.connection], [200, 'app', 'close'], 'still served, but the connection closes after it');
  }
  assert.ok(proxy.listener.lastAcceptAt > acceptedBefore, 'each request came on a new connection');
});
