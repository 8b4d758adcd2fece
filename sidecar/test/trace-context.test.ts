/**
 * The trace context the sidecar reads and writes without the OpenTelemetry SDK (trace-context.ts)
 * decides and parses exactly as the SDK does: its sampler for new traces, its W3C and B3
 * propagators for what a request carries and what goes on to the next hop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ROOT_CONTEXT, trace, TraceFlags, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base';
import { extractParent, newSpanId, newTraceId, propagationHeaders, sampleRoot } from '../src/trace-context';

test('a new trace is sampled exactly when the SDK\'s TraceIdRatioBased sampler samples it, for 20,000 trace ids at each ratio', () => {
  const ids = Array.from({ length: 20_000 }, (_, i) => (i < 4 ? ['ffffffffffffffffffffffffffffffff', '00000000000000000000000000000001', '80000000000000000000000000000000', '0000000000000000ffffffff00000000'][i]! : randomBytes(16).toString('hex')));
  for (const ratio of [0.0001, 0.01, 0.1, 0.25, 0.5, 0.99, 0.999999]) {
    const sdk = new TraceIdRatioBasedSampler(ratio);
    let sampled = 0;
    for (const id of ids) {
      const want = sdk.shouldSample(ROOT_CONTEXT, id).decision === SamplingDecision.RECORD_AND_SAMPLED;
      assert.equal(sampleRoot(id, ratio), want, `ratio ${ratio}, trace id ${id}`);
      if (want) sampled++;
    }
    // And the share sampled is the ratio (a sanity check of the ids, ±5 standard deviations).
    const sd = Math.sqrt(ids.length * ratio * (1 - ratio));
    assert.ok(Math.abs(sampled - ids.length * ratio) <= 5 * sd + 1, `ratio ${ratio}: ${sampled} of ${ids.length}`);
  }
  // 100% samples everything and 0% nothing (Envoy's meaning; the SDK's ratio sampler would skip the one id whose words XOR to 0xffffffff).
  assert.equal(sampleRoot('ffffffff000000000000000000000000', 1), true);
  assert.equal(sampleRoot('00000000000000000000000000000001', 0), false);
});

const GETTER: TextMapGetter<Record<string, string | string[]>> = { keys: (c) => Object.keys(c), get: (c, k) => c[k] };
const W3C = new W3CTraceContextPropagator();
const B3_MULTI = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
const B3_SINGLE = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });

/** What the SDK's propagators (W3C first, else B3) read from `headers`. */
function sdkParent(headers: Record<string, string | string[]>): { traceId: string; spanId: string; sampled: boolean; traceState: string | undefined } | undefined {
  let ctx: Context = W3C.extract(ROOT_CONTEXT, headers, GETTER);
  if (!trace.getSpanContext(ctx)) ctx = B3_MULTI.extract(ROOT_CONTEXT, headers, GETTER);
  const sc = trace.getSpanContext(ctx);
  return sc ? { traceId: sc.traceId, spanId: sc.spanId, sampled: (sc.traceFlags & TraceFlags.SAMPLED) !== 0, traceState: sc.traceState?.serialize() || undefined } : undefined;
}

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

test('the parent a request carries is read as the SDK\'s W3C and B3 propagators read it, valid or not', () => {
  const cases: Record<string, string | string[]>[] = [
    { traceparent: `00-${T}-${S}-01` },
    { traceparent: `00-${T}-${S}-00` },
    { traceparent: `00-${T}-${S}-03`, tracestate: 'vendor=abc,other=x' },
    { traceparent: `00-${T}-${S}-01`, tracestate: ['a=1', 'b=2'] },
    { traceparent: ` 00-${T}-${S}-01 ` },
    { traceparent: `00-${T}-${S}-01 ` },
    { traceparent: `\t00-${T}-${S}-01` },
    { traceparent: `00-${T}-${S}-01x` },
    { traceparent: `00-${T}-${S}-01-` },
    { traceparent: `01-${T}-${S}-01x` },
    { traceparent: `01-${T}-${S}-01-` },
    { traceparent: `01-${T}-${S}-01-extra ` },
    { traceparent: `cc-${T}-${S}-01` },
    { traceparent: `0g-${T}-${S}-01` },
    { traceparent: `00-${T}-${S}-0g` },
    { traceparent: `00-${T}_${S}-01` },
    { traceparent: `00-${T}-${S}` },
    { traceparent: `00-${T.slice(1)}-${S}-01` },
    { traceparent: '' },
    { traceparent: `01-${T}-${S}-01-extra` },
    { traceparent: `00-${T}-${S}-01-extra` },
    { traceparent: `ff-${T}-${S}-01` },
    { traceparent: `00-${'0'.repeat(32)}-${S}-01` },
    { traceparent: `00-${T}-${'0'.repeat(16)}-01` },
    { traceparent: `00-${T.toUpperCase()}-${S}-01` },
    { traceparent: 'garbage', 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' },
    { traceparent: [`00-${T}-${S}-01`, `00-${T}-${S}-00`] },
    { b3: `${T}-${S}-1` },
    { b3: `${T}-${S}-0` },
    { b3: `${T}-${S}-d` },
    { b3: `${T}-${S}` },
    { b3: `${T.slice(16)}-${S}-1` },
    { b3: `${T}-${S}-1-${S}` },
    { b3: 'nonsense', 'x-b3-traceid': T, 'x-b3-spanid': S },
    { b3: '0' },
    { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '1' },
    { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': 'true' },
    { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': '0' },
    { 'x-b3-traceid': T, 'x-b3-spanid': S },
    { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-flags': '1' },
    { 'x-b3-traceid': T, 'x-b3-spanid': S, 'x-b3-sampled': 'maybe' },
    { 'x-b3-traceid': T.slice(16), 'x-b3-spanid': S, 'x-b3-sampled': '1' },
    { 'x-b3-traceid': T, 'x-b3-spanid': 'short' },
    { 'x-b3-spanid': S, 'x-b3-sampled': '1' },
    {},
  ];
  for (const headers of cases) assert.deepEqual(extractParent(headers), sdkParent(headers), JSON.stringify(headers));
});

test('the headers for the next hop are what the SDK\'s propagators write for that span context', () => {
  const setter: TextMapSetter<Record<string, string>> = { set: (c, k, v) => void (c[k] = v) };
  for (const sampled of [true, false]) {
    for (const b3Single of [false, true]) {
      const traceId = newTraceId();
      const spanId = newSpanId();
      const traceState = sampled ? 'vendor=abc' : undefined;
      const ctx = trace.setSpanContext(ROOT_CONTEXT, {
        traceId, spanId, traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
        ...(traceState ? { traceState: new TraceState(traceState) } : {}),
      });
      const want: Record<string, string> = {};
      W3C.inject(ctx, want, setter);
      B3_MULTI.inject(ctx, want, setter);
      if (b3Single) B3_SINGLE.inject(ctx, want, setter);
      const got = propagationHeaders(['host', 'x'], traceId, spanId, sampled, traceState, b3Single).slice(2);
      assert.deepEqual(Object.fromEntries(got.flatMap((v, i) => (i % 2 ? [] : [[v, got[i + 1]!]]))), want);
    }
  }
});

test('new ids are lowercase hex of the W3C lengths, and differ', () => {
  const ids = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const t = newTraceId();
    const s = newSpanId();
    assert.match(t, /^[0-9a-f]{32}$/);
    assert.match(s, /^[0-9a-f]{16}$/);
    ids.add(t).add(s);
  }
  assert.equal(ids.size, 4000);
});
