/**
 * Fixtures of the h2wire tests: a server on the lean layer (`startLeanServer`, an echo/download
 * app), and `RawPeer`, a hand-driven HTTP/2 peer over a real socket that sends whatever frames a
 * test needs (including invalid ones) and records the frames it gets back.
 */
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { HpackEncoder } from '../src/hpack-encoder';
import { HpackDecoder } from '../src/hpack-decoder';
import { H2WireConnection, h2WireOptions, type H2WireEvents, type H2WireOptions } from '../src/h2wire-connection';
import type { H2WireConnectionError } from '../src/h2wire-errors';
import { CLIENT_PREFACE, encodeFrame, encodeSettings, FRAME_GOAWAY, FRAME_HEADERS, FRAME_RST_STREAM, FLAG_END_HEADERS, H2FrameParser } from '../src/h2wire-frame';
import type { H2Fields, H2Stream, H2StreamHandler } from '../src/h2wire-stream';

export const field = (fields: H2Fields, name: string): string | undefined => {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
};

/**
 * The app of the lean test server, by `:path`: `/echo` answers 200 with the request body streamed
 * back (backpressure: the request is paused while the response cannot take more) and trailers
 * `x-bytes` (octets echoed); `/download/N` answers N octets (pattern i & 0xff) after reading the
 * request; anything else 404 without a body.
 */
const app: H2StreamHandler = {
  headers: () => undefined,
  data(s, chunk, end) {
    const st = s.user as { path: string; bytes: number };
    if (st.path === '/echo') {
      st.bytes += chunk.length;
      if (chunk.length > 0 && !s.write(Buffer.from(chunk))) s.pause();
      if (end) s.sendTrailers(['x-bytes', String(st.bytes)]);
    } else if (end) finish(s);
  },
  trailers(s) {
    const st = s.user as { path: string; bytes: number };
    if (st.path === '/echo') s.sendTrailers(['x-bytes', String(st.bytes)]);
    else finish(s);
  },
  reset: () => undefined,
  drain: (s) => s.resume(),
};

function finish(s: H2Stream): void {
  const path = (s.user as { path: string }).path;
  const m = /^\/download\/(\d+)$/.exec(path);
  if (!m) return s.sendHeaders([':status', '404'], true);
  const n = Number(m[1]);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = i & 0xff;
  s.sendHeaders([':status', '200', 'content-length', String(n)]);
  s.end(body);
}

export interface LeanServer {
  readonly port: number;
  readonly connections: H2WireConnection[];
  /** Errors the connections closed with, in order. */
  readonly closeErrors: Array<H2WireConnectionError | undefined>;
  close(): Promise<void>;
}

export async function startLeanServer(h2: Partial<H2WireOptions> = {}, events: H2WireEvents = {}): Promise<LeanServer> {
  const opts = h2WireOptions(h2);
  const connections: H2WireConnection[] = [];
  const closeErrors: Array<H2WireConnectionError | undefined> = [];
  const server = net.createServer((socket) => {
    connections.push(
      new H2WireConnection(socket, 'server', {
        onStream(s, fields, end) {
          s.handler = app;
          s.user = { path: field(fields, ':path') ?? '', bytes: 0 };
          if (field(fields, ':path') === '/echo') s.sendHeaders([':status', '200', 'x-method', field(fields, ':method') ?? '']);
          if (end) app.data(s, Buffer.alloc(0), true);
          events.onStream?.(s, fields, end);
        },
        onClose: (e) => closeErrors.push(e),
      }, opts),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    closeErrors,
    close: async () => {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A hand-driven client: sends raw frames, records what comes back, decodes GOAWAY and RST_STREAM. */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  readonly encoder = new HpackEncoder();
  readonly decoder = new HpackDecoder();
  ended = false;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: net.Socket) {
    const parser = new H2FrameParser((type, flags, streamId, payload) => {
      this.frames.push({ type, flags, streamId, payload: Buffer.from(payload) });
      this.wake();
    }, false);
    parser.maxFrameSize = 1 << 24;
    socket.on('data', (d) => parser.push(d));
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  /** Connects; with `preface` (default) sends the client preface and an empty SETTINGS. */
  static async connect(port: number, preface = true): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const peer = new RawPeer(socket);
    if (preface) peer.send(Buffer.concat([CLIENT_PREFACE, encodeSettings([])]));
    return peer;
  }

  send(buf: Buffer): void {
    this.socket.write(buf);
  }

  frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): void {
    this.send(encodeFrame(type, flags, streamId, payload));
  }

  /** HEADERS (END_HEADERS) for a POST to `path` on `streamId`. */
  request(streamId: number, path = '/echo', endStream = false, extra: H2Fields = []): void {
    const block = this.encoder.encode([':method', 'POST', ':scheme', 'http', ':path', path, ':authority', 'x', ...extra]);
    this.frame(FRAME_HEADERS, FLAG_END_HEADERS | (endStream ? 1 : 0), streamId, block);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The first frame matching `pred`, waiting up to `ms`; undefined if the socket closed or time ran out. */
  async waitFor(pred: (f: RawFrame) => boolean, ms = 5000): Promise<RawFrame | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = this.frames.find(pred);
      if (f || this.ended || Date.now() > deadline) return f;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The GOAWAY received: last stream id, error code, debug text. */
  async goaway(ms = 5000): Promise<{ lastStreamId: number; code: number; debug: string } | undefined> {
    const f = await this.waitFor((x) => x.type === FRAME_GOAWAY, ms);
    return f && { lastStreamId: f.payload.readUInt32BE(0), code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString() };
  }

  async rst(streamId: number, ms = 5000): Promise<number | undefined> {
    const f = await this.waitFor((x) => x.type === FRAME_RST_STREAM && x.streamId === streamId, ms);
    return f?.payload.readUInt32BE(0);
  }

  async closed(ms = 5000): Promise<boolean> {
    await this.waitFor(() => false, ms);
    return this.ended;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
