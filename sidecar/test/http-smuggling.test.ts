/**
 * Every request-smuggling, desync and malformed-request vector of docs/http-safety.md, sent as raw
 * bytes to a real outbound and a real inbound listener in front of a real upstream that records
 * every connection and request: each is answered with its status and `connection: close`, the
 * connection is closed, the rejection is counted and logged, and NOTHING reaches the upstream —
 * not a request, not even a TCP connection.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { httpRejections } from '../src/http-strict';
import { rawExchange, startGuardedPair } from './http-safety-fixtures';

const CRLF = '\r\n';
const req = (lines: string[], body = ''): string => lines.join(CRLF) + CRLF + CRLF + body;
const post = (headers: string[], body: string, version = '1.1'): string => req([`POST /upload HTTP/${version}`, 'Host: app', ...headers], body);
const get = (headers: string[], target = '/', version = '1.1'): string => req([`GET ${target} HTTP/${version}`, 'Host: app', ...headers]);

interface Vector {
  readonly name: string;
  readonly bytes: string;
  readonly status: number;
  /** The counter key (`DownstreamProtocolError.reason`). */
  readonly reason: string;
}

const vectors: Vector[] = [
  // Content-Length and Transfer-Encoding together (CL.TE / TE.CL).
  { name: 'Content-Length then Transfer-Encoding (CL.TE)', bytes: post(['Content-Length: 13', 'Transfer-Encoding: chunked'], '0\r\n\r\nSMUGGLED'), status: 400, reason: 'content-length-with-transfer-encoding' },
  { name: 'Transfer-Encoding then Content-Length (TE.CL)', bytes: post(['Transfer-Encoding: chunked', 'Content-Length: 4'], '5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n'), status: 400, reason: 'content-length-with-transfer-encoding' },
  // Content-Length shape.
  { name: 'two equal Content-Length headers', bytes: post(['Content-Length: 5', 'Content-Length: 5'], 'hello'), status: 400, reason: 'content-length-repeated' },
  { name: 'two differing Content-Length headers', bytes: post(['Content-Length: 5', 'Content-Length: 6'], 'hello!'), status: 400, reason: 'content-length-repeated' },
  { name: 'a Content-Length list', bytes: post(['Content-Length: 5, 5'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'a non-numeric Content-Length', bytes: post(['Content-Length: abc'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'a signed Content-Length (+)', bytes: post(['Content-Length: +5'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'a negative Content-Length', bytes: post(['Content-Length: -5'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'a hexadecimal Content-Length', bytes: post(['Content-Length: 0x5'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'a Content-Length with inner whitespace', bytes: post(['Content-Length: 1 0'], 'hello'), status: 400, reason: 'content-length-invalid' },
  { name: 'an overflowing Content-Length', bytes: post(['Content-Length: 99999999999999999999999'], 'hello'), status: 400, reason: 'content-length-invalid' },
  // Transfer-Encoding other than exactly `chunked`.
  { name: 'Transfer-Encoding: gzip, chunked', bytes: post(['Transfer-Encoding: gzip, chunked'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding: chunked, identity', bytes: post(['Transfer-Encoding: chunked, identity'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding: xchunked', bytes: post(['Transfer-Encoding: xchunked'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding: identity', bytes: post(['Transfer-Encoding: identity'], ''), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding: gzip', bytes: post(['Transfer-Encoding: gzip'], 'x'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding: chunked;ext', bytes: post(['Transfer-Encoding: chunked;a=b'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'an empty Transfer-Encoding', bytes: post(['Transfer-Encoding: '], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding with a no-break space before chunked', bytes: post(['Transfer-Encoding: \xa0chunked'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding with a vertical tab before chunked', bytes: post(['Transfer-Encoding: \x0bchunked'], '0\r\n\r\n'), status: 400, reason: 'header-syntax' },
  { name: 'Transfer-Encoding with a space before the colon', bytes: post(['Transfer-Encoding : chunked'], '0\r\n\r\n'), status: 400, reason: 'header-syntax' },
  { name: 'two Transfer-Encoding headers, gzip then chunked', bytes: post(['Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-repeated' },
  { name: 'two Transfer-Encoding: chunked headers', bytes: post(['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), status: 400, reason: 'transfer-encoding-not-chunked' },
  { name: 'Transfer-Encoding in an HTTP/1.0 request', bytes: post(['Transfer-Encoding: chunked'], '0\r\n\r\n', '1.0'), status: 400, reason: 'transfer-encoding-http10' },
  // Invalid chunked bodies (the request line and headers are fine).
  { name: 'a non-hex chunk size', bytes: post(['Transfer-Encoding: chunked'], 'zz\r\nhello\r\n0\r\n\r\n'), status: 400, reason: 'chunk-size' },
  { name: 'a negative chunk size', bytes: post(['Transfer-Encoding: chunked'], '-5\r\nhello\r\n0\r\n\r\n'), status: 400, reason: 'chunk-size' },
  { name: 'a 0x-prefixed chunk size', bytes: post(['Transfer-Encoding: chunked'], '0x5\r\nhello\r\n0\r\n\r\n'), status: 400, reason: 'chunk-size' },
  { name: 'an overflowing chunk size', bytes: post(['Transfer-Encoding: chunked'], 'ffffffffffffffffff\r\nhello\r\n0\r\n\r\n'), status: 400, reason: 'chunk-size' },
  { name: 'a chunk size with trailing space', bytes: post(['Transfer-Encoding: chunked'], '5 \r\nhello\r\n0\r\n\r\n'), status: 400, reason: 'chunk-size' },
  { name: 'chunk extensions over 16 KiB', bytes: post(['Transfer-Encoding: chunked'], `5;${'a'.repeat(20 * 1024)}\r\nhello\r\n0\r\n\r\n`), status: 400, reason: 'chunk-extensions' },
  { name: 'chunk lines ending in bare LF', bytes: post(['Transfer-Encoding: chunked'], '5\nhello\n0\n\n'), status: 400, reason: 'line-ending' },
  { name: 'chunk data longer than its size', bytes: post(['Transfer-Encoding: chunked'], '5\r\nhelloXX0\r\n\r\n'), status: 400, reason: 'line-ending' },
  // Header syntax.
  { name: 'obs-fold (continuation line starting with a space)', bytes: get(['X-A: b', ' c']), status: 400, reason: 'header-syntax' },
  { name: 'obs-fold (continuation line starting with a tab)', bytes: get(['X-A: b', '\tc']), status: 400, reason: 'header-syntax' },
  { name: 'a first header line starting with a space', bytes: req(['GET / HTTP/1.1', ' Host: app']), status: 400, reason: 'header-syntax' },
  { name: 'NUL in a header value', bytes: get(['X-A: b\x00c']), status: 400, reason: 'header-syntax' },
  { name: 'a control character in a header value', bytes: get(['X-A: b\x01c']), status: 400, reason: 'header-syntax' },
  { name: 'DEL in a header value', bytes: get(['X-A: b\x7fc']), status: 400, reason: 'header-syntax' },
  { name: 'a bare CR in a header value', bytes: get(['X-A: b\rc']), status: 400, reason: 'line-ending' },
  { name: 'a bare LF ending a header line', bytes: req(['GET / HTTP/1.1', 'Host: app', 'X-A: b\nX-B: c']), status: 400, reason: 'line-ending' },
  { name: 'a space in a header name', bytes: get(['X A: b']), status: 400, reason: 'header-syntax' },
  { name: 'a parenthesis in a header name', bytes: get(['X(A): b']), status: 400, reason: 'header-syntax' },
  { name: 'NUL in a header name', bytes: get(['X\x00A: b']), status: 400, reason: 'header-syntax' },
  { name: 'UTF-8 in a header name', bytes: get(['X\xc3\xa9: b']), status: 400, reason: 'header-syntax' },
  { name: 'an empty header name', bytes: get([': b']), status: 400, reason: 'header-syntax' },
  { name: 'a header line without a colon', bytes: get(['XA']), status: 400, reason: 'header-syntax' },
  // Request line.
  { name: 'a request line ending in bare LF', bytes: 'GET / HTTP/1.1\nHost: app\r\n\r\n', status: 400, reason: 'request-line' },
  { name: 'every line ending in bare LF', bytes: 'GET / HTTP/1.1\nHost: app\n\n', status: 400, reason: 'request-line' },
  { name: 'a request line ending in bare CR', bytes: 'GET / HTTP/1.1\rHost: app\r\n\r\n', status: 400, reason: 'line-ending' },
  { name: 'a lower-case method', bytes: req(['get / HTTP/1.1', 'Host: app']), status: 400, reason: 'request-line' },
  { name: 'a space in the request target', bytes: req(['GET /a b HTTP/1.1', 'Host: app']), status: 400, reason: 'request-line' },
  { name: 'a non-ASCII byte in the request target', bytes: req(['GET /a\xc3\xa9 HTTP/1.1', 'Host: app']), status: 400, reason: 'request-line' },
  { name: 'HTTP/1.2', bytes: req(['GET / HTTP/1.2', 'Host: app']), status: 400, reason: 'request-line' },
  { name: 'HTTP/2.0 in an HTTP/1 request line', bytes: req(['GET / HTTP/2.0', 'Host: app']), status: 505, reason: 'http-version' },
  { name: 'an HTTP/0.9 request line', bytes: 'GET /\r\n\r\n', status: 505, reason: 'http-version' },
  // The HTTP/2 connection preface is no longer refused here: protocol detection hands it to the
  // listener's h2c server (detect-protocol.ts; grpc-h2.test.ts).
  // Host.
  { name: 'two Host headers', bytes: req(['GET / HTTP/1.1', 'Host: app', 'Host: admin']), status: 400, reason: 'host-repeated' },
  { name: 'a space in Host', bytes: req(['GET / HTTP/1.1', 'Host: app admin']), status: 400, reason: 'host-invalid' },
  { name: 'an HTTP/1.1 request without Host', bytes: req(['GET / HTTP/1.1']), status: 400, reason: 'host-missing' },
  // Paths that would bypass route or policy matching (path-normalize.ts).
  { name: 'a raw # in the path', bytes: get([], '/public#/../admin'), status: 400, reason: 'path-fragment' },
  { name: 'a raw \\ in the path', bytes: get([], '/public\\..\\admin'), status: 400, reason: 'path-backslash' },
  { name: 'an encoded slash %2F', bytes: get([], '/public%2F..%2Fadmin'), status: 400, reason: 'path-escaped-slash' },
  { name: 'an encoded backslash %5c', bytes: get([], '/public%5c..%5cadmin'), status: 400, reason: 'path-escaped-slash' },
  { name: 'an encoded NUL %00', bytes: get([], '/admin%00.png'), status: 400, reason: 'path-escaped-nul' },
  { name: 'a malformed percent-encoding', bytes: get([], '/a%zz'), status: 400, reason: 'path-percent-encoding' },
  { name: 'a ..;param segment (servlet path parameters)', bytes: get([], '/public/..;x=1/admin'), status: 400, reason: 'path-dot-segment-parameter' },
  { name: 'asterisk-form with GET', bytes: get([], '*'), status: 400, reason: 'path-asterisk' },
];

let pair: Awaited<ReturnType<typeof startGuardedPair>>;
before(async () => {
  pair = await startGuardedPair();
});
after(() => pair.close());

for (const direction of ['outbound', 'inbound'] as const) {
  for (const v of vectors) {
    test(`${direction}: ${v.name} → ${v.status}, connection closed, nothing reaches the upstream`, async () => {
      const proxy = pair[direction];
      const before = { requests: pair.upstream.received.length, connections: pair.upstream.connections, counted: httpRejections.get(v.reason) };
      const logged = proxy.log.length;

      const r = await rawExchange(proxy.port, v.bytes);

      assert.deepEqual(r.statuses, [v.status], r.text);
      assert.match(r.text, /\r\nconnection: close\r\n/i);
      assert.ok(r.closed, 'the proxy closes the connection');
      assert.equal(pair.upstream.received.length, before.requests, 'no request reached the upstream');
      assert.equal(pair.upstream.connections, before.connections, 'no connection reached the upstream');
      assert.equal(httpRejections.get(v.reason), before.counted + 1, `counted once under ${v.reason}`);
      const line = proxy.log.slice(logged).find((l) => l.msg === 'request rejected');
      assert.equal(line?.level, 'debug');
      assert.equal(line?.fields.reason, v.reason);
    });
  }
}

test('absolute-form is refused on the inbound listener (only an app talks to its outbound as a proxy)', async () => {
  const before = pair.upstream.connections;
  const r = await rawExchange(pair.inbound.port, get([], 'http://app/x'));
  assert.deepEqual(r.statuses, [400]);
  assert.equal(pair.upstream.connections, before);
  const ok = await rawExchange(pair.outbound.port, get(['Connection: close'], 'http://app/x'));
  assert.deepEqual(ok.statuses, [200]);
});

test('the same listeners pass well-formed requests: chunked (any case), Content-Length, obs-text values, pipelining', async () => {
  for (const proxy of [pair.outbound, pair.inbound]) {
    const start = pair.upstream.received.length;
    const r = await rawExchange(
      proxy.port,
      post(['Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n') +
        post(['Transfer-Encoding: CHUNKED'], '3;ext=1\r\nabc\r\n0\r\n\r\n') +
        post(['Content-Length: 5 '], 'world') +
        get(['X-Latin: caf\xe9', 'Connection: close']),
    );
    assert.deepEqual(r.statuses, [200, 200, 200, 200], r.text);
    const got = pair.upstream.received.slice(start);
    // Pipelined requests are forwarded concurrently, so they may arrive in any order.
    assert.deepEqual(got.map((g) => g.body).sort(), ['', 'abc', 'hello', 'world']);
    assert.equal(got.find((g) => g.method === 'GET')!.headers['x-latin'], 'caf\xe9');
  }
});

test('a framing error in the body of a keep-alive connection’s second request answers 400 after the first 200', async () => {
  const r = await rawExchange(pair.outbound.port, get([]) + post(['Transfer-Encoding: chunked'], 'zz\r\n'));
  assert.deepEqual(r.statuses, [200, 400]);
  assert.ok(r.closed);
});

test('garbage after a pipelined request in flight is answered 400 after that request’s 200, never before it', async () => {
  const before = pair.upstream.received.length;
  const r = await rawExchange(pair.inbound.port, get([]) + 'BAD REQUEST\r\n\r\n');
  assert.deepEqual(r.statuses, [200, 400], r.text);
  assert.ok(r.closed);
  assert.equal(pair.upstream.received.length, before + 1);
});

// ---- found by the fuzzer (http-fuzz.test.ts; docs/http-safety.md, "Fuzzing") --------------

test('a request pipelined behind a refused one is never forwarded: one 400, the connection closed, the upstream sees nothing', async () => {
  for (const proxy of [pair.outbound, pair.inbound]) {
    const before = { requests: pair.upstream.received.length, counted: httpRejections.get('after-refusal') };
    const r = await rawExchange(proxy.port, get([], '*') + get([], '/second') + get([], '/third'));
    assert.deepEqual(r.statuses, [400], r.text);
    assert.ok(r.closed);
    assert.equal(pair.upstream.received.length, before.requests, 'nothing after the refusal reached the upstream');
    assert.equal(httpRejections.get('after-refusal'), before.counted + 2);
  }
});

// Bugs the fuzzer found (http-fuzz-oracle.ts), each as its minimal vector; all fixed with the
// lean HTTP/1.1 server and client (server-http1.ts, upstream-http1.ts).

test('a DELETE with a chunked body reaches the upstream as one request with that body, never as two', async () => {
  const before = pair.upstream.received.length;
  const smuggled = 'GET /admin HTTP/1.1\r\nHost: admin\r\n\r\n';
  const r = await rawExchange(pair.outbound.port, req(['DELETE /x HTTP/1.1', 'Host: app', 'Transfer-Encoding: chunked', 'Connection: close'], `${smuggled.length.toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`));
  assert.deepEqual(r.statuses, [200]);
  const got = pair.upstream.received.slice(before);
  assert.deepEqual(got.map((g) => [g.method, g.url, g.body]), [['DELETE', '/x', smuggled]]);
});

test('an Upgrade request pipelined behind another request: two answers, no uncaught exception', async () => {
  const errors: unknown[] = [];
  const onError = (e: unknown): void => void errors.push(e);
  process.on('uncaughtException', onError);
  try {
    const r = await rawExchange(pair.outbound.port, get([]) + get(['Connection: upgrade', 'Upgrade: websocket']));
    assert.deepEqual(errors, []);
    assert.equal(r.statuses.length, 2, r.text);
  } finally {
    process.off('uncaughtException', onError);
  }
});

test('a refusal queued behind an in-flight response, then unparsable bytes: the earlier answer still arrives', async () => {
  const r = await rawExchange(pair.inbound.port, get([]) + get([], '*') + 'BAD\n\r\n');
  assert.deepEqual(r.statuses, [200, 400], r.text);
});

test('a CONNECT pipelined behind another request is answered 405 after that request’s 200', async () => {
  const r = await rawExchange(pair.outbound.port, get([]) + req(['CONNECT app:443 HTTP/1.1', 'Host: app:443']));
  assert.deepEqual(r.statuses, [200, 405], r.text);
});

test('absolute-form: the upstream gets the Host of the authority it was routed by (RFC 9112 §3.2.2)', async () => {
  const before = pair.upstream.received.length;
  const r = await rawExchange(pair.outbound.port, req(['GET http://app/x HTTP/1.1', 'Host: admin', 'Connection: close']));
  assert.deepEqual(r.statuses, [200]);
  assert.equal(pair.upstream.received[before]?.headers.host, 'app');
});

test('Expect: foo does not save an ambiguous request from refusal: 400, closed, the next request not forwarded', async () => {
  const before = pair.upstream.received.length;
  const r = await rawExchange(pair.inbound.port, post(['Transfer-Encoding: "chunked"', 'Transfer-Encoding: chunked', 'Expect: foo'], '0\r\n\r\n') + get([], '/after'));
  assert.deepEqual(r.statuses, [400], r.text);
  assert.ok(r.closed);
  assert.equal(pair.upstream.received.length, before);
});
