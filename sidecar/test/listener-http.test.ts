import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { TARGET_PORT_HEADER } from '../src/config';
import {
  closedPort,
  cluster,
  directResponse,
  header,
  listener,
  prefix,
  proxyConfig,
  route,
  routeTable,
  send,
  sendRaw,
  simpleConfig,
  sleep,
  startProxy,
  startUpstream,
  vhost,
  weighted,
} from './fixtures';

test('a weighted 90/10 route splits 2000 requests within 3 points across two real upstreams', async (t) => {
  const v1 = await startUpstream('v1');
  const v2 = await startUpstream('v2');
  const proxy = await startProxy(
    proxyConfig({
      routeTables: [routeTable('outbound', [vhost('reviews', ['reviews'], [route('split', weighted(['v1', 90], ['v2', 10]))])])],
      clusters: [cluster('v1'), cluster('v2')],
      endpoints: { v1: [v1.endpoint()], v2: [v2.endpoint()] },
    }),
  );
  t.after(() => Promise.all([proxy.close(), v1.close(), v2.close()]));

  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  t.after(() => agent.destroy());
  const counts = { v1: 0, v2: 0 } as Record<string, number>;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next++ < 2000) {
      const r = await send(proxy.port, { host: 'reviews', agent });
      assert.equal(r.status, 200);
      counts[r.body]!++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  assert.equal(counts.v1! + counts.v2!, 2000);
  assert.ok(Math.abs(counts.v2! / 2000 - 0.1) <= 0.03, `v2 got ${counts.v2} of 2000`);
});

test('upstream keep-alive connections are reused across requests', async (t) => {
  const up = await startUpstream('app');
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));

  for (let i = 0; i < 20; i++) assert.equal((await send(proxy.port)).status, 200);
  assert.equal(up.received.length, 20);
  assert.equal(up.connections, 1);
});

test('hop-by-hop headers are stripped both ways and x-forwarded-* and x-request-id are added', async (t) => {
  const up = await startUpstream('app', (_req, res) => {
    res.writeHead(200, { connection: 'keep-alive, x-up-hop', 'x-up-hop': 'secret', 'x-kept': 'yes', trailer: 'x-t' });
    res.end('ok');
  });
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));

  // Raw bytes: Node's client refuses some of these headers, and the point is to send them anyway.
  const raw = await sendRaw(
    proxy.port,
    [
      'POST /p?q=1 HTTP/1.1',
      'Host: app.local',
      'Connection: close, x-hop',
      'X-Hop: gone',
      'Keep-Alive: timeout=5',
      'Proxy-Connection: keep-alive',
      'TE: trailers',
      'Trailer: x-checksum',
      'Upgrade: h2c',
      'Transfer-Encoding: chunked',
      'X-Forwarded-For: 203.0.113.7',
      'X-End-To-End: kept',
      '',
      '5',
      'hello',
      '0',
      '',
      '',
    ].join('\r\n'),
  );
  const [head] = raw.split('\r\n\r\n');
  const lines = head!.toLowerCase().split('\r\n');
  assert.equal(lines[0], 'http/1.1 200 ok');
  assert.ok(!lines.some((l) => l.startsWith('x-up-hop:')), head);
  assert.ok(!lines.some((l) => l.startsWith('trailer:')), head);
  assert.ok(lines.includes('x-kept: yes'), head);

  const got = up.received[0]!;
  assert.equal(got.url, '/p?q=1');
  assert.equal(got.body, 'hello');
  assert.equal(got.headers.host, 'app.local');
  for (const h of ['x-hop', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) assert.equal(got.headers[h], undefined, h);
  assert.notEqual(got.headers.connection, 'close, x-hop');
  assert.equal(got.headers['x-end-to-end'], 'kept');
  assert.equal(got.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
  assert.equal(got.headers['x-forwarded-proto'], 'http');
  assert.match(String(got.headers['x-request-id']), /^[0-9a-f-]{36}$/);
});

test('an existing x-request-id is kept', async (t) => {
  const up = await startUpstream('app');
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  await send(proxy.port, { headers: { 'x-request-id': 'abc-123' } });
  assert.equal(up.received[0]!.headers['x-request-id'], 'abc-123');
});

test('request and response bodies stream through with method and status intact', async (t) => {
  const up = await startUpstream('app', (req, res) => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.write('{"echo":');
    setTimeout(() => res.end(`${JSON.stringify(req.body)}}`), 10);
  });
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const body = 'x'.repeat(200_000);
  const r = await send(proxy.port, { method: 'PUT', body, headers: { 'content-type': 'text/plain' } });
  assert.equal(r.status, 201);
  assert.equal(JSON.parse(r.body).echo, body);
  assert.equal(up.received[0]!.method, 'PUT');
});

test('large responses reach clients that stop reading for a while, byte for byte (backpressure through the proxy)', async (t) => {
  // Two concurrent 24 MiB responses of distinct bytes, in 64 KiB writes: far more than socket
  // buffers hold, so the proxy must pause each upstream while its client does not read, and no
  // chunk may change while it waits (nor be mixed up with the other response's).
  const BLOCKS = 384;
  const SIZE = 64 * 1024;
  const word = (seed: number, off: number): number => (seed * 0x9e3779b1 + off) >>> 0;
  const up = await startUpstream('app', (req, res) => {
    const seed = Number(req.url.slice(1));
    res.writeHead(200, { 'content-length': String(BLOCKS * SIZE) });
    let i = 0;
    const more = (): void => {
      while (i < BLOCKS) {
        const block = Buffer.alloc(SIZE);
        for (let k = 0; k < SIZE; k += 4) block.writeUInt32BE(word(seed, i * SIZE + k), k);
        i++;
        if (!res.write(block)) {
          res.once('drain', more);
          return;
        }
      }
      res.end();
    };
    more();
  });
  const proxy = await startProxy(simpleConfig('app', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const fetchSlowly = (seed: number, waitMs: number): Promise<Buffer> =>
    new Promise<Buffer>((resolve, reject) => {
      const req = http.get({ port: proxy.port, host: '127.0.0.1', path: `/${seed}`, headers: { host: 'app' }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.pause();
        setTimeout(() => {
          res.on('data', (c: Buffer) => chunks.push(c));
          res.resume();
        }, waitMs);
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
    });
  const bodies = await Promise.all([fetchSlowly(1, 300), fetchSlowly(2, 150)]);
  for (const [i, body] of bodies.entries()) {
    const seed = i + 1;
    assert.equal(body.length, BLOCKS * SIZE);
    for (let off = 0; off < body.length; off += 4) {
      if (body.readUInt32BE(off) !== word(seed, off)) assert.fail(`response ${seed}, byte ${off} differs`);
    }
  }
});

test('x-weft-target-port is added for an endpoint with targetPort, and a client-sent one is dropped otherwise', async (t) => {
  const peer = await startUpstream('peer-sidecar');
  const plain = await startUpstream('plain');
  const proxy = await startProxy(
    proxyConfig({
      routeTables: [
        routeTable('outbound', [
          vhost('meshed', ['meshed'], [route('meshed', 'meshed')]),
          vhost('plain', ['plain'], [route('plain', 'plain')]),
        ]),
      ],
      clusters: [cluster('meshed'), cluster('plain')],
      endpoints: { meshed: [peer.endpoint({ targetPort: 9080 })], plain: [plain.endpoint()] },
    }),
  );
  t.after(() => Promise.all([proxy.close(), peer.close(), plain.close()]));

  await send(proxy.port, { host: 'meshed', headers: { [TARGET_PORT_HEADER]: '1' } });
  assert.equal(peer.received[0]!.headers[TARGET_PORT_HEADER], '9080');
  await send(proxy.port, { host: 'plain', headers: { [TARGET_PORT_HEADER]: '1' } });
  assert.equal(plain.received[0]!.headers[TARGET_PORT_HEADER], undefined);
});

test('an inbound listener routes on x-weft-target-port and removes it before the app sees it', async (t) => {
  const app9080 = await startUpstream('app-9080');
  const app9090 = await startUpstream('app-9090');
  const inboundTable = routeTable('inbound', [
    vhost('inbound', ['*'], [
      route('p9080', 'inbound|9080||', { headers: [header.exact(TARGET_PORT_HEADER, '9080')] }),
      route('p9090', 'inbound|9090||', { headers: [header.exact(TARGET_PORT_HEADER, '9090')] }),
      route('no-target-port', directResponse(404, 'no app port')),
    ]),
  ]);
  const config = proxyConfig({
    routeTables: [inboundTable],
    clusters: [
      cluster('inbound|9080||', { discovery: 'STATIC', staticEndpoints: [app9080.endpoint()] }),
      cluster('inbound|9090||', { discovery: 'STATIC', staticEndpoints: [app9090.endpoint()] }),
    ],
  });
  const inbound = await startProxy(config, listener('virtualInbound', { direction: 'inbound', routes: { kind: 'rds', name: 'inbound' } }));
  // The calling side: an outbound listener whose endpoint is the inbound listener, targetPort 9090.
  const outbound = await startProxy(
    proxyConfig({
      routeTables: [routeTable('outbound', [vhost('svc', ['svc'], [route('svc', 'svc')])])],
      clusters: [cluster('svc')],
      endpoints: { svc: [{ address: '127.0.0.1', port: inbound.port, weight: 1, healthy: true, targetPort: 9090 }] },
    }),
  );
  t.after(() => Promise.all([inbound.close(), outbound.close(), app9080.close(), app9090.close()]));

  const direct = await send(inbound.port, { headers: { [TARGET_PORT_HEADER]: '9080' } });
  assert.equal(direct.body, 'app-9080');
  assert.equal(app9080.received[0]!.headers[TARGET_PORT_HEADER], undefined);

  const viaMesh = await send(outbound.port, { host: 'svc' });
  assert.equal(viaMesh.body, 'app-9090');
  assert.equal(app9090.received[0]!.headers[TARGET_PORT_HEADER], undefined);
  assert.equal(app9090.received[0]!.headers['x-forwarded-for'], '127.0.0.1, 127.0.0.1');

  const none = await send(inbound.port);
  assert.deepEqual([none.status, none.body], [404, 'no app port']);
});

test('an unknown host gets 404 "no route for host <host>", as does a path no route matches', async (t) => {
  const proxy = await startProxy(
    proxyConfig({ routeTables: [routeTable('outbound', [vhost('foo', ['foo'], [route('api', 'foo', { path: prefix('/api') })])])], clusters: [cluster('foo')] }),
  );
  t.after(() => proxy.close());
  const unknown = await send(proxy.port, { host: 'bar:8080' });
  assert.deepEqual([unknown.status, unknown.body], [404, 'no route for host bar:8080']);
  const noPath = await send(proxy.port, { host: 'foo', path: '/other' });
  assert.deepEqual([noPath.status, noPath.body], [404, 'no route for host foo']);
});

test('a listener whose RDS table has not arrived answers 404', async (t) => {
  const proxy = await startProxy(proxyConfig({}), listener('outbound', { routes: { kind: 'rds', name: 'missing' } }));
  t.after(() => proxy.close());
  const r = await send(proxy.port, { host: 'x' });
  assert.deepEqual([r.status, r.body], [404, 'no route for host x']);
});

test('a cluster without endpoints, or only unhealthy ones, gets 503 "no healthy upstream"', async (t) => {
  const proxy = await startProxy(simpleConfig('empty', []));
  t.after(() => proxy.close());
  const empty = await send(proxy.port);
  assert.deepEqual([empty.status, empty.body], [503, 'no healthy upstream']);
  proxy.set(simpleConfig('empty', [{ address: '127.0.0.1', port: 1, weight: 1, healthy: false }]));
  const unhealthy = await send(proxy.port);
  assert.deepEqual([unhealthy.status, unhealthy.body], [503, 'no healthy upstream']);
});

test('a route to a cluster the config lacks gets 503 without naming it', async (t) => {
  const proxy = await startProxy(proxyConfig({ routeTables: [routeTable('outbound', [vhost('v', ['*'], [route('r', 'ghost')])])] }));
  t.after(() => proxy.close());
  const r = await send(proxy.port);
  assert.deepEqual([r.status, r.body], [503, 'cluster not found']);
});

test('a refused upstream connection gets 503 "upstream connect error"', async (t) => {
  const port = await closedPort();
  const proxy = await startProxy(simpleConfig('down', [{ address: '127.0.0.1', port, weight: 1, healthy: true }]));
  t.after(() => proxy.close());
  const r = await send(proxy.port);
  assert.deepEqual([r.status, r.body], [503, 'upstream connect error']);
  assert.equal(r.headers['x-weft-upstream'], undefined);
});

test('a route timeout gets 504 "upstream request timeout" and aborts the upstream request', async (t) => {
  let upstreamClosed!: () => void;
  const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
  const up = await startUpstream('slow', (_req, res) => {
    res.on('close', () => upstreamClosed());
    setTimeout(() => !res.destroyed && res.end('late'), 2000).unref();
  });
  const proxy = await startProxy(simpleConfig('slow', [up.endpoint()], { timeoutMs: 100 }));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const started = Date.now();
  const r = await send(proxy.port);
  assert.deepEqual([r.status, r.body], [504, 'upstream request timeout']);
  assert.ok(Date.now() - started < 1500);
  await closed;
});

test('an upstream reset after response headers resets the client response', async (t) => {
  const up = await startUpstream('flaky', (_req, res) => {
    res.writeHead(200, { 'content-length': '100' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const proxy = await startProxy(simpleConfig('flaky', [up.endpoint()]));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  await assert.rejects(send(proxy.port), /aborted|ECONNRESET|socket hang up/);
});

test('a config swap mid-request neither breaks the in-flight request nor delays the next one', async (t) => {
  const slow = await startUpstream('old', (_req, res) => {
    res.writeHead(200);
    res.write('old-');
    setTimeout(() => res.end('done'), 300);
  });
  const fresh = await startUpstream('new');
  const proxy = await startProxy(simpleConfig('old', [slow.endpoint()]));
  t.after(() => Promise.all([proxy.close(), slow.close(), fresh.close()]));

  const inFlight = send(proxy.port);
  await sleep(100);
  proxy.set(simpleConfig('new', [fresh.endpoint()]));
  // As ListenerManager does on apply: the old endpoint leaves the pool.
  proxy.pool.retain([`127.0.0.1:${fresh.port}`]);
  const next = await send(proxy.port);
  assert.equal(next.body, 'new');
  const old = await inFlight;
  assert.deepEqual([old.status, old.body], [200, 'old-done']);
});

test('a direct-response route answers without an upstream', async (t) => {
  const proxy = await startProxy(proxyConfig({ routeTables: [routeTable('outbound', [vhost('v', ['*'], [route('teapot', directResponse(418, 'short and stout'))])])] }));
  t.after(() => proxy.close());
  const r = await send(proxy.port);
  assert.deepEqual([r.status, r.body], [418, 'short and stout']);
});

test('an inline route table serves without RDS, and update() swaps it for the next request', async (t) => {
  const a = await startUpstream('a');
  const b = await startUpstream('b');
  const config = proxyConfig({ clusters: [cluster('a'), cluster('b')], endpoints: { a: [a.endpoint()], b: [b.endpoint()] } });
  const inline = (to: string) => listener('inline', { routes: { kind: 'inline', table: routeTable('t', [vhost('v', ['*'], [route('r', to)])]) } });
  const proxy = await startProxy(config, inline('a'));
  t.after(() => Promise.all([proxy.close(), a.close(), b.close()]));
  assert.equal((await send(proxy.port)).body, 'a');
  proxy.listener.update(inline('b'));
  assert.equal((await send(proxy.port)).body, 'b');
  assert.throws(() => proxy.listener.update({ ...inline('b'), port: 1 }), /rebind/);
});

test('an absolute-form request target (client using the listener as an HTTP proxy) routes by its authority', async (t) => {
  const up = await startUpstream('app');
  const proxy = await startProxy(proxyConfig({
    routeTables: [routeTable('outbound', [vhost('app', ['app.shop'], [route('r', 'app')])])],
    clusters: [cluster('app')],
    endpoints: { app: [up.endpoint()] },
  }));
  t.after(() => Promise.all([proxy.close(), up.close()]));
  const r = await send(proxy.port, { path: 'http://app.shop/x?y=1', host: 'ignored' });
  assert.equal(r.status, 200);
  assert.equal(up.received[0]!.url, '/x?y=1');
});
