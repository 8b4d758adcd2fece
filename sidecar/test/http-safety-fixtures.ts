/**
 * Builders for the strict-HTTP tests (docs/http-safety.md): a proxy listener with chosen limits and
 * a log that records rejections, raw socket exchanges, and a recording upstream from fixtures.ts.
 */
import net from 'node:net';
import type { Logger } from '@weft/api';
import type { HttpListener, ProxyConfig } from '../src/config';
import type { HttpLimits } from '../src/http-limits';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import { cluster, listener, proxyConfig, route, routeTable, startUpstream, vhost, type Upstream } from './fixtures';

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A logger keeping every line (children included) in `lines`. */
export function recordingLogger(lines: LogLine[] = [], bound: Record<string, unknown> = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      lines.push({ level, msg, fields: { ...bound, ...fields } });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => recordingLogger(lines, { ...bound, ...fields }),
  };
}

export interface StrictProxy {
  readonly port: number;
  readonly log: LogLine[];
  close(): Promise<void>;
}

/** A real `HttpProxyListener` on 127.0.0.1:0 with `limits`, logging into `log`. */
export async function startStrictProxy(config: ProxyConfig, spec: HttpListener, limits: Partial<HttpLimits> = {}): Promise<StrictProxy> {
  const log = recordingLogger();
  const pool = new UpstreamPool();
  const l = new HttpProxyListener(spec, () => config, { log, pool, limits });
  await l.listen();
  return {
    port: l.address()!.port,
    log: log.lines,
    close: async () => {
      l.destroy();
      await l.close();
      pool.destroy();
    },
  };
}

/** An upstream recording every request, and outbound + inbound listeners routing everything to it. */
export async function startGuardedPair(limits: Partial<HttpLimits> = {}): Promise<{
  upstream: Upstream;
  outbound: StrictProxy;
  inbound: StrictProxy;
  close(): Promise<void>;
}> {
  const upstream = await startUpstream('app');
  const config = proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('all', 'app')])])],
    clusters: [cluster('app')],
    endpoints: { app: [upstream.endpoint()] },
  });
  const outbound = await startStrictProxy(config, listener('outbound'), limits);
  const inbound = await startStrictProxy(config, listener('inbound', { direction: 'inbound' }), limits);
  return {
    upstream,
    outbound,
    inbound,
    close: async () => {
      await Promise.all([outbound.close(), inbound.close()]);
      await upstream.close();
    },
  };
}

export interface RawResult {
  /** Everything read, latin1. */
  readonly text: string;
  /** Status codes of every response read, in order. */
  readonly statuses: number[];
  /** The server closed the connection before `waitMs` passed. */
  readonly closed: boolean;
}

/**
 * Writes `bytes` (latin1, so any byte can be sent) on a fresh connection, reads until the server
 * closes it or `waitMs` passes, then closes from this side.
 */
export function rawExchange(port: number, bytes: string | string[], waitMs = 1000, gapMs = 0): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timedOut = false;
    const socket = net.connect(port, '127.0.0.1');
    const parts = Array.isArray(bytes) ? bytes : [bytes];
    socket.on('connect', () => {
      let i = 0;
      const next = (): void => {
        if (i >= parts.length || socket.destroyed) return;
        socket.write(Buffer.from(parts[i++]!, 'latin1'));
        if (gapMs > 0) setTimeout(next, gapMs);
        else next();
      };
      next();
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, waitMs);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ text, statuses, closed: !timedOut });
    });
  });
}
