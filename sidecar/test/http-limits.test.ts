/**
 * Header limits and slowloris timeouts (docs/http-safety.md, "Limits" and "Timeouts"), over real
 * sockets against a listener in front of a recording upstream. Timeouts are shortened through the
 * listener's construction, as any embedder would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { DEFAULT_HTTP_LIMITS, resolveHttpLimits } from '../src/http-limits';
import { httpRejections } from '../src/http-strict';
import { sleep } from './fixtures';
import { rawExchange, startGuardedPair } from './http-safety-fixtures';

const headersOf = (n: number): string => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');

test('the documented defaults: 16 KiB of request line and headers, 100 fields, 10 s to send headers, 60 s keep-alive', () => {
  assert.deepEqual(DEFAULT_HTTP_LIMITS, {
    maxHeaderBytes: 16384,
    maxHeaderCount: 100,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 0,
    keepAliveTimeoutMs: 60_000,
    idleTimeoutMs: 300_000,
    timeoutCheckIntervalMs: 1_000,
  });
});

test('limits are validated when a listener is built', () => {
  assert.throws(() => resolveHttpLimits({ maxHeaderCount: 0 }), /maxHeaderCount must be a positive integer/);
  assert.throws(() => resolveHttpLimits({ headersTimeoutMs: -1 }), /headersTimeoutMs must be a non-negative integer/);
  assert.throws(() => resolveHttpLimits({ keepAliveTimeoutMs: 1.5 }), /keepAliveTimeoutMs/);
  assert.throws(() => resolveHttpLimits({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }), /requestTimeoutMs \(1000\) must be at least headersTimeoutMs/);
  assert.equal(resolveHttpLimits({ requestTimeoutMs: 30_000 }).requestTimeoutMs, 30_000);
});

test('default limits: headers over 16 KiB and a request line over 16 KiB get 431; just under passes', async (t) => {
  const pair = await startGuardedPair();
  t.after(() => pair.close());
  const before = httpRejections.get('header-bytes');

  const big = await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\nX-Big: ${'x'.repeat(17 * 1024)}\r\n\r\n`);
  assert.deepEqual(big.statuses, [431]);
  assert.match(big.text, /connection: close/i);
  assert.ok(big.closed);
  const longLine = await rawExchange(pair.inbound.port, `GET /${'a'.repeat(17 * 1024)} HTTP/1.1\r\nHost: app\r\n\r\n`);
  assert.deepEqual(longLine.statuses, [431]);
  assert.equal(httpRejections.get('header-bytes'), before + 2);
  assert.equal(pair.upstream.connections, 0);

  const under = await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\nX-Big: ${'x'.repeat(15 * 1024)}\r\nConnection: close\r\n\r\n`);
  assert.deepEqual(under.statuses, [200]);
  assert.equal(pair.upstream.received.length, 1);
});

test('default limits: 100 header fields pass, 101 and 500 get 431 (Node alone would silently drop the extra ones)', async (t) => {
  const pair = await startGuardedPair();
  t.after(() => pair.close());
  const before = httpRejections.get('header-count');

  // Host and Connection count: 98 more makes 100.
  const ok = await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n${headersOf(98)}\r\n`);
  assert.deepEqual(ok.statuses, [200]);
  assert.equal(pair.upstream.received[0]!.headers['x-h97'], 'v');

  for (const n of [99, 498]) {
    const r = await rawExchange(pair.inbound.port, `GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n${headersOf(n)}\r\n`);
    assert.deepEqual(r.statuses, [431], `${n + 2} fields`);
    assert.match(r.text, /more than 100 header fields/);
  }
  assert.equal(httpRejections.get('header-count'), before + 2);
  assert.equal(pair.upstream.received.length, 1);
});

test('limits given at construction apply: 1 KiB of headers, 5 fields', async (t) => {
  const pair = await startGuardedPair({ maxHeaderBytes: 1024, maxHeaderCount: 5 });
  t.after(() => pair.close());
  assert.deepEqual((await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\nX-A: ${'x'.repeat(1100)}\r\n\r\n`)).statuses, [431]);
  assert.deepEqual((await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\n${headersOf(5)}\r\n`)).statuses, [431]);
  assert.deepEqual((await rawExchange(pair.outbound.port, `GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n${headersOf(3)}\r\n`)).statuses, [200]);
});

test('slowloris: headers trickled a line at a time past the headers timeout get 408 and the connection closes', async (t) => {
  const pair = await startGuardedPair({ headersTimeoutMs: 300, timeoutCheckIntervalMs: 50 });
  t.after(() => pair.close());
  const before = httpRejections.get('request-timeout');
  const started = Date.now();
  // One header line every 100 ms, never the blank line: each byte arrives well within any idle timeout.
  const r = await rawExchange(pair.outbound.port, ['GET / HTTP/1.1\r\nHost: app\r\n', ...Array.from({ length: 30 }, (_, i) => `X-${i}: v\r\n`)], 5000, 100);
  const took = Date.now() - started;
  assert.deepEqual(r.statuses, [408]);
  assert.ok(r.closed);
  assert.ok(took >= 300 && took < 1500, `closed after ${took} ms`);
  assert.equal(httpRejections.get('request-timeout'), before + 1);
  assert.equal(pair.upstream.connections, 0);
});

test('a request timeout bounds a body trickled slowly: 408, and the upstream never gets a complete request', async (t) => {
  const pair = await startGuardedPair({ headersTimeoutMs: 200, requestTimeoutMs: 400, timeoutCheckIntervalMs: 50 });
  t.after(() => pair.close());
  const r = await rawExchange(pair.inbound.port, ['POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 20\r\n\r\n', ...'0123456789'.split('')], 3000, 100);
  assert.deepEqual(r.statuses, [408]);
  assert.ok(r.closed);
  await sleep(50);
  assert.equal(pair.upstream.received.length, 0);
});

test('the idle timeout closes a stalled body with 408, and a silent connection without a word', async (t) => {
  const pair = await startGuardedPair({ idleTimeoutMs: 300 });
  t.after(() => pair.close());
  const before = httpRejections.get('idle-timeout');
  const stalled = await rawExchange(pair.outbound.port, 'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 20\r\n\r\nabc', 3000);
  assert.deepEqual(stalled.statuses, [408]);
  assert.ok(stalled.closed);
  assert.equal(httpRejections.get('idle-timeout'), before + 1);

  const started = Date.now();
  const silent = await rawExchange(pair.outbound.port, [], 3000);
  assert.ok(silent.closed && silent.text === '', 'closed without a response');
  assert.ok(Date.now() - started < 2000);
  await sleep(50);
  assert.equal(pair.upstream.received.length, 0);
});

test('an idle keep-alive connection is closed after the keep-alive timeout; a busy one is not', async (t) => {
  const pair = await startGuardedPair({ keepAliveTimeoutMs: 200 });
  t.after(() => pair.close());
  const socket = net.connect(pair.outbound.port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString()));
  // Three requests 100 ms apart keep it open past 200 ms in total.
  for (let i = 0; i < 3; i++) {
    socket.write('GET / HTTP/1.1\r\nHost: app\r\n\r\n');
    await sleep(100);
  }
  const lastSent = Date.now();
  const closedAt = await closed;
  assert.equal([...text.matchAll(/HTTP\/1\.1 200/g)].length, 3);
  assert.ok(closedAt - lastSent >= 100 && closedAt - lastSent < 1500, `closed ${closedAt - lastSent} ms after the last request`);
});

test('a keep-alive client reusing connections sees no error from the limits', async (t) => {
  const pair = await startGuardedPair();
  t.after(() => pair.close());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(() => agent.destroy());
  const one = (): Promise<number> =>
    new Promise((resolve, reject) => {
      http
        .get({ port: pair.inbound.port, host: '127.0.0.1', path: '/x', agent, headers: { host: 'app' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        })
        .on('error', reject);
    });
  const statuses = await Promise.all(Array.from({ length: 50 }, one));
  assert.ok(statuses.every((s) => s === 200));
  assert.equal(pair.upstream.received.length, 50);
});
