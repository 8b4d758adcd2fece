/**
 * The admission webhooks over HTTPS (port 15017, `--webhook-address`): `POST /inject` (the
 * mutating sidecar injector `sidecar-injector.weft.dev`), `POST /validate` (`validation.weft.dev`)
 * and `GET /healthz`. The logic is webhook-admission.ts; this file is the HTTP edge:
 * - TLS from a provider callback (`() => {key, cert}`), asked again at every new connection: a
 *   renewed serving certificate is used from the next handshake on, without a restart;
 * - bodies bounded (4 MiB by default: 413), request and header timeouts, a bad body answered 400
 *   with one line saying what is wrong (never a crash);
 * - a log line per decision and `weft_webhook_requests_total{webhook,result}` plus the injection
 *   latency histogram `weft_webhook_injection_duration_seconds` on the registry passed in.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@weft/api';
import * as prom from 'prom-client';
import type { InjectionConfig } from './inject-config';
import { AdmissionBodyError } from './inject-errors';
import { parseAdmissionReview, reviewInject, reviewValidate, type AdmissionDecision } from './webhook-admission';

export const DEFAULT_WEBHOOK_ADDRESS = '0.0.0.0:15017';
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface ServingKeyPair {
  /** PEM private key. */
  readonly key: string | Buffer;
  /** PEM certificate chain (leaf first). */
  readonly cert: string | Buffer;
}

export interface WebhookServerOptions {
  /** host:port; port 0 picks one. */
  readonly address: string;
  /** The serving key and certificate; called for every new connection, so it should be cheap (return the same object while unchanged). */
  readonly tls: () => ServingKeyPair;
  /** The InjectionConfig in force (a function, so a reloaded config applies to the next request). */
  readonly injection: InjectionConfig | (() => InjectionConfig);
  readonly metrics: prom.Registry;
  readonly log: Logger;
  readonly maxBodyBytes?: number;
  /** Whole-request deadline (default 10 s, the webhooks' `timeoutSeconds`). */
  readonly requestTimeoutMs?: number;
}

type Webhook = 'inject' | 'validate';

export class WebhookServer {
  private readonly server: Server;
  private readonly requests: prom.Counter<'webhook' | 'result'>;
  private readonly latency: prom.Histogram;
  private current: ServingKeyPair;
  private closing?: Promise<void>;
  port = 0;

  constructor(private readonly opts: WebhookServerOptions) {
    this.current = opts.tls();
    const timeout = opts.requestTimeoutMs ?? 10_000;
    // The request deadline is enforced by a sweep every `connectionsCheckingInterval` (Node's default, 30 s, would let a stalled request outlive it threefold).
    this.server = createServer({ key: this.current.key, cert: this.current.cert, minVersion: 'TLSv1.2', connectionsCheckingInterval: Math.min(1000, timeout) }, (req, res) => this.handle(req, res));
    this.server.requestTimeout = timeout;
    this.server.headersTimeout = Math.min(timeout, 10_000);
    this.server.keepAliveTimeout = 30_000;
    // Before the TLS handshake of each connection: pick up a renewed certificate.
    this.server.prependListener('connection', () => this.refreshTls());
    this.requests = new prom.Counter({
      name: 'weft_webhook_requests_total',
      help: 'Admission webhook requests, by webhook (inject, validate) and result.',
      labelNames: ['webhook', 'result'],
      registers: [opts.metrics],
    });
    this.latency = new prom.Histogram({
      name: 'weft_webhook_injection_duration_seconds',
      help: 'Time to answer a sidecar injection request (parse, inject, patch).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [opts.metrics],
    });
  }

  /** Listens; resolves to the port. */
  listen(): Promise<number> {
    const at = this.opts.address.lastIndexOf(':');
    const host = this.opts.address.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(this.opts.address.slice(at + 1));
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        this.opts.log.info('admission webhooks listening', { address: `${host}:${this.port}`, paths: ['/inject', '/validate', '/healthz'] });
        resolve(this.port);
      });
    });
  }

  /** Stops accepting; requests in flight are answered, idle keep-alive connections closed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    return this.closing;
  }

  /** Closes every connection now. Idempotent. */
  destroy(): void {
    void this.close();
    this.server.closeAllConnections();
  }

  private refreshTls(): void {
    let next: ServingKeyPair;
    try {
      next = this.opts.tls();
    } catch (e) {
      this.opts.log.error('the serving certificate provider failed; keeping the current certificate', { error: e as Error });
      return;
    }
    if (next === this.current || (String(next.key) === String(this.current.key) && String(next.cert) === String(this.current.cert))) return;
    try {
      this.server.setSecureContext({ key: next.key, cert: next.cert, minVersion: 'TLSv1.2' });
      this.current = next;
      this.opts.log.info('webhook serving certificate replaced');
    } catch (e) {
      this.opts.log.error('the new serving certificate does not load; keeping the current one', { error: e as Error });
    }
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'use GET\n', { allow: 'GET' });
      return text(res, 200, 'ok\n');
    }
    const webhook: Webhook | undefined = path === '/inject' ? 'inject' : path === '/validate' ? 'validate' : undefined;
    if (!webhook) return text(res, 404, `no webhook at ${path}: use /inject or /validate\n`);
    if (req.method !== 'POST') {
      this.requests.inc({ webhook, result: 'bad_request' });
      return text(res, 405, 'use POST with an AdmissionReview v1\n', { allow: 'POST' });
    }
    const max = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const tooLarge = (): void => {
      this.requests.inc({ webhook, result: 'too_large' });
      this.opts.log.warn('admission request body too large', { webhook, limit: max });
      // The rest of the body is not read: close the connection after answering.
      text(res, 413, `the body exceeds ${max} bytes\n`, { connection: 'close' });
      req.resume();
    };
    if (Number(req.headers['content-length'] ?? 0) > max) return tooLarge();
    const started = process.hrtime.bigint();
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        return tooLarge();
      }
      chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (over) return;
      let decision: AdmissionDecision;
      try {
        const request = parseAdmissionReview(Buffer.concat(chunks).toString('utf8'));
        decision = webhook === 'inject' ? reviewInject(request, this.injectionConfig()) : reviewValidate(request);
      } catch (e) {
        if (!(e instanceof AdmissionBodyError)) {
          this.opts.log.error('admission review failed', { webhook, error: e as Error });
          this.requests.inc({ webhook, result: 'error' });
          return text(res, 500, `internal error: ${(e as Error).message}\n`);
        }
        this.requests.inc({ webhook, result: 'bad_request' });
        this.opts.log.warn('bad admission request', { webhook, error: e.message });
        return text(res, 400, `bad AdmissionReview: ${e.message}\n`);
      }
      const body = JSON.stringify(decision.review);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      this.requests.inc({ webhook, result: decision.result });
      if (webhook === 'inject') this.latency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      const level = decision.result === 'refused' || decision.result === 'denied' ? 'warn' : decision.result === 'ignored' ? 'debug' : 'info';
      this.opts.log[level](`admission ${webhook}: ${decision.result}`, { object: decision.object, ...(decision.reason ? { reason: decision.reason } : {}) });
    });
  }

  private injectionConfig(): InjectionConfig {
    const c = this.opts.injection;
    return typeof c === 'function' ? c() : c;
  }
}

function text(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}
