/**
 * Why a header block could not be decoded (STYLE.md, "Errors"). The HTTP/2 layer turns the code
 * into its answer in one place:
 * - `COMPRESSION_ERROR`: the block is not valid HPACK (RFC 7541). The decoder's dynamic table can no
 *   longer be trusted, so this is a connection error (RFC 9113 §4.3): GOAWAY COMPRESSION_ERROR.
 * - `HEADER_LIST_TOO_LARGE`: the block was valid but its fields passed `maxHeaderListSize` or
 *   `maxHeaderCount`. The whole block was still decoded, so the dynamic table stays in step with the
 *   peer's encoder: the connection goes on and only the stream is refused (431 or RST_STREAM).
 */
import { SidecarError } from './proxy-errors';

export type HpackErrorCode = 'COMPRESSION_ERROR' | 'HEADER_LIST_TOO_LARGE';

export class HpackError extends SidecarError {
  constructor(readonly code: HpackErrorCode, message: string) {
    super(message);
  }
}
