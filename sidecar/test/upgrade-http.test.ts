/**
 * HTTP/1.1 Upgrade (WebSocket) over real sockets: a raw-socket client (no WebSocket library)
 * through an outbound and an inbound listener, as across a sidecar pair, to a server that answers
 * 101 and then echoes every byte. Also: a non-101 answer comes back as a normal response, and
 * CONNECT is refused with 405.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { silentLogger } from '@weft/api';
import type { ProxyConfig } from '../src/config';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import { cluster, endpoint, listener, proxyConfig, route, routeTable, sendRaw, vhost } from './fixtures';

/** An app whose `upgrade` handler answers 101 and echoes, or refuses with 403 when the path is /deny. */
async function upgradeApp(): Promise<{ port: number; seen: http.IncomingHttpHeaders[]; close: () => Promise<void> }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => res.end('plain'));
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    seen.push(req.headers);
    sockets.add(socket);
    if (req.url === '/deny') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope');
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n');
    if (head.length) socket.write(head);
    socket.on('data', (d) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** An outbound listener sending to the inbound one (with x-weft-target-port), which sends to the app. */
async function sidecarPair(appPort: number): Promise<{ port: number; close: () => Promise<void> }> {
  const pool = new UpstreamPool();
  let inboundPort = 0;
  const cfg = (): ProxyConfig =>
    proxyConfig({
      routeTables: [routeTable('outbound', [vhost('app', ['app', 'app:80'], [route('default', 'peer')])])],
      clusters: [cluster('peer'), cluster('app-local')],
      endpoints: { peer: [endpoint('127.0.0.1', inboundPort, { targetPort: appPort })], 'app-local': [endpoint('127.0.0.1', appPort)] },
    });
  const inbound = new HttpProxyListener(
    listener('inbound', { direction: 'inbound', routes: { kind: 'inline', table: routeTable('inbound', [vhost('inbound', ['*'], [route('default', 'app-local')])]) } }),
    cfg,
    { log: silentLogger, pool },
  );
  await inbound.listen();
  inboundPort = inbound.address()!.port;
  const outbound = new HttpProxyListener(listener('outbound'), cfg, { log: silentLogger, pool });
  await outbound.listen();
  return {
    port: outbound.address()!.port,
    close: async () => {
      for (const l of [outbound, inbound]) l.destroy();
      await Promise.all([outbound.close(), inbound.close()]);
      pool.destroy();
    },
  };
}

const HANDSHAKE = (path: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** A masked WebSocket text frame carrying `text` (as a browser sends it). */
function maskedFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Reads from `socket` until `want` bytes (or a head ending in CRLFCRLF when `want` is 'head'). */
function readUntil(socket: Socket, buffered: { data: Buffer }, want: number | 'head'): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const end = want === 'head' ? buffered.data.indexOf('\r\n\r\n') : want <= buffered.data.length ? want : -1;
      if (end < 0) return false;
      const cut = want === 'head' ? end + 4 : end;
      const out = buffered.data.subarray(0, cut);
      buffered.data = buffered.data.subarray(cut);
      resolve(out);
      return true;
    };
    if (check()) return;
    const onData = (): void => {
      if (check()) {
        socket.off('data', collect);
      }
    };
    const collect = (d: Buffer): void => {
      buffered.data = Buffer.concat([buffered.data, d]);
      onData();
    };
    socket.on('data', collect);
    socket.once('error', reject);
  });
}

test('a WebSocket handshake crosses an outbound and an inbound listener; frames echo byte for byte both ways', async (t) => {
  const app = await upgradeApp();
  const pair = await sidecarPair(app.port);
  t.after(async () => { await pair.close(); await app.close(); });
  const socket = net.connect(pair.port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise((resolve) => socket.once('connect', resolve));
  const buffered = { data: Buffer.alloc(0) };
  socket.write(HANDSHAKE('/chat'));
  const head = (await readUntil(socket, buffered, 'head')).toString();
  assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(head, /\r\nupgrade: websocket\r\n/i);
  assert.match(head, /\r\nconnection: upgrade\r\n/i);
  assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
  for (const text of ['hello', 'a second frame', 'x'.repeat(100)]) {
    const frame = maskedFrame(text);
    socket.write(frame);
    assert.deepEqual(await readUntil(socket, buffered, frame.length), frame);
  }
  // The app saw the upgrade headers (kept for upgrade requests) and the WebSocket ones.
  assert.equal(app.seen[0]!.upgrade, 'websocket');
  assert.equal(app.seen[0]!.connection, 'upgrade');
  assert.equal(app.seen[0]!['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
  assert.equal(app.seen[0]!['x-weft-target-port'], undefined, 'the inbound listener does not show the routing header to the app');
  // Closing one side closes the tunnel end to end.
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.end();
  await closed;
});

test('a non-101 answer to an upgrade request is passed back as a normal response, then the connection closes', async (t) => {
  const app = await upgradeApp();
  const pair = await sidecarPair(app.port);
  t.after(async () => { await pair.close(); await app.close(); });
  const raw = await sendRaw(pair.port, HANDSHAKE('/deny'));
  assert.match(raw, /^HTTP\/1\.1 403 Forbidden\r\n/);
  assert.match(raw, /\r\nconnection: close\r\n/i);
  assert.ok(raw.endsWith('\r\n\r\nnope'), raw);
});

test('an upgrade to an app that does not upgrade gets its plain response', async (t) => {
  const plain = http.createServer((_req, res) => res.end('plain'));
  await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
  const pair = await sidecarPair((plain.address() as AddressInfo).port);
  t.after(async () => { await pair.close(); plain.closeAllConnections(); plain.close(); });
  const raw = await sendRaw(pair.port, HANDSHAKE('/'));
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(raw.endsWith('plain'), raw);
});

test('an upgrade request with a body is refused 400; CONNECT is refused 405; neither reaches the app', async (t) => {
  const app = await upgradeApp();
  const pair = await sidecarPair(app.port);
  t.after(async () => { await pair.close(); await app.close(); });
  const withBody = await sendRaw(pair.port, 'POST / HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\nabc');
  assert.match(withBody, /^HTTP\/1\.1 400 /);
  const connect = await sendRaw(pair.port, 'CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\n\r\n');
  assert.match(connect, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
  assert.match(connect, /connection: close/i);
  assert.equal(app.seen.length, 0);
});
