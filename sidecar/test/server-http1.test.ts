// The proxy listeners' lean HTTP/1.1 server (server-http1.ts, http1-message.ts): what Node's
// http.Server did for them, checked byte for byte with raw sockets.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGuardedPair, rawExchange } from './http-safety-fixtures';
import { startUpstream, proxyConfig, routeTable, vhost, route, cluster, listener, directResponse, prefix, type Upstream } from './fixtures';
import { startStrictProxy, type StrictProxy } from './http-safety-fixtures';

let pair: Awaited<ReturnType<typeof startGuardedPair>>;
let slowUp: Upstream;
let slow: StrictProxy;
before(async () => {
  pair = await startGuardedPair();
  // /slow answers after 150 ms, anything else at once; chunked (no Content-Length) for /chunked.
  slowUp = await startUpstream('slow', (r, res) => {
    if (r.url === '/chunked') {
      res.write('part1-');
      res.end('part2');
    } else setTimeout(() => res.end(`${r.url}`), r.url === '/slow' ? 150 : 0);
  });
  const config = proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('local', directResponse(404, 'nothing here'), { path: prefix('/local') }), route('all', 'slow')])])],
    clusters: [cluster('slow')],
    endpoints: { slow: [slowUp.endpoint()] },
  });
  slow = await startStrictProxy(config, listener('outbound'));
});
after(async () => {
  await pair.close();
  await slow.close();
  await slowUp.close();
});

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: app\r\n${extra}\r\n`;

test('pipelined requests are answered in order, a slow first answer holding back the quick ones behind it', async () => {
  const r = await rawExchange(slow.port, get('/slow') + get('/a') + get('/b', 'Connection: close\r\n'), 2000);
  assert.deepEqual(r.statuses, [200, 200, 200]);
  const bodies = [...r.text.matchAll(/\r\n\r\n(\/[a-z]+)/g)].map((m) => m[1]);
  assert.deepEqual(bodies, ['/slow', '/a', '/b']);
  assert.ok(r.closed);
});

test('a request answered by the proxy itself has its unread body dropped: the next request on the connection works', async () => {
  const body = 'x'.repeat(300_000);
  const r = await rawExchange(slow.port, [`POST /local HTTP/1.1\r\nHost: app\r\nContent-Length: ${body.length}\r\n\r\n`, body, get('/after', 'Connection: close\r\n')], 3000);
  assert.deepEqual(r.statuses, [404, 200]);
  assert.match(r.text, /\/after$/);
  assert.ok(r.closed);
});

test('Expect: 100-continue gets 100 Continue before the body; any other expectation 417 and the connection stays usable', async () => {
  const c = await rawExchange(pair.outbound.port, [`POST /up HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`, 'hi'], 1000, 50);
  assert.match(c.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
  const before = pair.upstream.received.length;
  const r = await rawExchange(pair.outbound.port, `POST /x HTTP/1.1\r\nHost: app\r\nExpect: teapot\r\nContent-Length: 3\r\n\r\nabc` + get('/next', 'Connection: close\r\n'));
  assert.deepEqual(r.statuses, [417, 200]);
  assert.equal(pair.upstream.received.length, before + 1);
  assert.equal(pair.upstream.received[before]!.url, '/next');
});

test('framing of responses: chunked to HTTP/1.1 when the upstream gave no length; HTTP/1.0 gets the body delimited by close', async () => {
  const r11 = await rawExchange(slow.port, get('/chunked', 'Connection: close\r\n'));
  assert.match(r11.text, /\r\ntransfer-encoding: chunked\r\n/i);
  assert.match(r11.text, /\r\n\r\n6\r\npart1-\r\n5\r\npart2\r\n0\r\n\r\n$/);
  const r10 = await rawExchange(slow.port, 'GET /chunked HTTP/1.0\r\nHost: app\r\n\r\n');
  assert.doesNotMatch(r10.text, /transfer-encoding/i);
  assert.match(r10.text, /\r\nConnection: close\r\n/);
  assert.match(r10.text, /\r\n\r\npart1-part2$/);
  assert.ok(r10.closed);
});

test('HTTP/1.0 with keep-alive keeps the connection and says so; HEAD gets headers without a body', async () => {
  const r = await rawExchange(slow.port, 'GET /a HTTP/1.0\r\nHost: app\r\nConnection: keep-alive\r\n\r\n', 500);
  assert.deepEqual(r.statuses, [200]);
  assert.match(r.text, /\r\nConnection: keep-alive\r\n/);
  assert.equal(r.closed, false);
  const h = await rawExchange(slow.port, 'HEAD /a HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n');
  // Whatever framing the upstream announced, nothing follows the head of an answer to HEAD.
  assert.match(h.text, /^HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n$/);
  assert.ok(h.closed);
});
