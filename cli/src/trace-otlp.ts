/**
 * `weft trace`'s OTLP receiver: an HTTP server taking `POST /v1/traces` with OTLP/HTTP protobuf
 * bodies (what the sidecars send), decoded with the OpenTelemetry protos as generated in
 * `@opentelemetry/otlp-transformer`, and a collector that hands over each trace once no span of
 * it arrived for a quiet period (the spans of one trace come from several sidecars, in batches up
 * to a second apart).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ShownSpan } from './trace-waterfall';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Largest export body accepted (a batch of 512 spans is well under 1 MB). */
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const KINDS: ShownSpan['kind'][] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];

let request: { decode(b: Buffer): unknown; toObject(m: unknown, o: Obj): Obj } | undefined;
function exportRequest(): NonNullable<typeof request> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  request ??= require('@opentelemetry/otlp-transformer/build/src/generated/root').opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
  return request!;
}

function attrValue(v: Obj | undefined): string {
  if (!v) return '';
  return String(v.stringValue ?? v.intValue ?? v.doubleValue ?? v.boolValue ?? '');
}

/** The spans of one `ExportTraceServiceRequest` body. Throws on a body that is not one. */
export function decodeTraces(body: Buffer): ShownSpan[] {
  const t = exportRequest();
  const msg = t.toObject(t.decode(body), { longs: String, bytes: Buffer, defaults: false, arrays: true });
  const out: ShownSpan[] = [];
  for (const rs of msg.resourceSpans as Obj[]) {
    const service = attrValue((rs.resource?.attributes ?? []).find((a: Obj) => a.key === 'service.name')?.value) || 'unknown';
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        const attrs = new Map<string, string>((s.attributes ?? []).map((a: Obj) => [a.key, attrValue(a.value)]));
        const error = s.status?.code === 2;
        out.push({
          traceId: Buffer.from(s.traceId ?? []).toString('hex'),
          spanId: Buffer.from(s.spanId ?? []).toString('hex'),
          parentSpanId: Buffer.from(s.parentSpanId ?? []).toString('hex'),
          service,
          name: s.name ?? '',
          kind: KINDS[s.kind ?? 0] ?? 'unspecified',
          startNs: BigInt(s.startTimeUnixNano ?? 0),
          endNs: BigInt(s.endTimeUnixNano ?? 0),
          error,
          status: attrs.get('rpc.grpc.status_code') !== undefined ? `grpc ${attrs.get('rpc.grpc.status_code')}` : attrs.get('http.response.status_code') ?? '',
          note: error ? attrs.get('error.type') ?? s.status?.message ?? '' : '',
          attributes: Object.fromEntries(attrs),
        });
      }
    }
  }
  return out;
}

/** Groups spans by trace and emits a trace once `quietMs` passed without a new span of it. */
export class TraceCollector {
  private readonly traces = new Map<string, { spans: ShownSpan[]; last: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly quietMs: number, private readonly emit: (spans: ShownSpan[]) => void, private readonly only?: string) {
    this.timer = setInterval(() => this.sweep(performance.now()), Math.max(50, Math.min(250, quietMs / 4)));
    this.timer.unref();
  }

  add(spans: readonly ShownSpan[]): void {
    const now = performance.now();
    for (const s of spans) {
      if (this.only && s.traceId !== this.only) continue;
      const t = this.traces.get(s.traceId) ?? { spans: [], last: now };
      t.spans.push(s);
      t.last = now;
      this.traces.set(s.traceId, t);
    }
  }

  /** Emits every trace quiet since `now - quietMs` (all of them with `Infinity`). */
  sweep(now: number): void {
    for (const [id, t] of this.traces) {
      if (now - t.last < this.quietMs) continue;
      this.traces.delete(id);
      this.emit(t.spans);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** A running receiver. */
export interface OtlpReceiver {
  readonly url: string;
  close(): Promise<void>;
  destroy(): void;
}

/**
 * Listens on `host:port` for `POST /v1/traces` (OTLP/HTTP protobuf) and gives each body's spans to
 * `onSpans`. Answers 200 with an empty `ExportTraceServiceResponse`; 400 for a body that does not
 * decode (JSON OTLP is not supported), 404 elsewhere.
 */
export async function startOtlpReceiver(host: string, port: number, onSpans: (spans: ShownSpan[]) => void): Promise<OtlpReceiver> {
  exportRequest(); // fail at start, not on the first export, if the protos are missing
  const server = http.createServer((req, res) => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/v1/traces') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('weft trace receives OTLP/HTTP at POST /v1/traces\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let spans: ShownSpan[];
      try {
        if (String(req.headers['content-type'] ?? '').includes('json')) throw new Error('OTLP/JSON is not supported; send application/x-protobuf');
        spans = decodeTraces(Buffer.concat(chunks));
      } catch (e) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(`${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end();
      onSpans(spans);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.address}:${a.port}/v1/traces`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
    destroy: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}
