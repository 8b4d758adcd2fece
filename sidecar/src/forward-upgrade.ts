/**
 * The connect stage for an HTTP/1.1 `Upgrade` request (WebSocket and other protocols): forwards
 * the request with its upgrade headers on a fresh upstream connection (never pooled, never
 * retried) and, when the upstream answers `101 Switching Protocols`, relays the 101 and then pipes
 * the two sockets both ways until either side closes. Any other answer is passed back as a normal
 * response, after which the client connection is closed (it was handed over by the HTTP server).
 *
 * Timers: the cluster connect timeout, and the route timeout until the upstream's answer; once
 * tunnelled, only the listener's idle timeout (no byte either way) bounds the tunnel.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { DownstreamRequest, DownstreamResponse } from './http1-message';
import type { Socket } from 'node:net';
import type { ForwardOutcome } from './forward-http';
import type { ListenerDirection } from './config';
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers-http';
import type { UpstreamPick } from './proxy-snapshot';
import { callResult } from './proxy-stages';
import { HttpProxyError, UpstreamConnectError, UpstreamResetError, UpstreamTimeoutError } from './proxy-errors';

export interface UpgradeTarget {
  readonly address: string;
  readonly port: number;
  /** Upstream headers with `connection: upgrade` and `upgrade` restored (`upgradeRequestHeaders`). */
  readonly headers: OutgoingHttpHeaders;
  readonly path: string;
  readonly connectTimeoutMs: number;
  /** Bounds the wait for the upstream's answer; 0: none. */
  readonly timeoutMs: number;
  /** A tunnel with no byte either way for this long is closed; 0: none. */
  readonly idleTimeoutMs: number;
  /** Opens the upstream connection (mesh mTLS where the endpoint has it); absent: plain TCP. */
  readonly connect?: () => { readonly socket: Socket; readonly secure: boolean };
}

/** Response headers that describe one connection and are not relayed with a 101. */
const DROP_ON_101 = new Set(['keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'content-length']);

/**
 * `socket` is the client connection (handed over by the HTTP server), `head` the bytes the client
 * sent after the request head, `res` a response bound to `socket` for non-101 answers and errors.
 * `onAnswer` is called when the upstream's status arrives; `done` exactly once, when the exchange
 * (the tunnel, or the plain response) is over. On an error outcome before any answer nothing has
 * been written: the caller answers through `res`.
 */
export function forwardUpgrade(
  req: DownstreamRequest,
  socket: Socket,
  head: Buffer,
  res: DownstreamResponse,
  target: UpgradeTarget,
  onAnswer: (status: number) => void,
  done: (outcome: ForwardOutcome) => void,
): void {
  let settled = false;
  let connected = false;
  let answered = false;
  const finish = (outcome: ForwardOutcome): void => {
    if (settled) return;
    settled = true;
    clearTimeout(routeTimer);
    clearTimeout(connectTimer);
    done(outcome);
  };
  // A connection of its own either way: `createConnection` (used only without an agent), else a
  // throwaway agent.
  let secure = false;
  const connect = target.connect;
  const up = http.request({
    host: target.address, port: target.port, method: req.method, path: target.path, headers: target.headers,
    ...(connect ? { createConnection: () => { const o = connect(); secure = o.secure; return o.socket; } } : { agent: false }),
  });
  const routeTimer = target.timeoutMs > 0 ? setTimeout(() => fail(new UpstreamTimeoutError()), target.timeoutMs) : undefined;
  let connectTimer: NodeJS.Timeout | undefined;
  const fail = (error: HttpProxyError): void => {
    if (settled || answered) return;
    up.destroy();
    finish({ kind: 'error', error });
  };
  res.on('close', () => {
    if (!answered) {
      up.destroy();
      finish({ kind: 'downstream-closed' });
    }
  });

  up.on('socket', (s: Socket) => {
    if (target.connectTimeoutMs > 0) {
      connectTimer = setTimeout(() => fail(new UpstreamConnectError({ cause: new Error(`connect timeout after ${target.connectTimeoutMs} ms`) })), target.connectTimeoutMs);
    }
    s.once(secure ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(connectTimer);
    });
  });
  up.on('error', (err) => fail(connected ? new UpstreamResetError({ cause: err }) : new UpstreamConnectError({ cause: err })));

  // A non-101 answer: a normal response; the client connection closes after it.
  up.on('response', (ures: IncomingMessage) => {
    if (settled) return void ures.resume();
    answered = true;
    clearTimeout(routeTimer);
    const status = ures.statusCode ?? 502;
    onAnswer(status);
    res.shouldKeepAlive = false;
    if (ures.statusMessage) res.writeHead(status, ures.statusMessage, downstreamResponseHeaders(ures.headers));
    else res.writeHead(status, downstreamResponseHeaders(ures.headers));
    ures.on('error', () => undefined);
    ures.on('close', () => {
      if (!ures.complete) {
        socket.destroy();
        finish({ kind: 'error', error: new UpstreamResetError() });
      }
    });
    res.once('finish', () => finish({ kind: 'response', status }));
    ures.on('data', (chunk: Buffer) => {
      if (!res.write(chunk)) {
        ures.pause();
        res.once('drain', () => ures.resume());
      }
    });
    ures.on('end', () => res.end());
  });

  // 101: relay it, then splice the sockets.
  up.on('upgrade', (ures: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
    upSocket.on('error', () => undefined);
    if (settled) return void upSocket.destroy();
    answered = true;
    clearTimeout(routeTimer);
    onAnswer(101);
    // From here the socket is the tunnel's: `res` is never written.
    let raw = `HTTP/1.1 101 ${ures.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < ures.rawHeaders.length; i += 2) {
      if (!DROP_ON_101.has(ures.rawHeaders[i]!.toLowerCase())) raw += `${ures.rawHeaders[i]}: ${ures.rawHeaders[i + 1]}\r\n`;
    }
    socket.write(raw + '\r\n');
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    const close = (): void => {
      socket.destroy();
      upSocket.destroy();
      finish({ kind: 'response', status: 101 });
    };
    for (const s of [socket, upSocket]) {
      s.once('close', close);
      s.once('error', close);
      if (target.idleTimeoutMs > 0) s.setTimeout(target.idleTimeoutMs, close);
    }
    socket.pipe(upSocket);
    upSocket.pipe(socket);
  });

  up.end();
}

/**
 * The upgrade headers hop-by-hop stripping removed, restored for an upgrade request: `connection:
 * upgrade` and the client's `upgrade` tokens. `h2c` is not restored (Envoy strips it): that
 * request goes upstream as plain HTTP/1.1.
 */
export function upgradeRequestHeaders(upstream: OutgoingHttpHeaders, upgrade: string): OutgoingHttpHeaders {
  const tokens = upgrade.split(',').map((t) => t.trim()).filter((t) => t && t.toLowerCase() !== 'h2c');
  if (!tokens.length) return upstream;
  return { ...upstream, connection: 'upgrade', upgrade: tokens.join(', ') };
}

/** What the upgrade stage needs besides the request: the listener's direction and the timers. */
export interface UpgradeStageContext {
  readonly direction: ListenerDirection;
  readonly connectTimeoutMs: number;
  /** What is left of the route timeout; 0: none. */
  readonly timeoutMs: number;
  /** The listener's idle timeout, which bounds a quiet tunnel. */
  readonly idleTimeoutMs: number;
  /** An absolute-form target's authority: sent as Host instead of the client's. */
  readonly authority?: string | undefined;
}

/**
 * Connect stage for an `Upgrade` request: one attempt to `pick`, then a tunnel (`forwardUpgrade`).
 * The balancer learns from the upstream's answer, not from how long a tunnel stays open; `done`
 * gets the outcome (an error outcome before any answer: nothing was written, the caller answers).
 */
export function upgradeStage(
  req: DownstreamRequest,
  res: DownstreamResponse,
  socket: Socket,
  head: Buffer,
  pick: UpstreamPick,
  path: string,
  ctx: UpgradeStageContext,
  done: (outcome: ForwardOutcome) => void,
): void {
  const headers = upstreamRequestHeaders(req.headers, { direction: ctx.direction, clientAddress: req.socket.remoteAddress, targetPort: pick.endpoint.targetPort });
  if (ctx.authority !== undefined) headers.host = ctx.authority;
  let answered = false;
  forwardUpgrade(
    req,
    socket,
    head,
    res,
    {
      address: pick.endpoint.address,
      port: pick.endpoint.port,
      headers: upgradeRequestHeaders(headers, String(req.headers.upgrade ?? '')),
      path,
      connectTimeoutMs: ctx.connectTimeoutMs,
      timeoutMs: ctx.timeoutMs,
      idleTimeoutMs: ctx.idleTimeoutMs,
      connect: () => pick.upstream.openConnection(),
    },
    (status) => {
      answered = true;
      pick.done({ kind: 'response', status });
    },
    (outcome) => {
      if (!answered) pick.done(callResult(outcome));
      done(outcome);
    },
  );
}
