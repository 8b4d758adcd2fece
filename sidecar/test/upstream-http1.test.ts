import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import { endpointKey, UpstreamPool } from '../src/upstream-pool';
import { Http1Endpoint, type Http1Exchange } from '../src/upstream-http1';
import { sleep, startUpstream } from './fixtures';

interface Answer {
  status: number;
  message: string;
  headers: string[];
  body: string;
  error?: NodeJS.ErrnoException & { info?: unknown };
  reused?: boolean;
}

/** One exchange on `endpoint`, resolved with what came back. */
function exchange(endpoint: Http1Endpoint, head: string, opts: { body?: Buffer[]; framing?: 'none' | 'length' | 'chunked'; skipBody?: boolean; connectTimeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve) => {
    const a: Answer = { status: 0, message: '', headers: [], body: '' };
    const chunks: Buffer[] = [];
    const ex: Http1Exchange = endpoint.request(
      head,
      {
        onConnect: (reused) => (a.reused = reused),
        onResponse: (status, message, raw) => Object.assign(a, { status, message, headers: [...raw] }),
        onData: (c) => chunks.push(Buffer.from(c)),
        onEnd: () => resolve({ ...a, body: Buffer.concat(chunks).toString() }),
        onError: (err, info) => resolve({ ...a, error: Object.assign(err, { info }) }),
      },
      opts.framing ?? 'none',
      opts.skipBody ?? false,
      opts.connectTimeoutMs ?? 0,
    );
    for (const b of opts.body ?? []) ex.write(b);
    ex.end();
  });
}

/** A raw TCP upstream: `respond(requestBytes, socket)` is called on every data event. */
async function rawUpstream(respond: (data: string, socket: net.Socket) => void): Promise<{ port: number; received: string[]; close(): Promise<void> }> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => {
      received.push(d.toString('latin1'));
      respond(d.toString('latin1'), s);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () => new Promise((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

const GET = (path = '/', host = 'svc') => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;

test('keep-alive: a second exchange reuses the connection; headers arrive raw, duplicates kept', async (t) => {
  const up = await startUpstream('a', (_r, res) => {
    res.setHeader('X-Dup', ['1', '2']);
    res.end('hello');
  });
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  const first = await exchange(e, GET('/one'));
  const second = await exchange(e, GET('/two'));
  assert.equal(first.status, 200);
  assert.equal(first.body, 'hello');
  assert.deepEqual(first.headers.filter((_h, i) => first.headers[i - 1] === 'X-Dup'), ['1', '2']);
  assert.equal(first.reused, false);
  assert.equal(second.reused, true);
  assert.equal(up.connections, 1);
  assert.deepEqual(up.received.map((r) => r.url), ['/one', '/two']);
});

test('a chunked request body is re-chunked on the wire and arrives whole', async (t) => {
  const up = await startUpstream('a', (r, res) => res.end(`got ${r.body} te=${r.headers['transfer-encoding']}`));
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  const a = await exchange(e, 'POST /u HTTP/1.1\r\nHost: svc\r\ntransfer-encoding: chunked\r\n\r\n', { framing: 'chunked', body: [Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')] });
  assert.equal(a.body, 'got abcde te=chunked');
});

test('HEAD: the Content-Length of the answer does not make the client wait for a body', async (t) => {
  const up = await startUpstream('a', (_r, res) => {
    res.setHeader('content-length', '5');
    res.end();
  });
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  const a = await exchange(e, 'HEAD / HTTP/1.1\r\nHost: svc\r\n\r\n', { skipBody: true });
  assert.equal(a.status, 200);
  assert.equal(a.body, '');
  const b = await exchange(e, GET());
  assert.equal(b.status, 200);
  assert.equal(b.reused, true);
});

test('interim 1xx answers are skipped; a body delimited by the close of the connection is read to its end', async (t) => {
  const up = await rawUpstream((_d, s) => {
    s.write('HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n');
    s.end('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil-close');
  });
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  const a = await exchange(e, GET());
  assert.equal(a.status, 200);
  assert.equal(a.body, 'until-close');
  assert.equal(e.connections, 0);
});

test('more than 32 response headers all arrive', async (t) => {
  const up = await rawUpstream((_d, s) => {
    let h = 'HTTP/1.1 200 OK\r\n';
    for (let i = 0; i < 50; i++) h += `X-${i}: v${i}\r\n`;
    s.write(`${h}Content-Length: 0\r\n\r\n`);
  });
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  const a = await exchange(e, GET());
  assert.equal(a.headers.length, 102);
  assert.equal(a.headers[99], 'v49');
});

test('a malformed response, a reset before the response and a refused connection are errors with their phase', async (t) => {
  const bad = await rawUpstream((_d, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'));
  const reset = await rawUpstream((_d, s) => s.resetAndDestroy());
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const closedPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  t.after(async () => {
    await bad.close();
    await reset.close();
  });
  const a = await exchange(new Http1Endpoint('127.0.0.1', bad.port), GET());
  assert.equal(a.error?.code, 'HPE_UNEXPECTED_CONTENT_LENGTH');
  const b = await exchange(new Http1Endpoint('127.0.0.1', reset.port), GET());
  assert.equal(b.error?.code, 'ECONNRESET');
  assert.deepEqual(b.error?.info, { connected: true, reused: false, responded: false });
  const c = await exchange(new Http1Endpoint('127.0.0.1', closedPort), GET());
  assert.equal(c.error?.code, 'ECONNREFUSED');
  assert.deepEqual(c.error?.info, { connected: false, reused: false, responded: false });
});

test('a connect timeout fails the exchange as not connected', async (t) => {
  // A listener that never accepts, its one-slot backlog already taken: further SYNs go unanswered.
  const py = spawn('python3', ['-c', 'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)']);
  t.after(() => py.kill('SIGKILL'));
  const port = Number(await new Promise<string>((r) => py.stdout.once('data', (d: Buffer) => r(d.toString()))));
  const fillers = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')];
  t.after(() => fillers.forEach((f) => f.destroy()));
  await sleep(50);
  const started = Date.now();
  const a = await exchange(new Http1Endpoint('127.0.0.1', port), GET(), { connectTimeoutMs: 150 });
  assert.equal(a.error?.code, 'ETIMEDOUT');
  assert.deepEqual(a.error?.info, { connected: false, reused: false, responded: false });
  assert.ok(Date.now() - started >= 140, `failed after ${Date.now() - started} ms`);
});

test('maxRequestsPerConnection closes a connection after N requests; idle connections time out', async (t) => {
  const up = await startUpstream('a');
  const capped = new Http1Endpoint('127.0.0.1', up.port, { maxRequestsPerConnection: 2 });
  const short = new Http1Endpoint('127.0.0.1', up.port, { idleTimeoutMs: 50 });
  t.after(async () => {
    capped.destroy();
    short.destroy();
    await up.close();
  });
  for (let i = 0; i < 4; i++) assert.equal((await exchange(capped, GET())).status, 200);
  assert.equal(up.connections, 2);
  await exchange(short, GET());
  assert.equal(short.connections, 1);
  await sleep(150);
  assert.equal(short.connections, 0);
});

test('the pool hands out one endpoint per address:port and keeps it across calls', () => {
  const pool = new UpstreamPool();
  const a = pool.endpointFor({ address: '10.0.0.1', port: 80 });
  assert.equal(pool.endpointFor({ address: '10.0.0.1', port: 80 }), a);
  assert.notEqual(pool.endpointFor({ address: '10.0.0.1', port: 81 }), a);
  assert.notEqual(pool.endpointFor({ address: '10.0.0.1', port: 80 }, 5), a);
  assert.deepEqual(pool.keys(), ['10.0.0.1:80', '10.0.0.1:81', '10.0.0.1:80#5']);
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
  await exchange(pool.endpointFor(keep.endpoint()), GET());
  await exchange(pool.endpointFor(drop.endpoint()), GET());
  pool.retain([endpointKey(keep.endpoint())]);
  await sleep(20);
  assert.equal(drop.closedConnections, 1);
  assert.equal(keep.closedConnections, 0);
  assert.deepEqual(pool.keys(), [endpointKey(keep.endpoint())]);
  await exchange(pool.endpointFor(keep.endpoint()), GET());
  assert.equal(keep.connections, 1);
});

test('close() lets an in-flight request finish and then closes its connection', async (t) => {
  const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('done'), 100));
  const pool = new UpstreamPool();
  t.after(async () => {
    pool.destroy();
    await slow.close();
  });
  const inFlight = exchange(pool.endpointFor(slow.endpoint()), GET());
  await sleep(30);
  pool.close();
  pool.close();
  assert.equal((await inFlight).body, 'done');
  await sleep(20);
  assert.equal(slow.closedConnections, 1);
  assert.deepEqual(pool.keys(), []);
});

test('destroy() aborts an exchange in flight', async (t) => {
  const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('done'), 300));
  const pool = new UpstreamPool();
  t.after(() => slow.close());
  const inFlight = exchange(pool.endpointFor(slow.endpoint()), GET());
  await sleep(30);
  pool.destroy();
  const a = await inFlight;
  assert.equal(a.error?.code, 'ECONNRESET');
});

test('a pooled connection the upstream closed while idle is never reused: the next exchange opens a new one', async (t) => {
  const up = await startUpstream('a');
  const e = new Http1Endpoint('127.0.0.1', up.port);
  t.after(async () => {
    e.destroy();
    await up.close();
  });
  assert.equal((await exchange(e, GET())).status, 200);
  // Close the upstream side of the idle connection, as a server's keep-alive timeout does.
  await up.close();
  await sleep(30);
  assert.equal(e.connections, 0);
});
