/**
 * Failures of the lean HTTP/2 layer (docs/h2-lean.md, "Errors"). Every one carries the RFC 9113 §7
 * error code it is answered with on the wire (`h2Code`) and a stable `code` for logs and callers:
 * - `H2WireConnectionError`: the connection is over: GOAWAY(h2Code) was sent, the socket closed,
 *   every open stream reset with the same code.
 * - `H2WireStreamError`: one stream is over: RST_STREAM(h2Code) was sent or received; the
 *   connection and its other streams go on.
 */
import { SidecarError } from './proxy-errors';

/** RFC 9113 §7 error codes. */
export const H2_NO_ERROR = 0x0;
export const H2_PROTOCOL_ERROR = 0x1;
export const H2_INTERNAL_ERROR = 0x2;
export const H2_FLOW_CONTROL_ERROR = 0x3;
export const H2_SETTINGS_TIMEOUT = 0x4;
export const H2_STREAM_CLOSED = 0x5;
export const H2_FRAME_SIZE_ERROR = 0x6;
export const H2_REFUSED_STREAM = 0x7;
export const H2_CANCEL = 0x8;
export const H2_COMPRESSION_ERROR = 0x9;
export const H2_CONNECT_ERROR = 0xa;
export const H2_ENHANCE_YOUR_CALM = 0xb;
export const H2_INADEQUATE_SECURITY = 0xc;
export const H2_HTTP_1_1_REQUIRED = 0xd;

const NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
];

/** `PROTOCOL_ERROR` for 0x1; unknown codes as `0x..` (RFC 9113 §7: treat as INTERNAL_ERROR, name kept). */
export function h2ErrorName(code: number): string {
  return NAMES[code] ?? `0x${code.toString(16)}`;
}

/** What both errors carry; `what` names the connection or the stream in the message. */
abstract class H2WireError extends SidecarError {
  constructor(
    what: 'connection' | 'stream',
    readonly reason: string,
    readonly h2Code: number,
    message: string,
    readonly remote: boolean,
  ) {
    const how = what === 'connection' ? (remote ? 'closed by peer' : 'error') : remote ? 'reset by peer' : 'reset';
    super(`http/2 ${what} ${how} (${h2ErrorName(h2Code)}, ${reason}): ${message}`);
  }
}

/**
 * Why the connection ended. `reason` is stable and names the rule (`bad-preface`, `rapid-reset`,
 * `frame-size`, ...: docs/h2-lean.md lists them); `remote` is true when the peer sent GOAWAY (or
 * closed the socket) rather than this side.
 */
export class H2WireConnectionError extends H2WireError {
  readonly code = 'H2_CONNECTION_ERROR';
  constructor(reason: string, h2Code: number, message: string, remote = false) {
    super('connection', reason, h2Code, message, remote);
  }
}

/** Why one stream ended early: RST_STREAM(h2Code) sent (`remote` false) or received (true). */
export class H2WireStreamError extends H2WireError {
  readonly code = 'H2_STREAM_ERROR';
  constructor(reason: string, h2Code: number, message: string, remote = false) {
    super('stream', reason, h2Code, message, remote);
  }
}
