/**
 * The lean HTTP/2 layer against peers written elsewhere, over real sockets on 127.0.0.1: Node's
 * `node:http2` client and server in both directions, curl --http2-prior-knowledge, h2load with
 * many streams, large bodies through small windows, and a grpc-js client calling a grpc-js server
 * through a relay built on the layer (unary, server streaming, trailers and grpc-status intact).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { H2WireConnection, h2WireOptions, type H2WireEvents } from '../src/h2wire-connection';
import type { H2Fields, H2Stream, H2StreamHandler } from '../src/h2wire-stream';
import type { H2WireConnectionError, H2WireStreamError } from '../src/h2wire-errors';
import { field, startLeanServer } from './h2wire-fixtures';
import { startLeanRelay } from './h2wire-relay';
import tls from 'node:tls';
import { makeCa } from './tls-fixtures';

const pattern = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
};
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function nodeRequest(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders | undefined }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: !body });
    const chunks: Buffer[] = [];
    let h: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (x) => (h = x));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ headers: h, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    if (body) req.end(body);
  });
}

test('node:http2 client -> lean server: echo with trailers, 404, many concurrent streams', async () => {
  const server = await startLeanServer();
  const session = http2.connect(`http://127.0.0.1:${server.port}`);
  try {
    const r = await nodeRequest(session, { ':method': 'PUT', ':path': '/echo' }, Buffer.from('hello'));
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.headers['x-method'], 'PUT');
    assert.equal(r.body.toString(), 'hello');
    assert.equal(r.trailers?.['x-bytes'], '5');
    assert.equal((await nodeRequest(session, { ':path': '/nothing' })).headers[':status'], 404);
    // 300 streams at once: over the server's MAX_CONCURRENT_STREAMS of 100, which Node respects by queueing.
    const many = await Promise.all(Array.from({ length: 300 }, (_, i) => nodeRequest(session, { ':method': 'POST', ':path': '/echo' }, Buffer.from(`n${i}`))));
    many.forEach((m, i) => assert.equal(m.body.toString(), `n${i}`));
  } finally {
    session.destroy();
    await server.close();
  }
});

test('10 MB up and down through small windows (node:http2 client, lean server with 16 KiB stream windows)', async () => {
  const server = await startLeanServer({ initialWindowSize: 16384, connectionWindowSize: 65535 });
  // maxSessionMemory: Node counts the 10 MB it queues itself against its own 10 MB default.
  const session = http2.connect(`http://127.0.0.1:${server.port}`, { settings: { initialWindowSize: 16384 }, maxSessionMemory: 64 });
  try {
    const up = pattern(10 << 20);
    const echo = await nodeRequest(session, { ':method': 'POST', ':path': '/echo' }, up);
    assert.equal(echo.body.length, up.length);
    assert.equal(sha(echo.body), sha(up));
    assert.equal(echo.trailers?.['x-bytes'], String(up.length));
    const down = await nodeRequest(session, { ':path': `/download/${10 << 20}` });
    assert.equal(down.body.length, 10 << 20);
    assert.ok(down.body.every((b, i) => b === (i & 0xff)));
  } finally {
    session.destroy();
    await server.close();
  }
});

/** A lean client's request, collected. */
function leanRequest(conn: H2WireConnection, fields: H2Fields, body?: Buffer): Promise<{ headers: H2Fields; body: Buffer; trailers?: H2Fields; error?: H2WireStreamError | H2WireConnectionError }> {
  return new Promise((resolve) => {
    const out: { headers: H2Fields; body: Buffer; trailers?: H2Fields; chunks: Buffer[] } = { headers: [], body: Buffer.alloc(0), chunks: [] };
    const done = (error?: H2WireStreamError | H2WireConnectionError) => resolve({ headers: out.headers, body: Buffer.concat(out.chunks), trailers: out.trailers, error });
    const handler: H2StreamHandler = {
      headers: (_s, h, end) => {
        out.headers = h;
        if (end) done();
      },
      data: (_s, chunk, end) => {
        out.chunks.push(Buffer.from(chunk));
        if (end) done();
      },
      trailers: (_s, t) => {
        out.trailers = t;
        done();
      },
      reset: (_s, e) => done(e),
    };
    const s: H2Stream = conn.request(fields, !body, handler);
    if (body) {
      // Written in 64 KiB pieces honouring backpressure.
      let off = 0;
      const pump = (): void => {
        while (off < body.length) {
          const piece = body.subarray(off, off + 65536);
          off += piece.length;
          if (off >= body.length) return s.end(piece);
          if (!s.write(piece)) return;
        }
      };
      handler.drain = pump;
      pump();
    }
  });
}

async function leanClient(port: number, opts = {}, events: H2WireEvents = {}): Promise<H2WireConnection> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return new H2WireConnection(socket, 'client', events, h2WireOptions(opts));
}

test('lean client -> node:http2 server: headers, body, trailers; 10 MB each way through 16 KiB windows', async () => {
  const server = http2.createServer({ settings: { initialWindowSize: 16384 } });
  server.on('stream', (stream, headers) => {
    const hash = createHash('sha256');
    let n = 0;
    stream.on('data', (d: Buffer) => {
      hash.update(d);
      n += d.length;
    });
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'x-got': String(n), 'x-sha': hash.digest('hex') }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      const m = /^\/download\/(\d+)$/.exec(String(headers[':path']));
      stream.end(m ? pattern(Number(m[1])) : Buffer.from('ok'));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const conn = await leanClient(port, { initialWindowSize: 16384, connectionWindowSize: 65535 });
  try {
    const r = await leanRequest(conn, [':method', 'POST', ':scheme', 'http', ':path', '/a', ':authority', 'x'], Buffer.from('abc'));
    assert.equal(field(r.headers, ':status'), '200');
    assert.equal(field(r.headers, 'x-got'), '3');
    assert.equal(r.body.toString(), 'ok');
    assert.deepEqual(r.trailers, ['grpc-status', '0']);
    const big = pattern(10 << 20);
    const up = await leanRequest(conn, [':method', 'POST', ':scheme', 'http', ':path', `/download/${10 << 20}`, ':authority', 'x'], big);
    assert.equal(field(up.headers, 'x-sha'), sha(big));
    assert.equal(sha(up.body), sha(pattern(10 << 20)));
    const small = await leanRequest(conn, [':method', 'GET', ':scheme', 'http', ':path', '/download/1000', ':authority', 'x']);
    assert.equal(small.body.length, 1000);
  } finally {
    conn.destroy();
    server.close();
  }
});

test('lean client: a request made after the peer GOAWAY is refused, not sent', async () => {
  const server = await startLeanServer();
  let goaway: H2WireConnectionError | undefined;
  const conn = await leanClient(server.port, {}, { onGoaway: (e) => (goaway = e) });
  try {
    const first = await leanRequest(conn, [':method', 'GET', ':scheme', 'http', ':path', '/download/10', ':authority', 'x']);
    assert.equal(first.body.length, 10);
    server.connections[0]!.close();
    for (let i = 0; i < 50 && !goaway; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(goaway);
    assert.equal(conn.canRequest, false);
    assert.throws(() => conn.request([':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'x'], true, { headers() {}, data() {}, trailers() {}, reset() {} }), { code: 'H2_CONNECTION_ERROR' });
  } finally {
    conn.destroy();
    await server.close();
  }
});

test('node:http2 client -> lean relay (16 KiB windows) -> lean server: 10 MB echoed intact; a client gone mid-request resets the upstream stream', async () => {
  let serverResets = 0;
  const server = await startLeanServer({}, {
    onStream: (s) => {
      const app = s.handler;
      s.handler = { ...app, reset: (st, e) => (serverResets++, app.reset(st, e)) };
    },
  });
  const relay = await startLeanRelay({ listenHost: '127.0.0.1', listenPort: 0, nextHost: '127.0.0.1', nextPort: server.port, h2: { initialWindowSize: 16384, connectionWindowSize: 65535 } });
  const session = http2.connect(`http://127.0.0.1:${relay.port}`, { maxSessionMemory: 64 });
  try {
    const up = pattern(10 << 20);
    const echo = await nodeRequest(session, { ':method': 'POST', ':path': '/echo' }, up);
    assert.equal(sha(echo.body), sha(up));
    assert.equal(echo.trailers?.['x-bytes'], String(up.length));
    const req = session.request({ ':method': 'POST', ':path': '/echo' });
    req.write('partial');
    await once(req, 'response');
    // (Node's req.close() ends the request body first, so the server would just finish: drop the connection.)
    session.destroy();
    for (let i = 0; i < 100 && serverResets === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(serverResets, 1);
  } finally {
    session.destroy();
    await relay.close();
    await server.close();
  }
});

const run = (cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> =>
  new Promise((resolve) => execFile(cmd, args, { maxBuffer: 64 << 20 }, (e, out, err) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out, err })));

test('curl --http2-prior-knowledge: a GET and a POST answered by the lean server', { skip: !existsSync('/usr/bin/curl') && 'curl not installed' }, async () => {
  const server = await startLeanServer();
  try {
    const get = await run('/usr/bin/curl', ['-sS', '--http2-prior-knowledge', '-o', '-', '-w', '\\n%{http_code} %{http_version}', `http://127.0.0.1:${server.port}/download/5`]);
    assert.equal(get.code, 0, get.err);
    assert.match(get.out, /\n200 2$/);
    const post = await run('/usr/bin/curl', ['-sS', '--http2-prior-knowledge', '--data-binary', 'posted body', `http://127.0.0.1:${server.port}/echo`]);
    assert.equal(post.code, 0, post.err);
    assert.equal(post.out, 'posted body');
  } finally {
    await server.close();
  }
});

test('h2load: 4 connections x 32 streams, every request answered', { skip: !existsSync('/usr/bin/h2load') && 'h2load not installed' }, async () => {
  const server = await startLeanServer();
  try {
    const r = await run('/usr/bin/h2load', ['-n', '4000', '-c', '4', '-m', '32', `http://127.0.0.1:${server.port}/download/100`]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /requests: 4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored/);
    assert.match(r.out, /status codes: 4000 2xx/);
  } finally {
    await server.close();
  }
});

const identity = (b: Buffer): Buffer => b;
const method = (path: string, responseStream: boolean) => ({ path, requestStream: false, responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity });
const service = { Unary: method('/t.T/Unary', false), Fail: method('/t.T/Fail', false), List: method('/t.T/List', true) };

test('grpc-js client -> lean relay -> grpc-js server: unary, an error status, server streaming with trailers', async () => {
  const server = new grpc.Server();
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.concat([Buffer.from('re:'), call.request])),
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' }),
    List: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      for (let i = 0; i < 50; i++) call.write(Buffer.from(`item ${i} `.repeat(100)));
      const md = new grpc.Metadata();
      md.set('x-count', '50');
      call.end(md);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const relay = await startLeanRelay({ listenHost: '127.0.0.1', listenPort: 0, nextHost: '127.0.0.1', nextPort: port });
  const Client = grpc.makeGenericClientConstructor(service, 't');
  const client = new Client(`127.0.0.1:${relay.port}`, grpc.credentials.createInsecure()) as unknown as Record<string, (...a: unknown[]) => unknown>;
  try {
    const unary = (name: string, req: Buffer) => new Promise<Buffer>((resolve, reject) => client[name]!(req, (e: Error | null, r: Buffer) => (e ? reject(e) : resolve(r))));
    assert.equal((await unary('Unary', Buffer.from('ping'))).toString(), 're:ping');
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => unary('Unary', Buffer.from(String(i)))));
    results.forEach((r, i) => assert.equal(r.toString(), `re:${i}`));
    await assert.rejects(unary('Fail', Buffer.alloc(0)), (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND && e.details === 'no such thing');
    const call = client.List!(Buffer.alloc(0)) as grpc.ClientReadableStream<Buffer>;
    const items: string[] = [];
    let trailers: grpc.Metadata | undefined;
    let status: grpc.StatusObject | undefined;
    call.on('data', (d: Buffer) => items.push(d.toString()));
    call.on('metadata', () => undefined);
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      trailers = s.metadata;
    });
    await once(call, 'end');
    for (let i = 0; i < 20 && !status; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(items.length, 50);
    assert.equal(items[49], 'item 49 '.repeat(100));
    assert.equal(status?.code, grpc.status.OK);
    assert.deepEqual(trailers?.get('x-count'), ['50']);
  } finally {
    (client as unknown as grpc.Client).close();
    await relay.close();
    server.forceShutdown();
  }
});

test('lean client -> node:http2 server allowing 2 streams: 40 requests at once all answered, never over 2 open', async () => {
  let open = 0;
  let peak = 0;
  const server = http2.createServer({ settings: { maxConcurrentStreams: 2 } });
  server.on('stream', (stream, headers) => {
    peak = Math.max(peak, ++open);
    stream.on('close', () => open--);
    stream.resume();
    stream.on('end', () => setTimeout(() => {
      stream.respond({ ':status': 200 });
      stream.end(String(headers[':path']));
    }, 5));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const conn = await leanClient((server.address() as AddressInfo).port);
  try {
    // The first request waits for the server's SETTINGS, so the limit is known before the rest.
    await leanRequest(conn, [':method', 'GET', ':scheme', 'http', ':path', '/first', ':authority', 'x']);
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => leanRequest(conn, [':method', 'POST', ':scheme', 'http', ':path', `/r${i}`, ':authority', 'x'], Buffer.from('b'))));
    all.forEach((r, i) => assert.equal(r.body.toString(), `/r${i}`));
    assert.equal(peak, 2);
  } finally {
    conn.destroy();
    server.close();
  }
});

test('over TLS (ALPN h2): node:http2 client -> lean server on a TLSSocket', async () => {
  const ca = makeCa();
  const leaf = ca.leaf('default', 'server');
  const server = tls.createServer({ key: leaf.keyPem, cert: leaf.chainPem, ALPNProtocols: ['h2'] }, (socket) => {
    new H2WireConnection(socket, 'server', {
      onStream(s, fields) {
        s.handler = { headers() {}, data(st, _c, end) { if (end) st.end(Buffer.from(`tls ${field(fields, ':path')}`)); }, trailers() {}, reset() {} };
        s.sendHeaders([':status', '200']);
      },
    }, h2WireOptions());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = http2.connect(`https://127.0.0.1:${(server.address() as AddressInfo).port}`, { ca: ca.caPem, checkServerIdentity: () => undefined });
  try {
    const r = await nodeRequest(session, { ':method': 'POST', ':path': '/secure' }, Buffer.from('x'));
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body.toString(), 'tls /secure');
    assert.equal(session.alpnProtocol, 'h2');
  } finally {
    session.destroy();
    server.close();
  }
});

test('lean client resetting 150 streams mid-response: the frames still in flight are dropped, the connection goes on', async () => {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    const chunk = Buffer.alloc(16384);
    const pump = (): void => {
      while (!stream.destroyed && stream.write(chunk));
    };
    stream.on('drain', pump);
    pump();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const conn = await leanClient((server.address() as AddressInfo).port, { maxInvalidFrames: 10 });
  try {
    const get = [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'x'];
    await Promise.all(Array.from({ length: 150 }, () => new Promise<void>((resolve) => {
      conn.request(get, true, {
        headers() {},
        data: (s) => s.reset(), // cancel at the first DATA; more is already on the wire
        trailers() {},
        reset: () => resolve(),
      });
    })));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(conn.closed, false);
    const r = await new Promise<H2Fields>((resolve) => conn.request(get, true, { headers: (s, h) => (s.reset(), resolve(h)), data() {}, trailers() {}, reset() {} }));
    assert.equal(field(r, ':status'), '200');
  } finally {
    conn.destroy();
    server.close();
  }
});

test('never-indexed fields stay never-indexed through the lean relay (RFC 7541 §7.1.3), both directions', async () => {
  let seenByServer: unknown;
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    seenByServer = (headers as Record<symbol, unknown>)[http2.sensitiveHeaders];
    stream.respond({ ':status': 200, 'x-token': 'reply-secret', [http2.sensitiveHeaders]: ['x-token'] });
    stream.end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const relay = await startLeanRelay({ listenHost: '127.0.0.1', listenPort: 0, nextHost: '127.0.0.1', nextPort: (server.address() as AddressInfo).port });
  const session = http2.connect(`http://127.0.0.1:${relay.port}`);
  try {
    const r = await nodeRequest(session, { ':path': '/', 'x-secret': 'request-secret', [http2.sensitiveHeaders]: ['x-secret'] });
    assert.deepEqual(seenByServer, ['x-secret']);
    assert.deepEqual((r.headers as Record<symbol, unknown>)[http2.sensitiveHeaders], ['x-token']);
  } finally {
    session.destroy();
    await relay.close();
    server.close();
  }
});
