/**
 * The hand-written OTLP protobuf encoder (trace-encode.ts) read back with the official generated
 * OpenTelemetry protos: short and long, ASCII and non-ASCII strings, integers, nanosecond times,
 * and spans whose length prefix is 1, 2 or 3 bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeAttributes, exportRequestHead, keyBytes, ProtoWriter, resourceAndScope, SPAN } from '../src/trace-encode';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const otlp = require('@opentelemetry/otlp-transformer/build/src/generated/root').opentelemetry.proto;
type Obj = Record<string, any>;

const value = (v: Obj): unknown => v.stringValue ?? (v.intValue != null ? Number(v.intValue) : undefined);

test('spans of every length prefix size, with any string and integer attribute, decode as written', () => {
  const { resource, scope } = resourceAndScope({ 'service.name': 'frontend', 'k8s.pod.name': 'pod-ü' }, 'weft-sidecar');
  const batch = new ProtoWriter(64); // small: growing is exercised too
  const fixed = encodeAttributes({ 'weft.listener': 'virtualOutbound', 'network.peer.port': 15006, skipped: undefined });
  const cases = [
    { name: 'a', attrs: {} },
    { name: 'GET backend', attrs: { 'user_agent.original': 'x'.repeat(300), 'url.path': '/é/日本/😀', 'http.response.status_code': 200 } },
    { name: 'b'.repeat(70), attrs: { 'weft.request_id': 'y'.repeat(20_000), 'weft.retry.count': 0, big: 2 ** 40 + 7 } },
  ];
  const startMs = 1_763_900_000_123.456;
  for (const [i, c] of cases.entries()) {
    const at = batch.beginLength(2); // ScopeSpans.spans
    batch.hex(SPAN.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    batch.hex(SPAN.spanId, `00f067aa0ba902b${i}`);
    batch.string(SPAN.name, c.name);
    batch.timeNanos(SPAN.start, startMs);
    batch.timeNanos(SPAN.end, startMs + 1.5);
    if (i > 0) batch.raw(fixed);
    for (const [k, v] of Object.entries(c.attrs)) batch.attr(SPAN.attributes, keyBytes(k), v);
    batch.endLength(at);
  }
  const body = Buffer.concat([exportRequestHead(resource, scope, batch.pos), batch.buf.subarray(0, batch.pos)]);
  const msg = otlp.collector.trace.v1.ExportTraceServiceRequest.decode(body);
  assert.equal(msg.resourceSpans.length, 1);
  const rs = msg.resourceSpans[0];
  assert.deepEqual(Object.fromEntries(rs.resource.attributes.map((a: Obj) => [a.key, value(a.value)])), { 'service.name': 'frontend', 'k8s.pod.name': 'pod-ü' });
  assert.equal(rs.scopeSpans[0].scope.name, 'weft-sidecar');
  const spans = rs.scopeSpans[0].spans;
  assert.equal(spans.length, cases.length);
  for (const [i, c] of cases.entries()) {
    const s = spans[i];
    assert.equal(Buffer.from(s.traceId).toString('hex'), '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(Buffer.from(s.spanId).toString('hex'), `00f067aa0ba902b${i}`);
    assert.equal(s.name, c.name);
    assert.equal(BigInt(s.startTimeUnixNano.toString()), 1_763_900_000_123_456_000n);
    assert.equal(BigInt(s.endTimeUnixNano.toString()) - BigInt(s.startTimeUnixNano.toString()), 1_500_000n);
    const attrs = Object.fromEntries(s.attributes.map((a: Obj) => [a.key, value(a.value)]));
    assert.deepEqual(attrs, { ...(i > 0 ? { 'weft.listener': 'virtualOutbound', 'network.peer.port': 15006 } : {}), ...c.attrs });
  }
});
