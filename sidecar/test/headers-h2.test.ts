// HTTP/2 header rewriting at the proxy hop (headers-http.ts), one pass each way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downstreamH2Headers, upstreamH2Fields, upstreamH2Headers, upstreamRequestHeaders } from '../src/headers-http';
import { fieldsToHeaders } from '../src/h2-streams';

const received = {
  ':method': 'POST',
  ':path': '/pkg.Svc/Call',
  ':authority': 'svc:50051',
  ':scheme': 'http',
  'content-type': 'application/grpc',
  te: 'trailers',
  connection: 'x-drop',
  'x-drop': '1',
  'keep-alive': 'timeout=5',
  expect: '100-continue',
  host: 'svc:50051',
  'x-weft-target-port': '9999',
  'x-forwarded-for': '10.0.0.9',
  'x-request-id': 'rid-1',
  'grpc-timeout': '1S',
};

test('upstream HTTP/2 headers: pseudo-headers replaced, hop-by-hop and Connection-named dropped, te: trailers kept, forwarding added', () => {
  const out = upstreamH2Headers(received, { direction: 'outbound', clientAddress: '::ffff:10.0.0.1', targetPort: 8080 }, { ':method': 'POST', ':scheme': 'http', ':authority': 'svc:50051', ':path': '/pkg.Svc/Call' });
  assert.deepEqual(out, {
    ':method': 'POST',
    ':scheme': 'http',
    ':authority': 'svc:50051',
    ':path': '/pkg.Svc/Call',
    'content-type': 'application/grpc',
    te: 'trailers',
    'x-forwarded-for': '10.0.0.9, 10.0.0.1',
    'x-request-id': 'rid-1',
    'grpc-timeout': '1S',
    'x-weft-target-port': '8080',
    'x-forwarded-proto': 'http',
  });
});

test('upstream HTTP/2 headers follow the HTTP/1 rules: the same non-pseudo fields as upstreamRequestHeaders, inbound never sends a target port', () => {
  const ctx = { direction: 'inbound' as const, clientAddress: '10.0.0.2', targetPort: 8080 };
  const h2 = upstreamH2Headers(received, ctx, {});
  const h1 = upstreamRequestHeaders(Object.fromEntries(Object.entries(received).filter(([k]) => !k.startsWith(':'))), ctx);
  delete h1.host;
  delete h1.te; // HTTP/1 drops te (hop-by-hop); HTTP/2 keeps `te: trailers`
  const { te, ...rest } = h2;
  assert.equal(te, 'trailers');
  assert.deepEqual(rest, h1);
  assert.equal(h2['x-weft-target-port'], undefined);
});

test('downstream HTTP/2 headers and trailers: pseudo and hop-by-hop dropped, :status set', () => {
  assert.deepEqual(downstreamH2Headers({ ':status': '200', 'content-type': 'application/grpc', connection: 'close', 'transfer-encoding': 'chunked' }, 200), { ':status': 200, 'content-type': 'application/grpc' });
  assert.deepEqual(downstreamH2Headers({ 'grpc-status': '0', 'grpc-message': '' }), { 'grpc-status': '0', 'grpc-message': '' });
});

test('upstream HTTP/2 fields built from the received fields are the same request as upstreamH2Headers gives, both directions, with or without a client address', () => {
  const fields = Object.entries(received).flatMap(([k, v]) => [k, v]);
  const pseudo = { ':method': 'POST', ':scheme': 'http', ':authority': 'svc:50051', ':path': '/pkg.Svc/Call' };
  for (const ctx of [
    { direction: 'outbound' as const, clientAddress: '::ffff:10.0.0.1', targetPort: 8080 },
    { direction: 'inbound' as const, clientAddress: '10.0.0.2', targetPort: 8080 },
    { direction: 'outbound' as const, clientAddress: undefined, targetPort: undefined },
  ]) {
    const flat = upstreamH2Fields(fields, received, ctx, 'POST', 'svc:50051', '/pkg.Svc/Call');
    assert.deepEqual(fieldsToHeaders(flat), upstreamH2Headers(received, ctx, pseudo), JSON.stringify(ctx));
    assert.deepEqual(flat.slice(0, 8), [':method', 'POST', ':scheme', 'http', ':authority', 'svc:50051', ':path', '/pkg.Svc/Call'], 'pseudo-headers first');
  }
  // Without an x-request-id one is added, once.
  const { 'x-request-id': _rid, ...noId } = received;
  const flat = upstreamH2Fields(Object.entries(noId).flatMap(([k, v]) => [k, v]), noId, { direction: 'outbound', clientAddress: '10.0.0.1', targetPort: undefined }, 'GET', 'a', '/');
  assert.equal(flat.filter((f, i) => i % 2 === 0 && f === 'x-request-id').length, 1);
});
