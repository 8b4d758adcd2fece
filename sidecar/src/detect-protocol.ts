/**
 * Protocol detection on a proxy listener's accepted sockets (Envoy's `http_inspector` and
 * `tls_inspector`, linkerd2's `detect`): read the first bytes and decide what they are.
 *
 * - `sniffProtocol` (listeners with a TCP fallback, docs/protocols.md "Detection"): the HTTP/2
 *   preface (RFC 9113 §3.4, h2c with prior knowledge), an HTTP/1 request line (a method llhttp
 *   knows, then a space), a TLS ClientHello record (`0x16 0x03 0x00..0x04`), or else opaque bytes.
 *   Each is decided at the first byte that rules the others out, so an HTTP/1 client waits for
 *   nothing it does not send at once (`GET `), and a TLS or binary client is decided on its first
 *   bytes.
 * - `detectProtocol` (HTTP-only listeners): the preface or not; anything else is HTTP/1 and goes to
 *   the HTTP/1 parser, which answers what it refuses (docs/http-safety.md).
 *
 * `readFirstBytes` is the reader both use: it never puts bytes back itself, so the caller can hand
 * them on as it needs (unshift for an HTTP parser, write upstream for a TCP proxy).
 */
import { METHODS } from 'node:http';
import type { Socket } from 'node:net';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Default bound on detection: 5 s with no decision closes the connection (HTTP-only listeners). */
export const DEFAULT_DETECT_TIMEOUT_MS = 5000;

export type DetectedProtocol = 'http1' | 'http2';
/** What `sniffProtocol` can tell. */
export type SniffedProtocol = DetectedProtocol | 'tls' | 'opaque';

/** How many leading bytes of `data` match the preface; -1 as soon as one differs. */
export function prefaceMatch(data: Buffer): number {
  const n = Math.min(data.length, HTTP2_PREFACE.length);
  for (let i = 0; i < n; i++) if (data[i] !== HTTP2_PREFACE[i]) return -1;
  return n;
}

const HTTP_METHODS: ReadonlySet<string> = new Set(METHODS);
const LONGEST_METHOD = Math.max(...METHODS.map((m) => m.length));

/**
 * What the first bytes of a connection are, or `undefined` while they could still be more than
 * one thing. Pure.
 */
export function sniffProtocol(data: Buffer): SniffedProtocol | undefined {
  if (data.length === 0) return undefined;
  const preface = prefaceMatch(data);
  if (preface === HTTP2_PREFACE.length) return 'http2';
  if (preface > 0 && preface === data.length) return undefined; // `PRI * HT…` so far
  if (data[0] === 0x16) {
    // A TLS handshake record: content type 22, then the record version 3.x (SSL 3.0 to TLS 1.3's
    // legacy 3.1/3.3). Anything else starting with 0x16 is opaque.
    if (data.length < 3) return data.length === 2 && data[1] !== 0x03 ? 'opaque' : undefined;
    return data[1] === 0x03 && data[2]! <= 0x04 ? 'tls' : 'opaque';
  }
  // An HTTP/1 request line starts with a method token and a space.
  let i = 0;
  while (i < data.length && i <= LONGEST_METHOD && isUpperOrDash(data[i]!)) i++;
  const token = data.toString('latin1', 0, i);
  if (i === data.length) return startsSomeMethod(token) ? undefined : 'opaque';
  return data[i] === 0x20 && HTTP_METHODS.has(token) ? 'http1' : 'opaque';
}

function isUpperOrDash(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || b === 0x2d; // A-Z, '-' (M-SEARCH)
}

function startsSomeMethod(prefix: string): boolean {
  for (const m of HTTP_METHODS) if (m.startsWith(prefix)) return true;
  return false;
}

export type ReadResult<T> =
  /** `decide` answered; the socket is paused and `data` holds every byte read. */
  | { readonly kind: 'decided'; readonly value: T; readonly data: Buffer }
  /** Nothing decided within the time; the socket is paused. */
  | { readonly kind: 'timeout'; readonly data: Buffer }
  /** The client ended its side (FIN) before a decision. */
  | { readonly kind: 'ended'; readonly data: Buffer }
  /** The socket failed (reset); it is destroyed. */
  | { readonly kind: 'error' };

/**
 * Reads from `socket` until `decide(allBytesSoFar)` returns a value, the client ends, it fails, or
 * `timeoutMs` passes; then calls `onResult` once (synchronously from a socket event or the timer).
 * `data` is never put back: the caller owns those bytes.
 */
export function readFirstBytes<T>(socket: Socket, timeoutMs: number, decide: (data: Buffer) => T | undefined, onResult: (result: ReadResult<T>) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const all = (): Buffer => (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
  const finish = (result: ReadResult<T>): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.pause();
    onResult(result);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    length += chunk.length;
    const data = all();
    const value = decide(data);
    if (value !== undefined) finish({ kind: 'decided', value, data });
  };
  const onEnd = (): void => finish({ kind: 'ended', data: all() });
  const onError = (): void => {
    finish({ kind: 'error' });
    socket.destroy();
  };
  const timer = setTimeout(() => finish({ kind: 'timeout', data: all() }), timeoutMs);
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('error', onError);
  socket.resume();
}

/**
 * HTTP-only listeners: reads until the preface is matched or ruled out, puts the bytes back and
 * calls `onDetected` (once, synchronously from a `data` event; the socket is paused). Closes the
 * socket on timeout, on end before a decision, or on error; `onDetected` is then never called.
 */
export function detectProtocol(socket: Socket, timeoutMs: number, onDetected: (protocol: DetectedProtocol) => void): void {
  const decide = (data: Buffer): DetectedProtocol | undefined => {
    const matched = prefaceMatch(data);
    return matched < 0 ? 'http1' : matched === HTTP2_PREFACE.length ? 'http2' : undefined;
  };
  readFirstBytes(socket, timeoutMs, decide, (r) => {
    if (r.kind !== 'decided') return void socket.destroy();
    socket.unshift(r.data);
    onDetected(r.value);
  });
}
