import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { createLogger } from '@weft/api';
import { UpstreamPool } from '../src/upstream-pool';
import { send, simpleConfig, sleep, startProxy, startUpstream } from './fixtures';

/**
 * A raw HTTP/1.1 upstream that answers the first request on each connection with a keep-alive
 * response and silently drops the connection when a second request arrives on it: the stale pooled
 * connection race, made deterministic.
 */
async function startDroppingUpstream(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let seen = '';
    let answered = false;
    socket.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (!seen.includes('\r\n\r\n')) return;
      if (answered) return void socket.destroy();
      answered = true;
      seen = seen.slice(seen.indexOf('\r\n\r\n') + 4);
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=30\r\n\r\nok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('retries a bodyless request reset on a reused pooled connection, once, on a new connection', async (t) => {
  const up = await startDroppingUpstream();
  const proxy = await startProxy(simpleConfig('app', [{ address: '127.0.0.1', port: up.port, weight: 1, healthy: true }]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  assert.equal((await send(proxy.port)).status, 200);
  const second = await send(proxy.port);
  assert.deepEqual([second.status, second.body], [200, 'ok']);
  assert.equal(up.connections(), 2);
});

test('does not retry a POST whose body was sent on a reused connection that reset', async (t) => {
  const up = await startDroppingUpstream();
  const proxy = await startProxy(simpleConfig('app', [{ address: '127.0.0.1', port: up.port, weight: 1, healthy: true }]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  assert.equal((await send(proxy.port)).status, 200);
  const post = await send(proxy.port, { method: 'POST', body: 'payload' });
  assert.deepEqual([post.status, post.body], [503, 'upstream reset before response headers']);
  assert.equal(up.connections(), 1);
});

test('a client that goes away aborts its upstream request', async (t) => {
  let upstreamAborted!: () => void;
  const aborted = new Promise<void>((resolve) => (upstreamAborted = resolve));
  const up = await startUpstream('slow', (_req, res) => {
    res.on('close', () => !res.writableFinished && upstreamAborted());
    setTimeout(() => !res.destroyed && res.end('late'), 2000).unref();
  });
  const proxy = await startProxy(simpleConfig('slow', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const req = http.get({ host: '127.0.0.1', port: proxy.port, path: '/', agent: false });
  req.on('error', () => undefined);
  await sleep(50);
  req.destroy();
  await aborted;
});

test('a response slower than the pool idle timeout is not cut off', async (t) => {
  const up = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('patient'), 250));
  const pool = new UpstreamPool({ idleTimeoutMs: 50 });
  const proxy = await startProxy(simpleConfig('slow', [up.endpoint()]), undefined, { pool });
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const r = await send(proxy.port);
  assert.deepEqual([r.status, r.body], [200, 'patient']);
});

test('the chosen upstream is logged at debug level, never sent to the client', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({}, (line) => lines.push(JSON.parse(line)), 0);
  const up = await startUpstream('app');
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]), undefined, { log });
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const r = await send(proxy.port, { path: '/x' });
  await sleep(5);
  assert.ok(!JSON.stringify(r.headers).includes(String(up.port)));
  const entry = lines.find((l) => l.msg === 'request');
  assert.ok(entry, JSON.stringify(lines));
  assert.deepEqual(
    [entry.level, entry.listener, entry.route, entry.cluster, entry.upstream, entry.status],
    ['debug', 'outbound', 'default', 'app', `127.0.0.1:${up.port}`, 200],
  );
});
