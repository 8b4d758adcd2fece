/**
 * A request body that can be sent again (FIELD-NOTES 9). The body streams to the current attempt
 * as it arrives — the first attempt never waits for the whole body — while a copy is kept, up to
 * `limit` bytes, for a retry to replay. A body that outgrows the limit is dropped from the buffer
 * at once (memory stays bounded) and is no longer `replayable`: its request is not retried.
 *
 * Backpressure follows the current attempt: the downstream request is paused while the attempt's
 * socket is full, and between attempts (during backoff), and resumed when data may flow again.
 */
/** Where a body comes from: a `Readable`, or the lean server's request (http1-message.ts). */
export interface BodySource {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  once(event: 'end', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** Where an attempt's body goes: a `Writable`, or anything with its `write`/`end`/`'drain'` contract. */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): unknown;
  on(event: 'drain', fn: () => void): unknown;
  off(event: 'drain', fn: () => void): unknown;
}

export class ReplayableBody {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private overflowed = false;
  private ended = false;
  private sink: BodySink | undefined;
  private complete: ((chunks: readonly Buffer[] | undefined) => void)[] = [];
  private readonly onDrain = (): void => {
    if (this.sink) this.source.resume();
  };

  /**
   * Takes over `source` (pauses it until the first `attach`). `limit` 0 keeps nothing. `aborted`,
   * asked when the source ends, tells an end that is really an abort (Node ends an HTTP/2 stream's
   * readable side when the stream is reset): then no sink is ended and the body never completes,
   * so no upstream sees a truncated request as whole.
   */
  constructor(
    private readonly source: BodySource,
    private readonly limit: number,
    aborted?: () => boolean,
  ) {
    source.on('data', (chunk: Buffer) => this.onData(chunk));
    source.once('end', () => {
      if (aborted?.()) return;
      this.ended = true;
      this.sink?.end();
      const waiting = this.complete;
      this.complete = [];
      for (const cb of waiting) cb(this.overflowed ? undefined : this.chunks.slice());
    });
    source.pause();
  }

  /** True while every byte received so far is kept (so far within the limit). */
  get replayable(): boolean {
    return !this.overflowed;
  }

  /** Bytes received and kept (0 once overflowed). */
  get bufferedBytes(): number {
    return this.bytes;
  }

  /**
   * Sends the body to `sink` (an attempt's upstream request): what was kept, then the rest as it
   * arrives, then `end()`. Detaches the previous sink. For a second sink the caller must have
   * checked `replayable`.
   */
  attach(sink: BodySink): void {
    this.detach();
    for (const c of this.chunks) sink.write(c);
    this.sink = sink;
    sink.on('drain', this.onDrain);
    if (this.ended) sink.end();
    else this.source.resume();
  }

  /** Stops feeding the current sink (its attempt failed) and pauses the source. */
  detach(): void {
    if (!this.sink) return;
    this.sink.off('drain', this.onDrain);
    this.sink = undefined;
    if (!this.ended) this.source.pause();
  }

  /**
   * Calls `cb` once the whole body has arrived, with the kept chunks, or `undefined` when the body
   * outgrew the limit. Never called if `release()` comes first. (Mirroring replays the body from here.)
   */
  whenComplete(cb: (chunks: readonly Buffer[] | undefined) => void): void {
    if (this.ended) cb(this.overflowed ? undefined : this.chunks.slice());
    else this.complete.push(cb);
  }

  /** Drops the kept copy (the request is settled). */
  release(): void {
    this.complete = [];
    this.detach();
    this.chunks = [];
    this.bytes = 0;
  }

  private onData(chunk: Buffer): void {
    if (!this.overflowed) {
      if (this.bytes + chunk.length <= this.limit) {
        this.chunks.push(chunk);
        this.bytes += chunk.length;
      } else {
        this.overflowed = true;
        this.chunks = [];
        this.bytes = 0;
      }
    }
    // Without a sink the source is paused; a chunk already in flight is kept above, or, past the
    // limit, lost to every later attempt — which `replayable` now refuses.
    if (this.sink && !this.sink.write(chunk)) this.source.pause();
  }
}
