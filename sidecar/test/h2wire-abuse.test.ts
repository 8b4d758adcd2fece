/**
 * The lean HTTP/2 server against a peer that breaks the protocol or abuses it (a hand-driven raw
 * socket, RawPeer): each violation gets the GOAWAY or RST_STREAM code docs/h2-lean.md documents,
 * and a connection error closes the socket.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  H2_COMPRESSION_ERROR,
  H2_ENHANCE_YOUR_CALM,
  H2_FLOW_CONTROL_ERROR,
  H2_FRAME_SIZE_ERROR,
  H2_NO_ERROR,
  H2_PROTOCOL_ERROR,
  H2_REFUSED_STREAM,
  H2_STREAM_CLOSED,
} from '../src/h2wire-errors';
import {
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FRAME_CONTINUATION,
  FRAME_DATA,
  FRAME_HEADERS,
  FRAME_PING,
  FRAME_RST_STREAM,
  FRAME_SETTINGS,
  FRAME_WINDOW_UPDATE,
} from '../src/h2wire-frame';
import { field, RawPeer, startLeanServer, type LeanServer } from './h2wire-fixtures';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

async function withServer(opts: Parameters<typeof startLeanServer>[0], fn: (s: LeanServer) => Promise<void>): Promise<void> {
  const server = await startLeanServer(opts);
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

test('a bad client preface: GOAWAY(PROTOCOL_ERROR) and the socket closed', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port, false);
    peer.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_PROTOCOL_ERROR);
    assert.equal(g?.debug, 'bad-preface');
    assert.ok(await peer.closed());
    assert.equal(server.closeErrors[0]?.reason, 'bad-preface');
  });
});

test('DATA on stream 0: GOAWAY(PROTOCOL_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_DATA, 0, 0, Buffer.from('x'));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_PROTOCOL_ERROR);
    assert.equal(g?.debug, 'data-stream-0');
    assert.ok(await peer.closed());
  });
});

test('DATA on a closed stream: RST_STREAM(STREAM_CLOSED); the connection goes on', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/download/3', true);
    await peer.waitFor((f) => f.streamId === 1 && (f.flags & FLAG_END_STREAM) !== 0);
    peer.frame(FRAME_DATA, 0, 1, Buffer.from('late'));
    assert.equal(await peer.rst(1), H2_STREAM_CLOSED);
    // Still usable: a new stream is answered.
    peer.request(3, '/download/5', true);
    const h = await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 3);
    assert.ok(h);
    assert.equal(field(peer.decoder.decode(h.payload), ':status'), '200');
  });
});

test('DATA on a stream never opened: GOAWAY(PROTOCOL_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_DATA, 0, 7, Buffer.from('x'));
    assert.equal((await peer.goaway())?.code, H2_PROTOCOL_ERROR);
  });
});

test('window overflow: connection WINDOW_UPDATE past 2^31-1 is GOAWAY(FLOW_CONTROL_ERROR), a stream one RST_STREAM', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/echo');
    peer.frame(FRAME_WINDOW_UPDATE, 0, 1, u32(0x7fffffff));
    assert.equal(await peer.rst(1), H2_FLOW_CONTROL_ERROR);
    peer.frame(FRAME_WINDOW_UPDATE, 0, 0, u32(0x7fffffff));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_FLOW_CONTROL_ERROR);
    assert.equal(g?.lastStreamId, 1);
  });
});

test('DATA past the stream window the server advertised: RST_STREAM(FLOW_CONTROL_ERROR)', async () => {
  await withServer({ initialWindowSize: 1000 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_SETTINGS, 1, 0); // ACK the server's SETTINGS: its 1000-octet window is in force
    await new Promise((r) => setTimeout(r, 50));
    peer.request(1, '/download/1');
    peer.frame(FRAME_DATA, 0, 1, Buffer.alloc(1001));
    assert.equal(await peer.rst(1), H2_FLOW_CONTROL_ERROR);
  });
});

test('a frame over SETTINGS_MAX_FRAME_SIZE: GOAWAY(FRAME_SIZE_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/echo');
    peer.frame(FRAME_DATA, 0, 1, Buffer.alloc(16385));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_FRAME_SIZE_ERROR);
    assert.ok(await peer.closed());
  });
});

test('CONTINUATION without HEADERS: GOAWAY(PROTOCOL_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, peer.encoder.encode(['x', 'y']));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_PROTOCOL_ERROR);
    assert.equal(g?.debug, 'unexpected-continuation');
  });
});

test('a header block split over CONTINUATION frames is assembled; an endless one is GOAWAY(ENHANCE_YOUR_CALM)', async () => {
  await withServer({ maxContinuations: 16 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    const block = peer.encoder.encode([':method', 'GET', ':scheme', 'http', ':path', '/download/2', ':authority', 'x', 'x-long', 'v'.repeat(300)]);
    peer.frame(FRAME_HEADERS, FLAG_END_STREAM, 1, block.subarray(0, 10));
    peer.frame(FRAME_CONTINUATION, 0, 1, block.subarray(10, 100));
    peer.frame(FRAME_CONTINUATION, FLAG_END_HEADERS, 1, block.subarray(100));
    const h = await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 1);
    assert.equal(field(peer.decoder.decode(h!.payload), ':status'), '200');
    // CONTINUATION flood (CVE-2024-27316 class): empty CONTINUATION frames without end.
    peer.frame(FRAME_HEADERS, 0, 3, peer.encoder.encode([':method', 'GET']));
    for (let i = 0; i < 40; i++) peer.frame(FRAME_CONTINUATION, 0, 3, Buffer.alloc(0));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_ENHANCE_YOUR_CALM);
    assert.equal(g?.debug, 'continuation-flood');
  });
});

test('a frame between HEADERS and its CONTINUATION: GOAWAY(PROTOCOL_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_HEADERS, 0, 1, peer.encoder.encode([':method', 'GET']));
    peer.frame(FRAME_PING, 0, 0, Buffer.alloc(8));
    assert.equal((await peer.goaway())?.code, H2_PROTOCOL_ERROR);
  });
});

test('Rapid Reset: streams reset by the client before their response, past the limit, get GOAWAY(ENHANCE_YOUR_CALM)', async () => {
  await withServer({ maxPrematureResets: 20 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    for (let id = 1; id < 2 * 40; id += 2) {
      peer.request(id, '/echo');
      peer.frame(FRAME_RST_STREAM, 0, id, u32(8));
    }
    const g = await peer.goaway();
    assert.equal(g?.code, H2_ENHANCE_YOUR_CALM);
    assert.equal(g?.debug, 'rapid-reset');
    assert.equal(server.closeErrors[0]?.reason, 'rapid-reset');
  });
});

test('resets below the limit are answered normally (no GOAWAY)', async () => {
  await withServer({ maxPrematureResets: 20 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    for (let id = 1; id < 2 * 10; id += 2) {
      peer.request(id, '/echo');
      peer.frame(FRAME_RST_STREAM, 0, id, u32(8));
    }
    peer.request(101, '/download/4', true);
    assert.ok(await peer.waitFor((f) => f.type === FRAME_DATA && f.streamId === 101));
    assert.equal(await peer.goaway(200), undefined);
  });
});

test('a PING flood the peer never reads the answers of: GOAWAY(ENHANCE_YOUR_CALM)', async () => {
  await withServer({ maxQueuedControlFrames: 100 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    const ping = Buffer.alloc(17);
    ping.writeUIntBE(8, 0, 3);
    ping[3] = FRAME_PING;
    peer.send(Buffer.concat(Array.from({ length: 500 }, () => ping)));
    const g = await peer.goaway();
    assert.equal(g?.code, H2_ENHANCE_YOUR_CALM);
    assert.equal(g?.debug, 'control-flood');
  });
});

test('PINGs are answered with the same payload', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_PING, 0, 0, Buffer.from('12345678'));
    const ack = await peer.waitFor((f) => f.type === FRAME_PING && f.flags === 1);
    assert.equal(ack?.payload.toString(), '12345678');
  });
});

test('SETTINGS with too many entries: GOAWAY(ENHANCE_YOUR_CALM); a bad length FRAME_SIZE_ERROR', async () => {
  await withServer({ maxSettings: 4 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(6 * 10));
    assert.equal((await peer.goaway())?.code, H2_ENHANCE_YOUR_CALM);
    const peer2 = await RawPeer.connect(server.port);
    peer2.frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(7));
    assert.equal((await peer2.goaway())?.code, H2_FRAME_SIZE_ERROR);
  });
});

test('garbage HPACK: GOAWAY(COMPRESSION_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
    assert.equal((await peer.goaway())?.code, H2_COMPRESSION_ERROR);
  });
});

test('a malformed request (upper-case field name, connection header): RST_STREAM(PROTOCOL_ERROR)', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/echo', true, ['X-Upper', '1']);
    assert.equal(await peer.rst(1), H2_PROTOCOL_ERROR);
    peer.request(3, '/echo', true, ['connection', 'close']);
    assert.equal(await peer.rst(3), H2_PROTOCOL_ERROR);
  });
});

test('a header list over maxHeaderListSize is answered 431; the connection goes on', async () => {
  await withServer({ maxHeaderListSize: 1024 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/download/1', true, ['x-big', 'v'.repeat(2000)]);
    const h = await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 1);
    assert.equal(field(peer.decoder.decode(h!.payload), ':status'), '431');
    peer.request(3, '/download/1', true);
    const h3 = await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 3);
    assert.equal(field(peer.decoder.decode(h3!.payload), ':status'), '200');
  });
});

test('streams past MAX_CONCURRENT_STREAMS: RST_STREAM(REFUSED_STREAM); past maxRejectedStreams GOAWAY', async () => {
  await withServer({ maxConcurrentStreams: 2, maxRejectedStreams: 3 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/echo');
    peer.request(3, '/echo');
    peer.request(5, '/echo');
    assert.equal(await peer.rst(5), H2_REFUSED_STREAM);
    for (let id = 7; id <= 13; id += 2) peer.request(id, '/echo');
    const g = await peer.goaway();
    assert.equal(g?.code, H2_ENHANCE_YOUR_CALM);
  });
});

test('the idle timeout: GOAWAY(NO_ERROR) after no frame either way, socket closed', async () => {
  await withServer({ idleTimeoutMs: 200 }, async (server) => {
    const peer = await RawPeer.connect(server.port);
    const t0 = Date.now();
    const g = await peer.goaway(3000);
    assert.equal(g?.code, H2_NO_ERROR);
    assert.equal(g?.debug, 'idle');
    assert.ok(Date.now() - t0 >= 150);
    assert.ok(await peer.closed());
  });
});

test('graceful close: GOAWAY(NO_ERROR, last stream), the open stream still completes, later streams refused', async () => {
  await withServer({}, async (server) => {
    const peer = await RawPeer.connect(server.port);
    peer.request(1, '/echo');
    await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 1);
    server.connections[0]!.close();
    const g = await peer.goaway();
    assert.deepEqual([g?.code, g?.lastStreamId], [H2_NO_ERROR, 1]);
    peer.request(3, '/echo', true);
    assert.equal(await peer.rst(3), H2_REFUSED_STREAM);
    peer.frame(FRAME_DATA, FLAG_END_STREAM, 1, Buffer.from('bye'));
    const trailers = await peer.waitFor((f) => f.type === FRAME_HEADERS && f.streamId === 1 && (f.flags & FLAG_END_STREAM) !== 0);
    assert.ok(trailers);
    const echoed = peer.frames.filter((f) => f.type === FRAME_DATA && f.streamId === 1).map((f) => f.payload.toString()).join('');
    assert.equal(echoed, 'bye');
    assert.ok(await peer.closed());
  });
});
