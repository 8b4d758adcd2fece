/**
 * Trace context at the proxy hop without the OpenTelemetry SDK (docs/tracing.md): the parent a
 * request carries (W3C `traceparent`/`tracestate`, else B3 single or multi header), the head
 * sampling decision, new ids, and the headers for the next hop, all as plain strings. The rules
 * are the SDK's: `W3CTraceContextPropagator` and `B3Propagator` for parsing, `ParentBasedSampler`
 * over `TraceIdRatioBasedSampler` for the decision (trace-context.test.ts compares both).
 *
 * This is everything an unsampled request (the 99% at 1% sampling) costs: no span, context or
 * propagator object, nothing kept after the request.
 */
import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** The trace context a request arrived with (its caller's span). */
export interface ParentContext {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  /** W3C `tracestate` as received (passed on unchanged). */
  readonly traceState: string | undefined;
}

/** The value (0–15) of the lowercase hex digit at `i`, else -1. */
function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
}

/** Whether `s[from, from + n)` is lowercase hex, not all zeros. */
function hexId(s: string, from: number, n: number): boolean {
  let nonZero = false;
  for (let i = from; i < from + n; i++) {
    const v = hexAt(s, i);
    if (v < 0) return false;
    if (v) nonZero = true;
  }
  return nonZero;
}

/**
 * Where a valid `traceparent` starts in `tp` (0, or 1 after one leading whitespace), else
 * `undefined`: the SDK's W3CTraceContextPropagator rule (`^\s?VV-TRACEID-SPANID-FF(-.*)?\s?$`,
 * version not `ff`, ids not all zeros, version 00 with exactly four parts), without a RegExp
 * and its match strings.
 */
function parseTraceparent(tp: string): number | undefined {
  const p = tp.length > 0 && /\s/.test(tp[0]!) ? 1 : 0;
  let end = tp.length;
  if (end - p > 55 && /\s/.test(tp[end - 1]!)) end--;
  if (end - p < 55) return undefined;
  const v0 = hexAt(tp, p);
  const v1 = hexAt(tp, p + 1);
  if (v0 < 0 || v1 < 0 || (v0 === 15 && v1 === 15)) return undefined;
  if (tp[p + 2] !== '-' || tp[p + 35] !== '-' || tp[p + 52] !== '-') return undefined;
  if (!hexId(tp, p + 3, 32) || !hexId(tp, p + 36, 16) || hexAt(tp, p + 53) < 0 || hexAt(tp, p + 54) < 0) return undefined;
  if (end - p === 55) return p;
  // More parts: only for a version other than 00, and only after a '-'.
  return tp[p + 55] === '-' && !(v0 === 0 && v1 === 0) ? p : undefined;
}
// B3 single header (the SDK's B3SinglePropagator).
const B3_SINGLE = /((?:[0-9a-f]{16}){1,2})-([0-9a-f]{16})(?:-([01d](?![0-9a-f])))?(?:-([0-9a-f]{16}))?/;
const TRACE_ID = /^(?![0]{32})[\da-f]{32}$/;
const SPAN_ID = /^(?![0]{16})[\da-f]{16}$/;
const B3_SAMPLED = new Set(['true', 'True', '1']);
const B3_UNSAMPLED = new Set(['false', 'False', '0']);

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/** The parent context of a request: W3C `traceparent` first, else B3 (single, else multi); `undefined` when none is valid. */
export function extractParent(headers: IncomingHttpHeaders): ParentContext | undefined {
  const tp = first(headers.traceparent);
  if (typeof tp === 'string') {
    const p = parseTraceparent(tp);
    if (p !== undefined) {
      const ts = headers.tracestate;
      const traceState = ts === undefined || ts === '' ? undefined : Array.isArray(ts) ? ts.join(',') : ts;
      return { traceId: tp.slice(p + 3, p + 35), spanId: tp.slice(p + 36, p + 52), sampled: (hexAt(tp, p + 54) & 1) === 1, traceState };
    }
  }
  const single = first(headers.b3);
  if (single) {
    const m = B3_SINGLE.exec(single);
    if (!m) return undefined;
    const traceId = m[1]!.length === 32 ? m[1]! : `0000000000000000${m[1]}`;
    if (!TRACE_ID.test(traceId) || !SPAN_ID.test(m[2]!)) return undefined;
    return { traceId, spanId: m[2]!, sampled: m[3] === '1' || m[3] === 'd', traceState: undefined };
  }
  const b3TraceId = first(headers['x-b3-traceid']);
  if (b3TraceId === undefined) return undefined;
  const traceId = b3TraceId.padStart(32, '0');
  const spanId = first(headers['x-b3-spanid']) ?? '';
  const flag = first(headers['x-b3-sampled']);
  let sampled: boolean;
  if (first(headers['x-b3-flags']) === '1' || (flag !== undefined && B3_SAMPLED.has(flag))) sampled = true;
  else if (flag === undefined || B3_UNSAMPLED.has(flag)) sampled = false;
  else return undefined;
  return TRACE_ID.test(traceId) && SPAN_ID.test(spanId) ? { traceId, spanId, sampled, traceState: undefined } : undefined;
}

/**
 * Whether a new trace is sampled: always at 1, never at 0, otherwise exactly the SDK's
 * `TraceIdRatioBasedSampler` (the XOR of the trace id's four 32-bit words below `ratio × 0xffffffff`),
 * so every tracer given the same id and ratio decides the same.
 */
export function sampleRoot(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (!(ratio > 0)) return false;
  let acc = 0;
  for (let i = 0; i < 32; i += 8) {
    let word = 0;
    for (let j = i; j < i + 8; j++) word = (word << 4) | hexAt(traceId, j);
    acc = (acc ^ word) >>> 0;
  }
  return acc < Math.floor(ratio * 0xffffffff);
}

// Ids: random bytes drawn from the CSPRNG a pool at a time (one call per 512 span ids).
const POOL_BYTES = 4096;
let pool: Buffer | undefined; // allocated on first use: an untraced sidecar never makes an id
let poolAt = POOL_BYTES;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > POOL_BYTES) {
      randomFillSync((pool ??= Buffer.allocUnsafe(POOL_BYTES)));
      poolAt = 0;
    }
    const hex = pool!.toString('hex', poolAt, (poolAt += bytes));
    if (bytes === 8 ? hex !== '0000000000000000' : hex !== '00000000000000000000000000000000') return hex; // W3C: all-zero is invalid
  }
}

/** A new 16-byte trace id (32 lowercase hex digits, not all zero). */
export const newTraceId = (): string => randomHex(16);
/** A new 8-byte span id (16 lowercase hex digits, not all zero). */
export const newSpanId = (): string => randomHex(8);

/** Trace-context headers this hop replaces with its own span's (never passed through as received). */
export const PROPAGATION_HEADERS: ReadonlySet<string> = new Set([
  'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags',
]);

/**
 * The headers for the next hop, with this hop's span as parent, pushed onto `out` (name, value…): W3C
 * `traceparent` (and `tracestate` as received) and B3 multi-header always, the B3 single header
 * too when the request came with one — what the SDK's propagators wrote.
 */
export function propagationHeaders(out: string[], traceId: string, spanId: string, sampled: boolean, traceState: string | undefined, b3Single: boolean): string[] {
  out.push('traceparent', `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`);
  if (traceState !== undefined) out.push('tracestate', traceState);
  out.push('x-b3-traceid', traceId, 'x-b3-spanid', spanId, 'x-b3-sampled', sampled ? '1' : '0');
  if (b3Single) out.push('b3', `${traceId}-${spanId}-${sampled ? '1' : '0'}`);
  return out;
}
