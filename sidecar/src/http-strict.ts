/**
 * Strict HTTP/1.1 request acceptance (docs/http-safety.md): the checks Node's llhttp parser does not
 * make itself, the mapping of its parse errors to responses, and the one counter of rejections.
 *
 * Two ways a request is refused:
 * - llhttp stops parsing (`clientError`): `clientErrorToProxyError` names the failure and
 *   `ManagedHttpServer` writes the raw response and closes the connection;
 * - llhttp accepted it but a proxy must not (`checkRequest`, run first in the request path):
 *   `Transfer-Encoding` other than `chunked` or repeated, Transfer-Encoding on HTTP/1.0, a
 *   missing or repeated Host, too many header fields, a version other than 1.x, any request pipelined
 *   behind a refused one on the same connection. Belt and braces, it re-checks
 *   what llhttp is known to enforce today (Content-Length shape, header characters), so a
 *   relaxed parser (an `--insecure-http-parser` flag, a future Node) cannot silently reopen a hole.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from '@weft/api';
import type { HttpLimits } from './http-limits';
import {
  DownstreamProtocolError,
  HeadersTooLargeError,
  HttpVersionError,
  MalformedRequestError,
  RequestFramingError,
  RequestTimeoutError,
} from './proxy-errors';

/**
 * Rejections so far, by `reason` (a fixed, bounded set), for every sidecar HTTP server in this
 * process. Read by the metrics endpoint (issue 6); tests read it too. Only ever incremented.
 */
export class RejectionCounter {
  private readonly counts = new Map<string, number>();

  inc(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  get(reason: string): number {
    return this.counts.get(reason) ?? 0;
  }

  get total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }

  /** A copy: reason → count. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

export const httpRejections = new RejectionCounter();

/** Counts `error` and logs it at debug with its reason. The single record of every rejection. */
export function recordRejection(log: Logger, error: DownstreamProtocolError, context: Record<string, unknown>): void {
  httpRejections.inc(error.reason);
  log.debug('request rejected', { ...context, status: error.status, code: error.code, reason: error.reason, detail: error.message });
}

// RFC 9110 §5.1 token; §5.5 field-value: VCHAR, obs-text, SP, HTAB — never NUL, CR, LF or other CTLs.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;
const DECIMAL = /^[0-9]{1,15}$/;

/**
 * Connections a refusal was written on (`respondAndClose`). Node's parser has often read the
 * requests pipelined behind a refused one already, and dispatches them while the refusal is still
 * being written: none of them may be forwarded (the bytes after a refusal cannot be trusted).
 */
const refusedConnections = new WeakSet<object>();

/**
 * The request-path checks, in the order a desync matters most. `undefined`: acceptable. Synchronous,
 * one pass over `rawHeaders`; allocation-free for an acceptable request.
 */
export function checkRequest(req: Pick<http.IncomingMessage, 'httpVersion' | 'httpVersionMajor' | 'httpVersionMinor' | 'rawHeaders' | 'socket'>, limits: HttpLimits): DownstreamProtocolError | undefined {
  if (refusedConnections.has(req.socket)) return new MalformedRequestError('after-refusal', 'request after a refused request on this connection');
  if (req.httpVersionMajor !== 1) return new HttpVersionError(req.httpVersion);
  const raw = req.rawHeaders;
  if (raw.length / 2 > limits.maxHeaderCount) {
    return new HeadersTooLargeError('header-count', `more than ${limits.maxHeaderCount} header fields`);
  }
  let contentLengths = 0;
  let transferEncodings = 0;
  let hosts = 0;
  let contentLength = '';
  let transferEncoding = '';
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (!TOKEN.test(name)) return new MalformedRequestError('header-name', 'invalid character in a header name');
    if (BAD_VALUE_CHAR.test(value)) return new MalformedRequestError('header-value', 'invalid character in a header value');
    // Three names matter for framing and routing; compare case-insensitively without allocating.
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      contentLengths++;
      contentLength = value;
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      transferEncodings++;
      transferEncoding = value;
    } else if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
    }
  }
  if (transferEncodings > 0) {
    if (contentLengths > 0) return new RequestFramingError('content-length-with-transfer-encoding', 'content-length with transfer-encoding');
    if (req.httpVersionMinor === 0) return new RequestFramingError('transfer-encoding-http10', 'transfer-encoding in an HTTP/1.0 request');
    if (transferEncodings > 1) return new RequestFramingError('transfer-encoding-repeated', 'repeated transfer-encoding');
    // Only `chunked` alone: any other coding (or a list) is a coding we would have to decode to
    // find the message's end, and parsers disagree on such lists. Coding names are case-insensitive.
    if (transferEncoding.toLowerCase() !== 'chunked') return new RequestFramingError('transfer-encoding-not-chunked', 'transfer-encoding other than chunked');
  }
  if (contentLengths > 1) return new RequestFramingError('content-length-repeated', 'repeated content-length');
  if (contentLengths === 1 && !DECIMAL.test(contentLength)) return new RequestFramingError('content-length-invalid', 'invalid content-length');
  if (hosts > 1) return new MalformedRequestError('host-repeated', 'repeated host');
  if (hosts === 0 && req.httpVersionMinor === 1) return new MalformedRequestError('host-missing', 'missing host');
  return undefined;
}

/**
 * The error for a `clientError` (llhttp gave up, or a server timeout fired), or `undefined` for a
 * transport failure (reset, broken pipe) that is nobody's request to answer or count.
 */
export function clientErrorToProxyError(err: Error & { code?: string; reason?: string }, limits: HttpLimits): DownstreamProtocolError | undefined {
  const code = err.code ?? '';
  const detail = (err.reason ?? 'parse error').toLowerCase();
  const options = { cause: err };
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new HeadersTooLargeError('header-bytes', `request line and headers over ${limits.maxHeaderBytes} bytes`);
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RequestTimeoutError('request-timeout', 'request not received in time');
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return new RequestFramingError(framingReason(code, detail), detail, options);
    case 'HPE_INVALID_CHUNK_SIZE':
      return new RequestFramingError('chunk-size', 'invalid chunk size', options);
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new RequestFramingError('chunk-extensions', 'chunk extensions too large', options);
    case 'HPE_STRICT':
    case 'HPE_CR_EXPECTED':
    case 'HPE_LF_EXPECTED':
      return new MalformedRequestError('line-ending', 'lines must end with CRLF', options);
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_UNEXPECTED_SPACE':
      return new MalformedRequestError('header-syntax', 'invalid header line (characters, folding or whitespace)', options);
    case 'HPE_INVALID_METHOD':
    case 'HPE_INVALID_URL':
    case 'HPE_INVALID_VERSION':
    case 'HPE_INVALID_CONSTANT':
      return new MalformedRequestError('request-line', detail, options);
    case 'HPE_PAUSED_H2_UPGRADE':
      return new HttpVersionError('2.0');
  }
  if (code.startsWith('HPE_')) return new MalformedRequestError('parse-error', detail, options);
  return undefined;
}

function framingReason(code: string, detail: string): string {
  if (detail.includes('transfer-encoding') && detail.includes('content-length')) return 'content-length-with-transfer-encoding';
  if (code === 'HPE_INVALID_TRANSFER_ENCODING') return 'transfer-encoding-not-chunked';
  if (code === 'HPE_UNEXPECTED_CONTENT_LENGTH') return 'content-length-repeated';
  return 'content-length-invalid';
}

/**
 * Answers `error` through `res` (whose headers must not have gone out) with `Connection: close`;
 * Node closes the connection once it is written. For callers outside the listener's `fail()`.
 */
export function respondAndClose(
  res: { shouldKeepAlive: boolean; readonly req: { readonly socket: Socket }; writeHead(status: number, headers: http.OutgoingHttpHeaders): unknown; end(body: string): unknown },
  error: DownstreamProtocolError,
): void {
  refusedConnections.add(res.req.socket);
  res.shouldKeepAlive = false;
  res.writeHead(error.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(error.message), connection: 'close' });
  res.end(error.message);
}

/** The bytes of a complete `Connection: close` response for `error`, for a socket no response owns. */
export function rawErrorResponse(error: DownstreamProtocolError): string {
  const body = error.message;
  return (
    `HTTP/1.1 ${error.status} ${http.STATUS_CODES[error.status] ?? 'Error'}\r\n` +
    'content-type: text/plain\r\n' +
    `content-length: ${Buffer.byteLength(body)}\r\n` +
    'connection: close\r\n\r\n' +
    body
  );
}

/**
 * Whether the request carries an expectation this proxy does not meet: any `Expect` but a single
 * `100-continue` (answered by the server before the body). Checked after the framing and target
 * stages, so it never saves an ambiguous request from its 400.
 */
export function unmetExpectation(raw: readonly string[]): boolean {
  let seen = 0;
  let met = false;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 6 && raw[i]!.toLowerCase() === 'expect') {
      seen++;
      met = raw[i + 1]!.toLowerCase() === '100-continue';
    }
  }
  return seen > 1 || (seen === 1 && !met);
}
