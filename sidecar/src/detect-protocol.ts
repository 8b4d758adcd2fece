/**
 * Protocol detection on a proxy listener's accepted sockets (Envoy's `http_inspector`, linkerd2's
 * `detect`): read the first bytes; if they are the HTTP/2 connection preface (RFC 9113 §3.4,
 * `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, h2c with prior knowledge) the socket is HTTP/2, anything else
 * is HTTP/1. Bytes are compared as they arrive, so an HTTP/1 request is decided on its first byte
 * that differs from the preface (`GET`: the first; `POST`: the second) and never waits for more.
 *
 * The bytes read are put back (`unshift`) before the socket is handed on, so the server that takes
 * it parses the connection from its first byte. A client that sends nothing (or only a prefix of the
 * preface) for `timeoutMs` is closed without a word: nothing was asked, nothing is answered.
 */
import type { Socket } from 'node:net';

export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Default bound on detection: 5 s with no decision closes the connection. */
export const DEFAULT_DETECT_TIMEOUT_MS = 5000;

export type DetectedProtocol = 'http1' | 'http2';

/** How many leading bytes of `data` match the preface; -1 as soon as one differs. */
export function prefaceMatch(data: Buffer): number {
  const n = Math.min(data.length, HTTP2_PREFACE.length);
  for (let i = 0; i < n; i++) if (data[i] !== HTTP2_PREFACE[i]) return -1;
  return n;
}

/**
 * Reads from `socket` until the protocol is known, puts the bytes back and calls `onDetected`
 * (once, synchronously from a `data` event; the socket is paused). Closes the socket on timeout,
 * on end before a decision, or on error; `onDetected` is then never called.
 */
export function detectProtocol(socket: Socket, timeoutMs: number, onDetected: (protocol: DetectedProtocol) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onGone);
    socket.off('error', onGone);
  };
  const onGone = (): void => {
    cleanup();
    socket.destroy();
  };
  const decide = (protocol: DetectedProtocol): void => {
    cleanup();
    socket.pause();
    socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length));
    onDetected(protocol);
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    length += chunk.length;
    const data = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
    const matched = prefaceMatch(data);
    if (matched < 0) decide('http1');
    else if (matched === HTTP2_PREFACE.length) decide('http2');
  };
  const timer = setTimeout(onGone, timeoutMs);
  socket.on('data', onData);
  socket.once('end', onGone);
  socket.once('error', onGone);
}
