/**
 * Traffic management on the HTTP/2 and gRPC path over real sockets: retries (gRPC statuses from
 * trailers, with response headers held until the first DATA frame), fault injection and
 * mirroring. A real listener on 127.0.0.1:0, real h2c upstreams, grpc-js and Node http2 clients.
 *
 * HTTP/2 streams use the process-wide retry budgets and mirror counters (the listener does not
 * hand its own to the h2 path yet), so each test reads deltas and keys its own budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { Endpoint, FaultPolicy, ProxyConfig, Route } from '../src/config';
import { SHARED_MIRRORS } from '../src/mirror-http';
import { SHARED_RETRY_BUDGETS } from '../src/retry-budget';
import { closedPort, cluster, endpoint, listener, proxyConfig, route, routeTable, sleep, startProxy, vhost } from './fixtures';
import { grpcFrame, grpcHeaders, grpcMessages, grpcReply, h2Send, startH2App, type H2App } from './h2-fixtures';
import { retryPolicy } from './retry-fixtures';

const stats = SHARED_RETRY_BUDGETS.stats;
const FAST = { baseMs: 1, maxMs: 5 };
const AUTHORITY = 'echo.test:50051';

/** One route to cluster `app` (and `shadow` when given) on vhost `*`. */
function config(app: Endpoint[], extra: Partial<Route> = {}, shadow?: Endpoint[]): ProxyConfig {
  return proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [{ ...route('default', 'app'), ...extra }])])],
    clusters: [cluster('app'), ...(shadow ? [cluster('shadow')] : [])],
    endpoints: { app, ...(shadow ? { shadow } : {}) },
  });
}

async function proxyFor(cfg: ProxyConfig, t: { after: (fn: () => Promise<unknown>) => void }, faultFilter = false): Promise<number> {
  const p = await startProxy(cfg, listener('outbound', { faultFilter }));
  t.after(() => p.close());
  return p.port;
}

/** A fixed pseudo-random sequence (mulberry32). */
function seeded(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const raw = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const Echo = grpc.makeGenericClientConstructor({ Unary: { path: '/weft.test.Echo/Unary', requestStream: false, responseStream: false, ...raw } }, 'Echo');
type EchoClient = grpc.Client & { Unary: (req: Buffer, options: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => void };

function grpcClient(port: number, t: { after: (fn: () => void) => void }): EchoClient {
  const c = new Echo(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': AUTHORITY }) as unknown as EchoClient;
  t.after(() => c.close());
  return c;
}

const call = (c: EchoClient, req: string): Promise<{ code: number; reply?: string }> =>
  new Promise((resolve) => c.Unary(Buffer.from(req), { deadline: Date.now() + 10_000 }, (e, r) => resolve(e ? { code: e.code } : { code: 0, reply: r!.toString() })));

/** A gRPC app: fails a `failShare` of calls with UNAVAILABLE in trailers, after the response headers. */
async function flakyGrpcApp(failShare: number, random: () => number): Promise<H2App & { failed: () => number }> {
  let failed = 0;
  const app = await startH2App((stream, c) => {
    if (random() < failShare) {
      failed++;
      return grpcReply(stream, 14, [], 'try again');
    }
    grpcReply(stream, 0, [`echo:${grpcMessages(c.body).join()}`]);
  });
  return Object.assign(app, { failed: () => failed });
}

// ---- retries ----------------------------------------------------------------------------------

test('a gRPC upstream failing 30% of calls with UNAVAILABLE in trailers (after headers): zero failures with retryOn unavailable', async (t) => {
  const app = await flakyGrpcApp(0.3, seeded(7));
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['unavailable'], grpcStatuses: [14], numRetries: 10, backoff: FAST, retryNonIdempotent: true, budget: { key: 'h2-flaky', percent: 60, minRetriesPerSecond: 10 } });
  const client = grpcClient(await proxyFor(config([app.endpoint()], { retry: policy }), t), t);
  const retriesBefore = stats.retries;
  const results: { code: number; reply?: string }[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < 75; i++) results.push(await call(client, `${w}-${i}`));
    }),
  );
  assert.equal(results.length, 300);
  assert.deepEqual(results.filter((r) => r.code !== 0), [], 'no failure reaches the client');
  assert.ok(results.every((r) => r.reply?.startsWith('echo:')));
  assert.ok(app.failed() >= 60, `the upstream failed ${app.failed()} of ${app.calls.length} calls`);
  assert.equal(app.calls.length, 300 + app.failed(), 'each failed attempt was retried once, nothing more');
  assert.equal(stats.retries - retriesBefore, app.failed());
  assert.deepEqual(new Set(app.calls.map((c) => grpcMessages(c.body).length)), new Set([1]), 'every attempt carried the whole request message');
});

test('without retryNonIdempotent a gRPC call the upstream processed is not retried (UNAVAILABLE reaches the client)', async (t) => {
  const app = await startH2App((stream) => grpcReply(stream, 14, [], 'down'));
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['unavailable'], grpcStatuses: [14], numRetries: 3, backoff: FAST, budget: { key: 'h2-no-opt-in', percent: 100, minRetriesPerSecond: 100 } });
  const client = grpcClient(await proxyFor(config([app.endpoint()], { retry: policy }), t), t);
  const r = await call(client, 'x');
  assert.equal(r.code, grpc.status.UNAVAILABLE);
  assert.equal(app.calls.length, 1);
});

test('with the gRPC upstream failing 100%, the default budget keeps what reaches it within 1.2x the client rate plus 10/s', async (t) => {
  const app = await startH2App((stream) => grpcReply(stream, 14));
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['unavailable'], grpcStatuses: [14], numRetries: 3, backoff: FAST, retryNonIdempotent: true, budget: { key: 'h2-down', percent: 20, minRetriesPerSecond: 10 } });
  const client = grpcClient(await proxyFor(config([app.endpoint()], { retry: policy }), t), t);
  const budgetSkips = stats.skipped.budget;
  const seconds = 1.5;
  const rate = 200;
  const pending: Promise<unknown>[] = [];
  const started = performance.now();
  for (let i = 0; i < rate * seconds; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(call(client, String(i)));
  }
  const results = (await Promise.all(pending)) as { code: number }[];
  const sent = rate * seconds;
  const elapsed = (performance.now() - started) / 1000;
  const bound = 1.2 * sent + 10 * Math.ceil(elapsed + 1);
  assert.ok(results.every((r) => r.code === grpc.status.UNAVAILABLE));
  assert.ok(app.calls.length <= bound, `${app.calls.length} upstream attempts for ${sent} calls (bound ${bound})`);
  assert.ok(app.calls.length > sent, 'retries were made');
  assert.ok(stats.skipped.budget > budgetSkips, 'refusals are counted as budget');
});

test('an h2 (non-gRPC) upstream answering 503 is retried; a streaming request over the buffer limit is not', async (t) => {
  // The first attempt of each request (by `x-id`) fails.
  const seen = new Set<unknown>();
  const app = await startH2App((stream, c) => {
    const first = !seen.has(c.headers['x-id']);
    seen.add(c.headers['x-id']);
    stream.respond({ ':status': first ? 503 : 200, 'content-type': 'text/plain' });
    stream.end(`got ${c.body.length}`);
  });
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['5xx'], numRetries: 2, backoff: FAST, bufferLimitBytes: 1024, budget: { key: 'h2-plain', percent: 100, minRetriesPerSecond: 100 } });
  const port = await proxyFor(config([app.endpoint()], { retry: policy }), t);
  const get = await h2Send(port, { ':method': 'GET', ':authority': 'plain.test', 'x-id': 'get' });
  assert.deepEqual([get.headers[':status'], get.body.toString()], [200, 'got 0']);
  assert.equal(app.calls.length, 2);

  const tooLarge = stats.skipped['body-too-large'];
  const big = await h2Send(port, { ':method': 'PUT', ':authority': 'plain.test', 'x-id': 'big' }, Array.from({ length: 8 }, () => Buffer.alloc(512, 'x')), 5);
  assert.deepEqual([big.headers[':status'], big.body.toString()], [503, 'got 4096'], 'the first attempt streamed the whole body; its 503 is passed on');
  assert.equal(app.calls.length, 3, 'not retried');
  assert.equal(stats.skipped['body-too-large'] - tooLarge, 1);

  const small = await h2Send(port, { ':method': 'PUT', ':authority': 'plain.test', 'x-id': 'small' }, [Buffer.alloc(500, 'a'), Buffer.alloc(500, 'b')], 5);
  assert.deepEqual([small.headers[':status'], small.body.toString()], [200, 'got 1000']);
  assert.deepEqual(app.calls.slice(3).map((c) => c.body.toString()), ['a'.repeat(500) + 'b'.repeat(500), 'a'.repeat(500) + 'b'.repeat(500)], 'the body is replayed whole');
});

test('a response that already sent a DATA frame, then trailers with UNAVAILABLE, is not retried and passes through intact', async (t) => {
  const app = await startH2App((stream) => grpcReply(stream, 14, ['partial-1', 'partial-2'], 'gone midway'));
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['unavailable'], grpcStatuses: [14], numRetries: 3, backoff: FAST, retryNonIdempotent: true, budget: { key: 'h2-committed', percent: 100, minRetriesPerSecond: 100 } });
  const port = await proxyFor(config([app.endpoint()], { retry: policy }), t);
  const r = await h2Send(port, grpcHeaders(AUTHORITY), [grpcFrame('q')]);
  assert.equal(r.headers[':status'], 200);
  assert.deepEqual(grpcMessages(r.body), ['partial-1', 'partial-2']);
  assert.equal(r.trailers?.['grpc-status'], '14');
  assert.equal(r.trailers?.['grpc-message'], 'gone midway');
  assert.equal(r.rstCode, 0);
  assert.equal(app.calls.length, 1);
});

test('headers-only then trailers (no message) is retried; a trailers-only status in headers is retried too', async (t) => {
  const app = await startH2App((stream, _c, n) => {
    if (n === 0) return grpcReply(stream, 14); // HEADERS, then HEADERS(trailers): no DATA
    if (n === 1) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14' }, { endStream: true });
      return;
    }
    grpcReply(stream, 0, ['third time']);
  });
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['unavailable'], grpcStatuses: [14], numRetries: 2, backoff: FAST, retryNonIdempotent: true, budget: { key: 'h2-held', percent: 100, minRetriesPerSecond: 100 } });
  const port = await proxyFor(config([app.endpoint()], { retry: policy }), t);
  const r = await h2Send(port, grpcHeaders(AUTHORITY), [grpcFrame('q')]);
  assert.deepEqual(grpcMessages(r.body), ['third time']);
  assert.equal(r.trailers?.['grpc-status'], '0');
  assert.equal(app.calls.length, 3);
});

test('REFUSED_STREAM and connect failures are retried for a gRPC call without the opt-in; a reset after the upstream read it is not', async (t) => {
  const app = await startH2App((stream, _c, n) => {
    if (n === 0) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    if (n === 2) return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    grpcReply(stream, 0, [`ok-${n}`]);
  });
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['reset', 'connect-failure'], numRetries: 2, backoff: FAST, budget: { key: 'h2-refused', percent: 100, minRetriesPerSecond: 100 } });
  const port = await proxyFor(config([app.endpoint()], { retry: policy }), t);
  const refused = await h2Send(port, grpcHeaders(AUTHORITY), [grpcFrame('q')]);
  assert.deepEqual(grpcMessages(refused.body), ['ok-1'], 'REFUSED_STREAM: the upstream never processed it');
  const reset = await h2Send(port, grpcHeaders(AUTHORITY), [grpcFrame('q')]);
  assert.equal(reset.headers['grpc-status'], '14', 'a reset after the upstream read the call is not retried');
  assert.equal(app.calls.length, 3);

  const dead = await closedPort();
  const both = await proxyFor(config([endpoint('127.0.0.1', dead), app.endpoint()], { retry: policy }), t);
  for (let i = 0; i < 4; i++) {
    const r = await h2Send(both, grpcHeaders(AUTHORITY), [grpcFrame(`c${i}`)]);
    assert.equal(r.trailers?.['grpc-status'], '0', `call ${i}`);
  }
});

test('a per-try timeout retries a hung h2 attempt on the next one', async (t) => {
  const app = await startH2App((stream, _c, n) => {
    if (n === 0) return; // hang
    stream.respond({ ':status': 200 });
    stream.end('second try');
  });
  t.after(() => app.close());
  const policy = retryPolicy({ retryOn: ['reset'], numRetries: 1, perTryTimeoutMs: 100, backoff: FAST, budget: { key: 'h2-per-try', percent: 100, minRetriesPerSecond: 100 } });
  const port = await proxyFor(config([app.endpoint()], { retry: policy, timeoutMs: 2000 }), t);
  const started = performance.now();
  const r = await h2Send(port, { ':method': 'GET', ':authority': 'plain.test' });
  const ms = performance.now() - started;
  assert.deepEqual([r.headers[':status'], r.body.toString()], [200, 'second try']);
  assert.ok(ms >= 100 && ms < 600, `${ms.toFixed(0)} ms`);
});

// ---- fault injection ------------------------------------------------------------------------

const abort = (httpStatus: number): FaultPolicy => ({ abort: { httpStatus, fraction: 1 } });
const delay = (fixedDelayMs: number): FaultPolicy => ({ delay: { fixedDelayMs, fraction: 1 } });

test('fault abort: a gRPC call gets trailers-only UNAVAILABLE, a plain h2 request the HTTP status; nothing reaches the upstream', async (t) => {
  const app = await startH2App((stream) => grpcReply(stream, 0, ['never']));
  t.after(() => app.close());
  const port = await proxyFor(config([app.endpoint()], { fault: abort(503) }), t, true);
  const client = grpcClient(port, t);
  const r = await call(client, 'x');
  assert.equal(r.code, grpc.status.UNAVAILABLE);
  const g = await h2Send(port, grpcHeaders(AUTHORITY), [grpcFrame('q')]);
  assert.deepEqual([g.headers[':status'], g.headers['grpc-status'], g.headers['grpc-message'], g.trailers], [200, '14', 'fault filter abort', undefined]);
  const plain = await h2Send(port, { ':method': 'GET', ':authority': 'plain.test' });
  assert.deepEqual([plain.headers[':status'], plain.body.toString()], [503, 'fault filter abort']);
  assert.equal(app.calls.length, 0);

  const teapot = await proxyFor(config([app.endpoint()], { fault: abort(418) }), t, true);
  const p2 = await h2Send(teapot, { ':method': 'GET', ':authority': 'plain.test' });
  assert.equal(p2.headers[':status'], 418);
});

test('fault delay: gRPC and plain h2 requests wait fixedDelay; a delay past the gRPC deadline ends in DEADLINE_EXCEEDED', async (t) => {
  const app = await startH2App((stream, c) => {
    if (c.headers['content-type'] === 'application/grpc') return grpcReply(stream, 0, ['late but fine']);
    stream.respond({ ':status': 200 });
    stream.end('plain');
  });
  t.after(() => app.close());
  const port = await proxyFor(config([app.endpoint()], { fault: delay(150) }), t, true);
  const client = grpcClient(port, t);
  let started = performance.now();
  const r = await call(client, 'x');
  assert.deepEqual(r, { code: 0, reply: 'late but fine' });
  assert.ok(performance.now() - started >= 145);
  started = performance.now();
  const plain = await h2Send(port, { ':method': 'GET', ':authority': 'plain.test' });
  assert.equal(plain.body.toString(), 'plain');
  assert.ok(performance.now() - started >= 145);

  started = performance.now();
  const late = await h2Send(port, { ...grpcHeaders(AUTHORITY), 'grpc-timeout': '50m' }, [grpcFrame('q')]);
  const took = performance.now() - started;
  assert.equal(late.headers['grpc-status'], '4');
  assert.ok(took >= 45 && took < 140, `answered after ${took.toFixed(0)} ms`);
  assert.equal(app.calls.length, 2, 'the expired call never reached the upstream');
});

// ---- mirroring ------------------------------------------------------------------------------

test('mirror: copies of gRPC calls arrive at the mirror app with :authority -shadow and the whole body', async (t) => {
  const app = await startH2App((stream, c) => grpcReply(stream, 0, [`primary:${grpcMessages(c.body).join()}`]));
  const shadow = await startH2App((stream) => grpcReply(stream, 0, ['shadow']));
  t.after(() => Promise.all([app.close(), shadow.close()]));
  const port = await proxyFor(config([app.endpoint()], { mirrors: [{ cluster: 'shadow', fraction: 1 }] }, [shadow.endpoint()]), t);
  const client = grpcClient(port, t);
  const sent = SHARED_MIRRORS.stats.sent;
  for (let i = 0; i < 10; i++) assert.deepEqual(await call(client, `m${i}`), { code: 0, reply: `primary:m${i}` });
  await eventually(() => shadow.calls.length === 10);
  assert.equal(SHARED_MIRRORS.stats.sent - sent, 10);
  for (const [i, c] of shadow.calls.entries()) {
    assert.equal(c.headers[':authority'], 'echo.test-shadow:50051');
    assert.equal(c.headers[':path'], '/weft.test.Echo/Unary');
    assert.equal(c.headers['content-type'], 'application/grpc');
    assert.ok(grpcMessages(c.body)[0]?.startsWith('m'), `copy ${i}`);
  }
});

test('a mirror that hangs or resets changes nothing for the primary: same answers, no added latency, failures counted', async (t) => {
  const app = await startH2App((stream) => {
    stream.respond({ ':status': 200 });
    stream.end('primary');
  });
  const hung = await startH2App(() => undefined);
  const resets = await startH2App((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  t.after(() => Promise.all([app.close(), hung.close(), resets.close()]));
  for (const shadow of [hung, resets]) {
    const port = await proxyFor(config([app.endpoint()], { mirrors: [{ cluster: 'shadow', fraction: 1 }], timeoutMs: 300 }, [shadow.endpoint()]), t);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    t.after(async () => session.destroy());
    const failed = SHARED_MIRRORS.stats.failed;
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      const r = await h2Send(session, { ':method': 'POST', ':authority': 'plain.test' }, ['body']);
      const ms = performance.now() - started;
      assert.deepEqual([r.headers[':status'], r.body.toString()], [200, 'primary']);
      assert.ok(ms < 100, `primary answered after ${ms.toFixed(0)} ms`);
    }
    await eventually(() => SHARED_MIRRORS.stats.failed - failed === 5, 2000);
  }
});

async function eventually(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(10);
  }
}
