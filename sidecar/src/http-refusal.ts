/**
 * How a refused request is answered on a connection that may carry other requests (pipelining):
 * shared by both HTTP/1.1 servers — the proxy listeners' (server-http1.ts) and `http.Server` for
 * the admin and health ports (server-lifecycle.ts). The connection always closes afterwards: what
 * follows a refused request on the wire cannot be trusted to start where we think it does.
 */
import type { Socket } from 'node:net';
import type { DownstreamResponse } from './http1-message';
import { rawErrorResponse, respondAndClose } from './http-strict';
import type { DownstreamProtocolError } from './proxy-errors';

/**
 * Answers `error` on `socket`. `inFlight`: the response most recently begun and not yet ended, if
 * any; `behind`: with none in flight, an ended response still waiting to go out, which the answer
 * must follow. Synchronous; the socket is ended or destroyed, now or after those responses.
 */
export function answerRefusal(error: DownstreamProtocolError, socket: Socket, inFlight: DownstreamResponse | undefined, behind?: DownstreamResponse): void {
  const answer = (): void => {
    if (socket.writable && !socket.writableEnded) socket.end(rawErrorResponse(error), () => socket.destroy());
    else socket.destroy();
  };
  if (!inFlight) {
    if (behind && !behind.writableFinished) behind.once('finish', answer);
    else answer();
  } else if (!inFlight.headersSent && !inFlight.req.complete) {
    // The error lies in the body of the request being served: it is that request's answer, sent
    // through its response so it keeps its place behind earlier pipelined responses. The handler,
    // finding the response ended, forwards nothing.
    respondAndClose(inFlight, error);
  } else if (inFlight.req.complete) {
    // The error belongs to a later pipelined request: answer once the responses before it are out.
    inFlight.once('finish', answer);
    inFlight.once('close', () => {
      if (!inFlight.writableFinished) socket.destroy();
    });
  } else {
    // Mid-response to the very request that failed: no status can be sent any more.
    socket.destroy();
  }
}
