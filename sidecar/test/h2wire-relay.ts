/**
 * A bare HTTP/2 relay on the lean layer, for tests and bench/tools/h2-floor.mjs (not the sidecar):
 * every downstream stream becomes a stream of one upstream h2c connection (reopened when it
 * closes), headers, DATA and trailers passed through with backpressure both ways (a stream whose
 * other side cannot take more is paused), resets passed on.
 */
import net from 'node:net';
import { H2_CANCEL } from '../src/h2wire-errors';
import { H2WireConnection, h2WireOptions, type H2WireOptions } from '../src/h2wire-connection';
import type { H2Stream, H2StreamHandler } from '../src/h2wire-stream';

export interface LeanRelayOptions {
  readonly listenHost: string;
  readonly listenPort: number;
  readonly nextHost: string;
  readonly nextPort: number;
  readonly h2?: Partial<H2WireOptions>;
}

export interface LeanRelay {
  readonly port: number;
  readonly server: net.Server;
  close(): Promise<void>;
}

const peer = (s: H2Stream): H2Stream => s.user as H2Stream;

/** Events of either side, passed to the other (`user` links the pair). */
const pass: H2StreamHandler = {
  headers: (s, fields, end, neverIndexed) => peer(s).sendHeaders(fields, end, neverIndexed),
  data: (s, chunk, end) => {
    const other = peer(s);
    if (end) other.end(chunk);
    else if (!other.write(chunk)) s.pause();
  },
  trailers: (s, fields, neverIndexed) => peer(s).sendTrailers(fields, neverIndexed),
  reset: (s, err) => peer(s).reset(err.h2Code === 0 ? H2_CANCEL : err.h2Code),
  drain: (s) => peer(s).resume(),
};

export async function startLeanRelay(o: LeanRelayOptions): Promise<LeanRelay> {
  const opts = h2WireOptions({ maxConcurrentStreams: 1000, ...o.h2 });
  const sockets = new Set<net.Socket>();
  let upstream: H2WireConnection | undefined;
  const up = (): H2WireConnection => {
    if (upstream?.canRequest) return upstream;
    const socket = net.connect(o.nextPort, o.nextHost);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    upstream = new H2WireConnection(socket, 'client', {}, opts);
    return upstream;
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    new H2WireConnection(socket, 'server', {
      onStream(down, fields, end, neverIndexed) {
        down.handler = pass;
        try {
          down.user = up().request(fields, end, pass, down, neverIndexed);
        } catch {
          down.sendHeaders([':status', '503'], true);
        }
      },
    }, opts);
  });
  await new Promise<void>((resolve) => server.listen(o.listenPort, o.listenHost, resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
