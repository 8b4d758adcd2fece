/**
 * HTTP/2 abuse limits on a real proxy listener (h2-limits.ts): a raw frame-level client floods it
 * the ways well-behaved clients never would, while an ordinary client on another connection must
 * keep working.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { silentLogger } from '@weft/api';
import { DEFAULT_H2_LIMITS, checkHeaderList } from '../src/h2-limits';
import { DEFAULT_HTTP_LIMITS } from '../src/http-limits';
import { httpRejections } from '../src/http-strict';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import type { ProxyConfig } from '../src/config';
import { cluster, directResponse, listener, proxyConfig, route, routeTable, vhost } from './fixtures';
import { FRAME, RawH2Client, frame, h2Send, requestBlock, startH2App, type H2App } from './h2-fixtures';

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_REFUSED_STREAM } = http2.constants;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

/** `hang.test` goes to an upstream that never answers; `ok.test` is answered by the listener itself. */
function config(hang: H2App): ProxyConfig {
  return proxyConfig({
    routeTables: [
      routeTable('outbound', [
        vhost('hang', ['hang.test'], [route('hang', 'hang')]),
        vhost('ok', ['ok.test'], [route('ok', directResponse(200, 'fine'))]),
      ]),
    ],
    clusters: [cluster('hang')],
    endpoints: { hang: [hang.endpoint()] },
  });
}

async function start(t: { after: (fn: () => Promise<unknown> | void) => void }, limits: Partial<typeof DEFAULT_HTTP_LIMITS> = {}): Promise<{ port: number; hang: H2App }> {
  const hang = await startH2App(() => undefined);
  const pool = new UpstreamPool();
  const cfg = config(hang);
  const l = new HttpProxyListener(listener('outbound'), () => cfg, { log: silentLogger, pool, limits });
  await l.listen();
  t.after(async () => {
    l.destroy();
    await l.close();
    pool.destroy();
    await hang.close();
  });
  return { port: l.address()!.port, hang };
}

/** An ordinary client on its own connection: 20 requests, all answered. */
async function ordinaryClientWorks(port: number): Promise<void> {
  const session = http2.connect(`http://127.0.0.1:${port}`).on('error', () => undefined);
  try {
    for (let i = 0; i < 20; i++) {
      const r = await h2Send(session, { ':method': 'GET', ':authority': 'ok.test' });
      assert.deepEqual([r.headers[':status'], r.body.toString()], [200, 'fine']);
    }
  } finally {
    session.destroy();
  }
}

test('a Rapid Reset flood gets GOAWAY(ENHANCE_YOUR_CALM) and its connection closed; another connection keeps working', async (t) => {
  const { port } = await start(t);
  const before = httpRejections.get('h2-rapid-reset');
  const flood = new RawH2Client(port);
  t.after(() => flood.destroy());
  await flood.waitFor((f) => f.type === FRAME.SETTINGS);
  const during = ordinaryClientWorks(port);
  const rst = Buffer.alloc(4);
  rst.writeUInt32BE(NGHTTP2_CANCEL);
  // Each stream: HEADERS for a request the upstream will never answer, then at once RST_STREAM.
  for (let id = 1; id < 2 * 2000; id += 2) {
    if (!flood.write(Buffer.concat([frame(FRAME.HEADERS, END_HEADERS | END_STREAM, id, requestBlock('hang.test')), frame(FRAME.RST_STREAM, 0, id, rst)]))) break;
  }
  const goaway = await flood.waitFor((f) => f.type === FRAME.GOAWAY);
  assert.equal(goaway.payload.readUInt32BE(4), NGHTTP2_ENHANCE_YOUR_CALM);
  await flood.closed;
  const lastStream = goaway.payload.readUInt32BE(0) & 0x7fffffff;
  assert.ok(lastStream < 2 * 2000, `the connection was closed early (last stream ${lastStream})`);
  assert.equal(httpRejections.get('h2-rapid-reset') - before, 1, 'counted once');
  await during;
  await ordinaryClientWorks(port);
});

test('streams beyond maxConcurrentStreams are refused (REFUSED_STREAM); a client that keeps opening them past maxSessionRejectedStreams is closed; others work', async (t) => {
  const { port, hang } = await start(t);
  const extra = 10;
  const n = DEFAULT_H2_LIMITS.maxConcurrentStreams + extra;
  // Streams kept open (no END_STREAM), to an upstream that never answers.
  const streams = (first: number, count = n): Buffer => Buffer.concat(Array.from({ length: count }, (_, i) => frame(FRAME.HEADERS, END_HEADERS, first + 2 * i, requestBlock('hang.test', '/', 'POST'))));

  // The streams over the limit the server announced are refused, and the connection stays up.
  const eager = new RawH2Client(port);
  t.after(() => eager.destroy());
  eager.write(streams(1));
  const settings = await eager.waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & 1) === 0);
  let advertised: number | undefined;
  for (let i = 0; i + 6 <= settings.payload.length; i += 6) if (settings.payload.readUInt16BE(i) === 3) advertised = settings.payload.readUInt32BE(i + 2);
  assert.equal(advertised, DEFAULT_H2_LIMITS.maxConcurrentStreams, 'SETTINGS_MAX_CONCURRENT_STREAMS');
  await eager.waitFor(() => eager.frames.filter((f) => f.type === FRAME.RST_STREAM).length >= extra);
  await new Promise((r) => setTimeout(r, 100));
  const refused = eager.frames.filter((f) => f.type === FRAME.RST_STREAM);
  assert.equal(refused.length, extra);
  for (const f of refused) {
    assert.equal(f.payload.readUInt32BE(0), NGHTTP2_REFUSED_STREAM);
    assert.ok(f.streamId > 2 * DEFAULT_H2_LIMITS.maxConcurrentStreams, `stream ${f.streamId} refused`);
  }
  assert.equal(eager.frames.filter((f) => f.type === FRAME.GOAWAY).length, 0, 'the connection stays up');

  // A client that keeps opening streams over the limit, past maxSessionRejectedStreams refusals:
  // GOAWAY(ENHANCE_YOUR_CALM), closed, and counted.
  const sessionErrors = httpRejections.get('h2-session-error');
  const greedy = new RawH2Client(port);
  t.after(() => greedy.destroy());
  await greedy.waitFor((f) => f.type === FRAME.SETTINGS && (f.flags & 1) === 1);
  greedy.write(streams(1, DEFAULT_H2_LIMITS.maxConcurrentStreams + DEFAULT_H2_LIMITS.maxSessionRejectedStreams + 1));
  const goaway = await greedy.waitFor((f) => f.type === FRAME.GOAWAY);
  assert.equal(goaway.payload.readUInt32BE(4), NGHTTP2_ENHANCE_YOUR_CALM);
  await greedy.closed;
  assert.equal(httpRejections.get('h2-session-error') - sessionErrors, 1);

  await ordinaryClientWorks(port);
  assert.equal(hang.calls.length, 0, 'the hung upstream saw no complete request');
});

test('a header list over the HTTP/1 limits is answered 431 and counted; the connection stays usable', async (t) => {
  const { port } = await start(t);
  assert.equal(checkHeaderList(['x', 'y'.repeat(100)], DEFAULT_HTTP_LIMITS), undefined);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  const count = httpRejections.get('header-count');
  const bytes = httpRejections.get('header-bytes');
  const many: Record<string, string> = {};
  for (let i = 0; i < DEFAULT_HTTP_LIMITS.maxHeaderCount + 1; i++) many[`x-h${i}`] = 'v';
  const r1 = await h2Send(session, { ':method': 'GET', ':authority': 'ok.test', ...many });
  assert.equal(r1.headers[':status'], 431);
  const r2 = await h2Send(session, { ':method': 'GET', ':authority': 'ok.test', 'x-big': 'z'.repeat(DEFAULT_HTTP_LIMITS.maxHeaderBytes) });
  assert.equal(r2.headers[':status'], 431);
  assert.deepEqual([httpRejections.get('header-count') - count, httpRejections.get('header-bytes') - bytes], [1, 1]);
  const ok = await h2Send(session, { ':method': 'GET', ':authority': 'ok.test', 'x-fine': 'z'.repeat(1000) });
  assert.deepEqual([ok.headers[':status'], ok.body.toString()], [200, 'fine']);
});

test('an idle h2 connection is closed after the listener idle timeout', async (t) => {
  const { port } = await start(t, { idleTimeoutMs: 300 });
  const session = http2.connect(`http://127.0.0.1:${port}`);
  t.after(() => session.destroy());
  const r = await h2Send(session, { ':method': 'GET', ':authority': 'ok.test' });
  assert.equal(r.headers[':status'], 200);
  const started = Date.now();
  await new Promise((resolve) => session.once('close', resolve));
  const took = Date.now() - started;
  assert.ok(took >= 250 && took < 1500, `closed after ${took} ms`);
});
