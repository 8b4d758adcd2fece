/**
 * The span export queue of one tracer (docs/tracing.md): finished spans are encoded straight into
 * the current batch's buffer (trace-encode.ts) and posted as OTLP/HTTP protobuf, one request at a
 * time, when a batch is full (`MAX_EXPORT_BATCH`) or a second after its first span.
 *
 * Never blocking the data path: at most `MAX_QUEUE_SIZE` spans wait (the batch in flight not
 * counted); beyond, a span is dropped and counted (`weft_trace_spans_dropped_total`). A failed or
 * timed-out export drops its batch, is counted and logged at most once a minute (trace-stats.ts);
 * no export error reaches a request.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { exportRequestHead, ProtoWriter } from './trace-encode';
import { TRACE_STATS } from './trace-stats';

/** At most this many finished spans wait for export; beyond, spans are dropped (and counted). */
export const MAX_QUEUE_SIZE = 2048;
/** Spans per export request. */
export const MAX_EXPORT_BATCH = 512;
/** A batch is sent at the latest this long after its first span. */
export const EXPORT_DELAY_MS = 1000;

interface Batch {
  readonly w: ProtoWriter;
  spans: number;
}

/** A batch's buffer to start with (a proxy span encodes to 0.7–1 KB; the buffer grows if needed). */
const BATCH_BYTES = MAX_EXPORT_BATCH * 1024;

/** One OTLP/HTTP endpoint's queue and sender. */
export class SpanExporter {
  private current: Batch | undefined;
  /** Writers of sent batches, reused (at most one per batch the queue can hold). */
  private readonly spare: ProtoWriter[] = [];
  private readonly full: Batch[] = [];
  private queued = 0;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly agent: http.Agent;
  private readonly url: URL;
  private stopped = false;
  private readonly requests = new Set<http.ClientRequest>();

  constructor(endpoint: string, private readonly timeoutMs: number, private readonly resource: Buffer, private readonly scope: Buffer) {
    this.url = new URL(endpoint);
    this.agent = new (this.url.protocol === 'https:' ? https.Agent : http.Agent)({ keepAlive: true, maxSockets: 1 });
  }

  /**
   * The batch writer to append one span to, or `undefined` when the queue is full (the span is
   * dropped and counted) or the exporter stopped. Call `added()` once the span is written.
   */
  writer(): ProtoWriter | undefined {
    if (this.stopped) return undefined;
    if (this.queued >= MAX_QUEUE_SIZE) {
      TRACE_STATS.dropped();
      return undefined;
    }
    if (!this.current) {
      const w = this.spare.pop() ?? new ProtoWriter(BATCH_BYTES);
      w.pos = 0;
      this.current = { w, spans: 0 };
      this.timer ??= setTimeout(() => this.seal(), EXPORT_DELAY_MS).unref();
    }
    return this.current.w;
  }

  /** One span was appended to the current batch's writer. */
  added(): void {
    this.queued++;
    if (++this.current!.spans >= MAX_EXPORT_BATCH) this.seal();
  }

  /** Ends the current batch and starts sending, unless a send is under way (it continues with the next batch). */
  private seal(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.current && this.current.spans > 0) this.full.push(this.current);
    this.current = undefined;
    if (!this.inFlight && this.full.length) this.inFlight = this.sendAll();
  }

  private async sendAll(): Promise<void> {
    for (let b = this.full.shift(); b; b = this.full.shift()) {
      this.queued -= b.spans;
      try {
        await this.post(exportRequestHead(this.resource, this.scope, b.w.pos), b.w.buf.subarray(0, b.w.pos));
        TRACE_STATS.exported(b.spans);
      } catch (e) {
        TRACE_STATS.exportFailed(b.spans, e);
      }
      if (this.spare.length <= MAX_QUEUE_SIZE / MAX_EXPORT_BATCH) this.spare.push(b.w);
    }
    this.inFlight = undefined;
    if (this.current && !this.timer && !this.stopped) this.timer = setTimeout(() => this.seal(), EXPORT_DELAY_MS).unref();
  }

  /** One POST of `head` + `spans` (the request is settled, and `spans` no longer read, when this resolves or rejects). */
  private post(head: Buffer, spans: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const mod = this.url.protocol === 'https:' ? https : http;
      const req = mod.request(this.url, {
        method: 'POST',
        agent: this.agent,
        headers: { 'content-type': 'application/x-protobuf', 'content-length': head.length + spans.length },
        timeout: this.timeoutMs,
      });
      this.requests.add(req);
      // Settled on 'close' (after the answer or the error), when the request no longer reads `spans`.
      let error: Error | undefined = new Error(`${this.url.href}: connection closed before an answer`);
      req.on('timeout', () => req.destroy(new Error(`no answer from ${this.url.href} within ${this.timeoutMs} ms`)));
      req.on('error', (e) => (error = e));
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => (error = res.statusCode! >= 200 && res.statusCode! < 300 ? undefined : new Error(`${this.url.href} answered ${res.statusCode}`)));
      });
      req.on('close', () => {
        this.requests.delete(req);
        if (error) reject(error);
        else resolve();
      });
      req.write(head);
      req.end(spans);
    });
  }

  /** Sends everything queued now; resolves when the queue is empty (exports that fail are counted, never thrown). */
  async flush(): Promise<void> {
    this.seal();
    while (this.inFlight) await this.inFlight;
  }

  /** Stops taking spans; what is queued gets one last send, bounded by `timeoutMs`; then no socket or timer is held. Idempotent. */
  async shutdown(timeoutMs = 2000): Promise<void> {
    if (this.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref()));
    await Promise.race([this.flush(), limit]);
    clearTimeout(timer);
    this.stopped = true;
    this.full.length = 0;
    this.current = undefined;
    for (const r of this.requests) r.destroy(new Error('tracer shut down'));
    this.agent.destroy();
  }
}
