/**
 * The sidecar's minimal gRPC streaming client (`grpc-stream-h2.ts`) against real servers on
 * 127.0.0.1: a node:http2 server playing the gRPC server, a raw TCP server for a peer that stops
 * answering, and `@grpc/grpc-js`'s server for interoperability.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { generateKeyPairSync } from 'node:crypto';
import { derName, OID, signCertificate } from '@weft/api';
import { GrpcBidiCall, GrpcCallError, GrpcStatus, grpcUnary } from '../src/grpc-stream-h2';

const text = { serialize: (s: string) => Buffer.from(s), deserialize: (b: Buffer) => b.toString() };
const frame = (payload: string | Buffer, flag = 0): Buffer => {
  const p = Buffer.from(payload);
  const f = Buffer.alloc(5 + p.length);
  f[0] = flag;
  f.writeUInt32BE(p.length, 1);
  p.copy(f, 5);
  return f;
};

async function h2Server(onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void): Promise<{ address: string; close(): void }> {
  const server = http2.createServer();
  server.on('stream', onStream);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const s of sessions) s.destroy();
      server.close();
    },
  };
}

/** Collects a call's events until it ends or fails. */
function outcome(call: GrpcBidiCall<string, string>): Promise<{ messages: string[]; error?: GrpcCallError }> {
  const messages: string[] = [];
  call.on('data', (m: string) => messages.push(m));
  return new Promise((resolve) => {
    call.on('end', () => resolve({ messages }));
    call.on('error', (error: GrpcCallError) => resolve({ messages, error }));
  });
}

test('messages go both ways in 5-byte prefixed frames, split or batched in any way, and grpc-status 0 ends the call', async (t) => {
  const seen: { headers?: http2.IncomingHttpHeaders; body: Buffer[] } = { body: [] };
  const srv = await h2Server((s, h) => {
    seen.headers = h;
    s.on('data', (d: Buffer) => {
      seen.body.push(d);
      if (Buffer.concat(seen.body).length < frame('one').length + frame('two').length) return;
      s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      // Three messages: the first split across writes, the next two in one write.
      const all = Buffer.concat([frame('alpha'), frame('beta'), frame('')]);
      s.write(all.subarray(0, 3));
      s.write(all.subarray(3, 7));
      s.write(all.subarray(7));
      s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
      s.end();
    });
  });
  t.after(() => srv.close());
  const call = new GrpcBidiCall({ address: srv.address, path: '/pkg.Svc/Stream', ...text });
  const done = outcome(call);
  call.write('one');
  call.write('two');
  const { messages, error } = await done;
  assert.equal(error, undefined);
  assert.deepEqual(messages, ['alpha', 'beta', '']);
  assert.equal(seen.headers![':method'], 'POST');
  assert.equal(seen.headers![':path'], '/pkg.Svc/Stream');
  assert.equal(seen.headers!['content-type'], 'application/grpc');
  assert.equal(seen.headers!.te, 'trailers');
  assert.deepEqual(Buffer.concat(seen.body), Buffer.concat([frame('one'), frame('two')]));
  assert.equal(call.writableEnded, true);
});

test('a non-zero grpc-status fails the call with its code and the percent-decoded grpc-message, in trailers or trailers-only', async (t) => {
  const srv = await h2Server((s, h) => {
    if (h[':path'] === '/only') {
      s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'not%20yours' }, { endStream: true });
      return;
    }
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    s.write(frame('partial'));
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '14', 'grpc-message': 'control plane shutting down' }));
    s.end();
  });
  t.after(() => srv.close());
  const trailers = await outcome(new GrpcBidiCall({ address: srv.address, path: '/x', ...text }));
  assert.deepEqual(trailers.messages, ['partial']);
  assert.equal(trailers.error?.status, GrpcStatus.UNAVAILABLE);
  assert.equal(trailers.error?.details, 'control plane shutting down');
  assert.equal(trailers.error?.code, 'GRPC_CALL_FAILED');
  const only = await outcome(new GrpcBidiCall({ address: srv.address, path: '/only', ...text }));
  assert.equal(only.error?.status, 7);
  assert.equal(only.error?.details, 'not yours');
});

test('a server that is not there, an HTTP error, a compressed or oversized message each fail the call with the matching status', async (t) => {
  const closed = net.createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const deadAddress = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
  closed.close();
  const refused = await outcome(new GrpcBidiCall({ address: deadAddress, path: '/x', ...text }));
  assert.equal(refused.error?.status, GrpcStatus.UNAVAILABLE);
  assert.match(refused.error!.details, /ECONNREFUSED/);

  const srv = await h2Server((s, h) => {
    if (h[':path'] === '/404') return s.respond({ ':status': 404 }, { endStream: true });
    s.respond({ ':status': 200, 'content-type': 'application/grpc' });
    if (h[':path'] === '/compressed') s.write(frame('zz', 1));
    else s.write(frame(Buffer.alloc(2048)));
  });
  t.after(() => srv.close());
  const notFound = await outcome(new GrpcBidiCall({ address: srv.address, path: '/404', ...text }));
  assert.equal(notFound.error?.status, 12); // UNIMPLEMENTED, gRPC's mapping of HTTP 404
  const compressed = await outcome(new GrpcBidiCall({ address: srv.address, path: '/compressed', ...text }));
  assert.equal(compressed.error?.status, GrpcStatus.INTERNAL);
  const big = await outcome(new GrpcBidiCall({ address: srv.address, path: '/big', ...text, maxMessageBytes: 1024 }));
  assert.equal(big.error?.status, GrpcStatus.RESOURCE_EXHAUSTED);
  assert.deepEqual(big.messages, []);
});

test('a peer that completes the HTTP/2 handshake but stops answering PINGs is dropped after the keepalive timeout', async (t) => {
  // Raw TCP: answer the client's preface with an empty SETTINGS and a SETTINGS ACK, then ignore
  // everything (PINGs included), as a hung control plane behind a live TCP connection would.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((sock) => {
    sockets.add(sock);
    sock.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0]));
    sock.on('data', () => undefined);
    sock.on('error', () => undefined);
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const started = Date.now();
  const call = new GrpcBidiCall({ address: `127.0.0.1:${(silent.address() as AddressInfo).port}`, path: '/x', ...text, keepaliveMs: 100, keepaliveTimeoutMs: 150 });
  const { error } = await outcome(call);
  const took = Date.now() - started;
  assert.equal(error?.status, GrpcStatus.UNAVAILABLE);
  assert.match(error!.details, /keepalive/);
  assert.ok(took >= 240 && took < 2000, `dropped after ${took} ms`);
});

test('cancel() resets the stream, which the server sees, and no event follows; it is idempotent', async (t) => {
  let serverSaw: number | undefined;
  const reset = new Promise<void>((resolve) => {
    void h2Server((s) => {
      s.respond({ ':status': 200, 'content-type': 'application/grpc' });
      s.on('close', () => {
        serverSaw = s.rstCode;
        resolve();
      });
      s.on('error', () => undefined);
      s.write(frame('hello'));
    }).then((srv) => {
      t.after(() => srv.close());
      const call = new GrpcBidiCall({ address: srv.address, path: '/x', ...text });
      const events: string[] = [];
      call.on('end', () => events.push('end'));
      call.on('error', () => events.push('error'));
      call.on('data', () => {
        call.cancel();
        call.cancel();
        call.write('ignored');
        setTimeout(() => assert.deepEqual(events, []), 50);
      });
    });
  });
  await reset;
  assert.equal(serverSaw, http2.constants.NGHTTP2_CANCEL);
});

test('interoperates with a @grpc/grpc-js server: a bidi stream echoes, and the server ends it with a status', async (t) => {
  const identity = (b: Buffer): Buffer => b;
  const server = new grpc.Server();
  server.addService(
    { Echo: { path: '/test.Echo/Echo', requestStream: true, responseStream: true, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    {
      Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
        call.on('data', (b: Buffer) => {
          if (b.toString() === 'stop') call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'asked to stop' });
          else call.write(Buffer.from(`echo ${b}`));
        });
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  t.after(() => server.forceShutdown());
  const call = new GrpcBidiCall({ address: `127.0.0.1:${port}`, path: '/test.Echo/Echo', ...text });
  const done = outcome(call);
  call.write('a');
  call.write('b');
  call.once('data', () => call.once('data', () => call.write('stop')));
  const { messages, error } = await done;
  assert.deepEqual(messages, ['echo a', 'echo b']);
  assert.equal(error?.status, grpc.status.FAILED_PRECONDITION);
  assert.equal(error?.details, 'asked to stop');
});

/** A self-signed ECDSA certificate for 127.0.0.1, from the same writer the CA uses. */
function selfSigned(): { keyPem: string; certPem: string } {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const cert = signCertificate({ subject: derName([[OID.commonName, 'test']]), publicKey: key, notBefore: new Date(Date.now() - 60e3), notAfter: new Date(Date.now() + 3600e3),
    sans: { ips: [Buffer.of(127, 0, 0, 1)] } }, { selfKey: key });
  return { keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string, certPem: cert.pem };
}

test('unary over TLS against grpc-js: metadata reaches the server, the reply and a refusal status come back; a server the roots do not vouch for is UNAVAILABLE', async (t) => {
  const tlsPair = selfSigned();
  const server = new grpc.Server();
  const seen: string[] = [];
  server.addService({ Sign: { path: '/t.Ca/Sign', requestStream: false, responseStream: false, requestSerialize: Buffer.from, requestDeserialize: (b: Buffer) => b.toString(), responseSerialize: Buffer.from, responseDeserialize: (b: Buffer) => b.toString() } } as any, {
    Sign: (call: grpc.ServerUnaryCall<string, string>, cb: grpc.sendUnaryData<string>) => {
      seen.push(String(call.metadata.get('authorization')[0]));
      if (call.request === 'other') cb({ code: grpc.status.PERMISSION_DENIED, details: 'the token proves a, not b' });
      else cb(null, `signed ${call.request}`);
    },
  });
  const port = await new Promise<number>((r, j) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tlsPair.keyPem), cert_chain: Buffer.from(tlsPair.certPem) }]), (e, p) => (e ? j(e) : r(p))));
  t.after(() => server.forceShutdown());
  const opts = { address: `127.0.0.1:${port}`, path: '/t.Ca/Sign', tls: { ca: tlsPair.certPem }, metadata: { authorization: 'Bearer tok' }, ...text };
  assert.equal(await grpcUnary(opts, 'csr'), 'signed csr');
  assert.deepEqual(seen, ['Bearer tok']);
  await assert.rejects(grpcUnary(opts, 'other'), (e: GrpcCallError) => e.status === GrpcStatus.PERMISSION_DENIED && e.details === 'the token proves a, not b');
  await assert.rejects(grpcUnary({ ...opts, tls: { ca: selfSigned().certPem } }, 'csr'), (e: GrpcCallError) => e.status === GrpcStatus.UNAVAILABLE && /certificate/i.test(e.details));
  assert.equal(seen.length, 2, 'nothing reached the server without a verified handshake');
});
