/**
 * Builders for HTTP/2 and gRPC tests over real sockets: an h2c upstream whose every stream a test
 * handles (gRPC framing helpers included), a one-shot h2 client, and a raw frame-level client for
 * what well-behaved clients never do (Rapid Reset floods, ignoring SETTINGS_MAX_CONCURRENT_STREAMS).
 */
import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import type { Endpoint } from '../src/config';
import { endpoint } from './fixtures';

export interface H2Call {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface H2App {
  readonly port: number;
  /** Every complete request seen (its headers and whole body), in arrival order. */
  readonly calls: H2Call[];
  endpoint(): Endpoint;
  close(): Promise<void>;
}

/**
 * A real h2c server on 127.0.0.1:0. Each stream's body is read in full, then `handler` answers it
 * (`n`: 0-based count of streams so far).
 */
export async function startH2App(handler: (stream: http2.ServerHttp2Stream, call: H2Call, n: number) => void): Promise<H2App> {
  const calls: H2Call[] = [];
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      // Node ends a reset stream's readable side too (after 'aborted'): that is no request.
      if (stream.aborted) return;
      const call = { headers, body: Buffer.concat(chunks) };
      calls.push(call);
      handler(stream, call, calls.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    calls,
    endpoint: () => endpoint('127.0.0.1', port),
    close: () =>
      new Promise((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One gRPC length-prefixed message (uncompressed). */
export function grpcFrame(message: Buffer | string): Buffer {
  const m = Buffer.from(message);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(m.length, 1);
  return Buffer.concat([head, m]);
}

/** The messages of a gRPC body. */
export function grpcMessages(body: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i + 5 <= body.length; ) {
    const n = body.readUInt32BE(i + 1);
    out.push(body.subarray(i + 5, i + 5 + n).toString());
    i += 5 + n;
  }
  return out;
}

/** A gRPC answer: headers, then `messages` (DATA frames), then trailers with `grpcStatus`. */
export function grpcReply(stream: http2.ServerHttp2Stream, grpcStatus: number, messages: string[] = [], message = ''): void {
  if (stream.closed) return;
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(grpcStatus), ...(message ? { 'grpc-message': message } : {}) }));
  for (const m of messages) stream.write(grpcFrame(m));
  stream.end();
}

export interface H2Reply {
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: IncomingHttpHeaders | undefined;
  /** The stream's RST_STREAM code when it was reset (0: ended normally). */
  readonly rstCode: number;
}

/**
 * One request on `session` (or a fresh connection to `port`, closed after). `body` chunks are
 * written `gapMs` apart (0: at once). Resolves when the stream closes, never rejects.
 */
export async function h2Send(
  to: number | http2.ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body: (Buffer | string)[] = [],
  gapMs = 0,
): Promise<H2Reply> {
  const session = typeof to === 'number' ? http2.connect(`http://127.0.0.1:${to}`).on('error', () => undefined) : to;
  try {
    return await new Promise<H2Reply>((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': '/', ...headers });
      let got: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders | undefined;
      const chunks: Buffer[] = [];
      stream.on('error', () => undefined);
      stream.on('response', (h) => (got = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('close', () => resolve({ headers: got, body: Buffer.concat(chunks), trailers, rstCode: stream.rstCode ?? 0 }));
      void (async () => {
        for (const c of body) {
          if (stream.closed) return;
          stream.write(c);
          if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
        }
        if (!stream.closed) stream.end();
      })();
    });
  } finally {
    if (typeof to === 'number') session.close();
  }
}

/** A gRPC unary request's headers for `path` on `authority`. */
export const grpcHeaders = (authority: string, path = '/weft.test.Echo/Unary'): OutgoingHttpHeaders => ({
  ':method': 'POST',
  ':path': path,
  ':authority': authority,
  'content-type': 'application/grpc',
  te: 'trailers',
});

// ---- a raw HTTP/2 client, frame by frame ---------------------------------------------------

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7 } as const;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK for `GET|POST <path>` on `authority`: static-table pseudo-headers, literals without indexing. */
export function requestBlock(authority: string, path = '/', method: 'GET' | 'POST' = 'GET'): Buffer {
  const literal = (index: number, value: string): Buffer => {
    const v = Buffer.from(value);
    if (v.length > 126) throw new Error('short literals only');
    return Buffer.concat([Buffer.from([index, v.length]), v]);
  };
  return Buffer.concat([
    Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x86]), // :method, :scheme http
    path === '/' ? Buffer.from([0x84]) : literal(0x04, path), // :path
    literal(0x01, authority), // :authority
  ]);
}

/** A raw h2c connection: writes frames as told, parses every frame the server sends. */
export class RawH2Client {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly socket: net.Socket;
  private buffered = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 9) {
        const length = this.buffered.readUIntBE(0, 3);
        if (this.buffered.length < 9 + length) break;
        const f: Frame = { type: this.buffered[3]!, flags: this.buffered[4]!, streamId: this.buffered.readUInt32BE(5) & 0x7fffffff, payload: this.buffered.subarray(9, 9 + length) };
        this.buffered = this.buffered.subarray(9 + length);
        this.frames.push(f);
        // The server's SETTINGS are acknowledged, as any client must.
        if (f.type === FRAME.SETTINGS && (f.flags & 1) === 0) this.write(frame(FRAME.SETTINGS, 1, 0));
      }
      const w = this.waiters;
      this.waiters = [];
      for (const cb of w) cb();
    });
    this.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
  }

  write(bytes: Buffer): boolean {
    return this.socket.writable ? this.socket.write(bytes) : false;
  }

  /** Resolves once a frame matching `match` arrived (or rejects after `timeoutMs`). */
  async waitFor(match: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(match);
      if (f) return f;
      if (Date.now() > deadline || this.socket.destroyed) throw new Error(`no such frame (got types ${this.frames.map((x) => x.type).join(',')})`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}
