import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '@weft/api';
import { TARGET_PORT_HEADER } from '../src/config';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import { grpcTimeoutMs } from '../src/listener-h2';
import { prefaceMatch } from '../src/detect-protocol';
import { cluster, directResponse, header, listener, proxyConfig, route, routeTable, send, startProxy, startUpstream, vhost, type TestProxy, type Upstream } from './fixtures';

// ---- a gRPC service with raw-Buffer messages (e2e/test/mesh.ts's pattern) --------------------

const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const echoService: grpc.ServiceDefinition = {
  Unary: { path: '/weft.test.Echo/Unary', requestStream: false, responseStream: false, ...raw },
  Fail: { path: '/weft.test.Echo/Fail', requestStream: false, responseStream: false, ...raw },
  Slow: { path: '/weft.test.Echo/Slow', requestStream: false, responseStream: false, ...raw },
  Count: { path: '/weft.test.Echo/Count', requestStream: false, responseStream: true, ...raw },
  Join: { path: '/weft.test.Echo/Join', requestStream: true, responseStream: false, ...raw },
  Chat: { path: '/weft.test.Echo/Chat', requestStream: true, responseStream: true, ...raw },
};
const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');
type Echo = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** What the gRPC app saw of each call's metadata, and the deadlines of slow calls. */
const seen: grpc.Metadata[] = [];
const deadlines: number[] = [];

async function startGrpcApp(): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(echoService, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push(call.metadata);
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]));
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb({ code: grpc.status.NOT_FOUND, details: 'no such widget: 42 – gone' }),
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      // grpc-js takes grpc-timeout out of the metadata and turns it into the call's deadline.
      deadlines.push(Number(call.getDeadline()) - Date.now());
      const timer = setTimeout(() => cb(null, Buffer.from('late')), 2000);
      call.on('cancelled', () => clearTimeout(timer));
    },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 1; i <= n; i++) call.write(Buffer.from(`item-${i}`));
      call.end();
    },
    Join: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (b: Buffer) => parts.push(b));
      call.on('end', () => cb(null, Buffer.concat(parts)));
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (b: Buffer) => call.write(Buffer.from(b.toString().toUpperCase())));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { server, port };
}

/** A plain h2c app: echoes the body, and tells what it saw in response headers. */
async function startH2App(): Promise<{ server: http2.Http2Server; port: number; requests: http2.IncomingHttpHeaders[] }> {
  const requests: http2.IncomingHttpHeaders[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    requests.push(headers);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 201, 'content-type': 'text/plain', 'x-app': 'h2' });
      stream.end(`h2:${Buffer.concat(chunks).toString()}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, requests };
}

// ---- one sidecar pair: outbound → inbound → apps --------------------------------------------

let grpcApp: { server: grpc.Server; port: number };
let h2App: Awaited<ReturnType<typeof startH2App>>;
let h1App: Upstream;
let inbound: TestProxy;
let outbound: TestProxy;
let client: Echo;

before(async () => {
  grpcApp = await startGrpcApp();
  h2App = await startH2App();
  h1App = await startUpstream('h1');
  const apps = { grpc: grpcApp.port, h2: h2App.port, h1: h1App.port };
  const names = Object.keys(apps) as (keyof typeof apps)[];
  inbound = await startProxy(
    proxyConfig({
      routeTables: [
        routeTable('inbound', [
          vhost('inbound', ['*'], names.map((n) => route(n, `inbound|${apps[n]}||`, { headers: [header.exact(TARGET_PORT_HEADER, String(apps[n]))] }))),
        ]),
      ],
      clusters: names.map((n) => cluster(`inbound|${apps[n]}||`, { discovery: 'STATIC', staticEndpoints: [{ address: '127.0.0.1', port: apps[n], weight: 1, healthy: true }] })),
    }),
    listener('virtualInbound', { direction: 'inbound', routes: { kind: 'rds', name: 'inbound' } }),
  );
  const peer = (n: keyof typeof apps) => [{ address: '127.0.0.1', port: inbound.port, weight: 1, healthy: true, targetPort: apps[n] }];
  outbound = await startProxy(
    proxyConfig({
      routeTables: [
        routeTable('outbound', [
          vhost('echo', ['echo.test:50051'], [route('echo', 'echo', { timeoutMs: 5000 })]),
          vhost('plain', ['plain.test'], [route('plain', 'plain')]),
          vhost('h1', ['h1.test'], [route('h1', 'h1')]),
        ]),
      ],
      clusters: [cluster('echo'), cluster('plain'), cluster('h1')],
      endpoints: { echo: peer('grpc'), plain: peer('h2'), h1: peer('h1') },
    }),
  );
  client = new EchoClient(`127.0.0.1:${outbound.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'echo.test:50051' }) as unknown as Echo;
});

after(async () => {
  client.close();
  await Promise.all([outbound.close(), inbound.close(), h1App.close()]);
  grpcApp.server.forceShutdown();
  h2App.server.close();
});

const unary = (method: string, req: Buffer, options: grpc.CallOptions = {}, md = new grpc.Metadata()): Promise<Buffer> =>
  new Promise((resolve, reject) => client[method]!(req, md, options, (e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r))));

test('gRPC unary through the sidecar pair: the payload arrives and returns intact, routed by :authority', async () => {
  const reply = await unary('Unary', Buffer.from('hello'));
  assert.equal(reply.toString(), 'echo:hello');
  const md = seen.at(-1)!;
  assert.equal(md.get(TARGET_PORT_HEADER).length, 0, 'the app never sees the target-port header');
  assert.equal(md.get('x-forwarded-for')[0], '127.0.0.1, 127.0.0.1');
  assert.ok(md.get('x-request-id')[0]);
});

test('gRPC server streaming: every message in order, then OK', async () => {
  const call = client.Count!(Buffer.from('5')) as grpc.ClientReadableStream<Buffer>;
  const got: string[] = [];
  for await (const m of call) got.push((m as Buffer).toString());
  assert.deepEqual(got, ['item-1', 'item-2', 'item-3', 'item-4', 'item-5']);
});

test('gRPC client streaming: the messages are joined by the app', async () => {
  const reply = await new Promise<Buffer>((resolve, reject) => {
    const call = client.Join!((e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r))) as grpc.ClientWritableStream<Buffer>;
    for (const p of ['a', 'b', 'c', 'd']) call.write(Buffer.from(p));
    call.end();
  });
  assert.equal(reply.toString(), 'abcd');
});

test('gRPC bidi streaming: each message answered as it is sent', async () => {
  const call = client.Chat!() as grpc.ClientDuplexStream<Buffer, Buffer>;
  const got: string[] = [];
  for (const word of ['one', 'two', 'three']) {
    const answered = new Promise<Buffer>((resolve) => call.once('data', resolve));
    call.write(Buffer.from(word));
    got.push((await answered).toString());
  }
  call.end();
  await new Promise((resolve) => call.on('status', resolve));
  assert.deepEqual(got, ['ONE', 'TWO', 'THREE']);
});

test('a non-OK status and its message arrive intact (trailers-only response passed through)', async () => {
  await assert.rejects(unary('Fail', Buffer.from('x')), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.NOT_FOUND);
    assert.equal(e.details, 'no such widget: 42 – gone');
    return true;
  });
});

test('a deadline shorter than a slow handler: DEADLINE_EXCEEDED within deadline + 100 ms, grpc-timeout propagated', async () => {
  const before = deadlines.length;
  const started = Date.now();
  await assert.rejects(unary('Slow', Buffer.from('x'), { deadline: Date.now() + 300 }), (e: grpc.ServiceError) => {
    assert.equal(e.code, grpc.status.DEADLINE_EXCEEDED);
    return true;
  });
  const took = Date.now() - started;
  assert.ok(took >= 290 && took < 400, `took ${took} ms`);
  const left = deadlines[before]!;
  assert.ok(left > 0 && left <= 300, `the app's deadline was ${left} ms away`);
});

test('the sidecar enforces grpc-timeout itself: DEADLINE_EXCEEDED from the proxy when the client does not time out', async () => {
  // A raw h2 client sends grpc-timeout but keeps waiting: the answer must come from the sidecar.
  const session = http2.connect(`http://127.0.0.1:${outbound.port}`);
  after(() => session.destroy());
  const started = Date.now();
  const stream = session.request({
    ':method': 'POST',
    ':path': '/weft.test.Echo/Slow',
    ':authority': 'echo.test:50051',
    'content-type': 'application/grpc',
    te: 'trailers',
    'grpc-timeout': '200m',
  });
  stream.end(Buffer.from([0, 0, 0, 0, 1, 0x78]));
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
  stream.resume();
  assert.equal(headers['grpc-status'], '4');
  const took = Date.now() - started;
  assert.ok(took >= 190 && took < 300, `took ${took} ms`);
});

test('an HTTP/1.1 request on the same listeners is detected and served as before', async () => {
  const r = await send(outbound.port, { host: 'h1.test', method: 'POST', body: 'hi' });
  assert.equal(r.status, 200);
  assert.equal(r.body, 'h1');
  const got = h1App.received.at(-1)!;
  assert.equal(got.body, 'hi');
  assert.equal(got.headers[TARGET_PORT_HEADER], undefined);
});

test('h2c with a plain body via Node’s http2 client: forwarded over HTTP/2, status, headers and body intact', async () => {
  const session = http2.connect(`http://127.0.0.1:${outbound.port}`);
  after(() => session.destroy());
  const stream = session.request({ ':method': 'POST', ':path': '/a/../b?q=1', ':authority': 'plain.test', 'x-custom': 'yes' });
  stream.end('ping');
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  assert.equal(headers[':status'], 201);
  assert.equal(headers['x-app'], 'h2');
  assert.equal(Buffer.concat(chunks).toString(), 'h2:ping');
  const seenByApp = h2App.requests.at(-1)!;
  assert.equal(seenByApp[':path'], '/b?q=1', 'the normalized path');
  assert.equal(seenByApp[':authority'], 'plain.test');
  assert.equal(seenByApp['x-custom'], 'yes');
  assert.equal(seenByApp[TARGET_PORT_HEADER], undefined);
});

test('one upstream HTTP/2 session per endpoint is reused across streams', async () => {
  let connections = 0;
  const counter = (s: net.Socket): void => void (s && connections++);
  // The inbound listener accepts every connection the outbound side opens to it.
  const server = (inbound.listener as unknown as { server: { front: net.Server } }).server.front;
  server.on('connection', counter);
  after(() => server.off('connection', counter));
  await Promise.all(Array.from({ length: 10 }, (_, i) => unary('Unary', Buffer.from(String(i)))));
  assert.equal(connections, 0, 'no new connection: the session opened by earlier tests is shared');
});

test('no route for an h2 request: 404; for a gRPC request: UNIMPLEMENTED', async () => {
  const session = http2.connect(`http://127.0.0.1:${outbound.port}`);
  after(() => session.destroy());
  const stream = session.request({ ':path': '/', ':authority': 'nowhere.test' });
  stream.end();
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
  stream.resume();
  assert.equal(headers[':status'], 404);
  const other = new EchoClient(`127.0.0.1:${outbound.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'nowhere.test' }) as unknown as Echo;
  after(() => other.close());
  await assert.rejects(
    new Promise((resolve, reject) => other.Unary!(Buffer.from('x'), (e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r)))),
    (e: grpc.ServiceError) => e.code === grpc.status.UNIMPLEMENTED,
  );
});

test('detection: the preface is matched byte by byte; a silent connection is closed at the detection bound', async () => {
  assert.equal(prefaceMatch(Buffer.from('PRI * HT')), 8);
  assert.equal(prefaceMatch(Buffer.from('POST / HTTP/1.1')), -1);
  assert.equal(grpcTimeoutMs('200m'), 200);
  assert.equal(grpcTimeoutMs('3S'), 3000);
  assert.equal(grpcTimeoutMs('5u'), 1);
  assert.equal(grpcTimeoutMs('123456789m'), undefined);
  // A short idle timeout bounds detection (the 5 s default would slow the suite).
  const l = new HttpProxyListener(listener('quiet'), () => proxyConfig({}), { log: silentLogger, pool: new UpstreamPool(), limits: { idleTimeoutMs: 200 } });
  await l.listen();
  after(() => l.destroy());
  const started = Date.now();
  const socket = net.connect(l.address()!.port, '127.0.0.1');
  socket.write('PRI * HT'); // a prefix only: undecided
  await new Promise((resolve) => socket.on('close', resolve));
  const took = Date.now() - started;
  assert.ok(took >= 190 && took < 1000, `closed after ${took} ms`);
});

test('close() drains HTTP/2 too: an open h2 session gets GOAWAY and close() resolves once it is gone', async () => {
  const config = proxyConfig({ routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('hi', directResponse(200, 'hi'))])])] });
  const l = new HttpProxyListener(listener('draining'), () => config, { log: silentLogger, pool: new UpstreamPool() });
  await l.listen();
  after(() => l.destroy());
  const session = http2.connect(`http://127.0.0.1:${l.address()!.port}`);
  after(() => session.destroy());
  const stream = session.request({ ':path': '/', ':authority': 'any' });
  stream.end();
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), 'hi');
  const goaway = new Promise((resolve) => session.once('goaway', resolve));
  const started = Date.now();
  await l.close();
  await goaway;
  assert.ok(Date.now() - started < 1000);
});
