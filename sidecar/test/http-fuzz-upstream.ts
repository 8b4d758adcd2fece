/**
 * The fuzzer's upstream: a raw TCP server (no node:http) that keeps every byte each connection
 * receives, reads them with the reference parser (http-fuzz-ref.ts), and answers each request it can
 * frame with a fixed response carrying `x-fuzz-up: <n>`, so the client can tell an upstream answer
 * from one the sidecar wrote itself. Bytes it cannot frame are recorded as a finding and the
 * connection is closed.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import { parseStream, type RefLimits, type RefMessage } from './http-fuzz-ref';

export interface UpstreamConn {
  readonly id: number;
  bytes: string;
  /** Messages framed so far (each answered). */
  readonly messages: RefMessage[];
  closed: boolean;
  /** Why the reference parser refused these bytes, if it did. */
  unframed?: string;
}

export interface UpstreamMessage {
  readonly conn: UpstreamConn;
  readonly msg: RefMessage;
  /** The `x-fuzz-up` number it was answered with. */
  readonly n: number;
}

/** Upstream-side limits: generous, the sidecar re-frames everything it sends. */
const UPSTREAM_LIMITS: RefLimits = { maxHeaderBytes: 1 << 20, maxHeaderCount: 10_000 };

export class RawUpstream {
  readonly conns: UpstreamConn[] = [];
  /** Every framed request, in arrival order. */
  readonly received: UpstreamMessage[] = [];
  /** Bytes received on any connection; changes whenever anything arrives. */
  totalBytes = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: net.Server;
  private answered = 0;

  private constructor() {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(): Promise<RawUpstream> {
    const up = new RawUpstream();
    await new Promise<void>((resolve) => up.server.listen(0, '127.0.0.1', resolve));
    return up;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Connections holding bytes of a message not (yet) complete, still open. */
  pendingOpen(): UpstreamConn[] {
    return this.conns.filter((c) => !c.closed && !c.unframed && partialBytes(c) > 0);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    const conn: UpstreamConn = { id: this.conns.length, bytes: '', messages: [], closed: false };
    this.conns.push(conn);
    this.sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      conn.closed = true;
      this.sockets.delete(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      conn.bytes += chunk.toString('latin1');
      this.totalBytes += chunk.length;
      const parsed = parseStream(conn.bytes, UPSTREAM_LIMITS);
      for (const msg of parsed.messages.slice(conn.messages.length)) {
        conn.messages.push(msg);
        const n = ++this.answered;
        this.received.push({ conn, msg, n });
        const body = msg.method === 'HEAD' ? '' : 'ok';
        socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-fuzz-up: ${n}\r\n\r\n${body}`);
      }
      if (parsed.end.kind === 'reject') {
        conn.unframed = `${parsed.end.why} at ${parsed.end.at}`;
        socket.destroy();
      }
    });
  }
}

/** Bytes after the last framed message of `conn`. */
export function partialBytes(conn: UpstreamConn): number {
  const last = conn.messages[conn.messages.length - 1];
  return conn.bytes.length - (last ? last.end : 0);
}
