/**
 * The ADS gRPC service (`envoy.service.discovery.v3.AggregatedDiscoveryService`): state of the
 * world and delta, one stream object per call. Plaintext on 15010 (local mode and tests); a second
 * instance serves it over TLS on 15012 next to the certificate service (`ca-server.ts`).
 */
import * as grpc from '@grpc/grpc-js';
import { adsPackageDefinition, ADS_SERVICE, routeGrpcLogs, type Logger } from '@weft/api';
import type { AdsHooks, StreamInfo } from './ads-hooks';
import { SotwStream, type SotwRequest, type SotwResponse } from './ads-stream-sotw';
import { DeltaStream, type DeltaRequest, type DeltaResponse } from './ads-stream-delta';

/** Stream ids, unique across servers (15010 and 15012) for logs. */
let seq = 0;

export class AdsServer {
  private readonly server = new grpc.Server({ 'grpc.keepalive_time_ms': 30_000 });
  private readonly streams = new Set<{ end(): void; call: grpc.ServerDuplexStream<unknown, unknown> }>();
  private closed = false;
  port = 0;

  constructor(private readonly hooks: AdsHooks, private readonly log: Logger, private readonly identifier: string) {
    routeGrpcLogs(log);
    const def = adsPackageDefinition()[ADS_SERVICE] as grpc.ServiceDefinition;
    this.server.addService(def, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<SotwRequest, SotwResponse>) => this.serve(call, 'sotw'),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaRequest, DeltaResponse>) => this.serve(call, 'delta'),
    });
  }

  /** Another service on the same server (the certificate service on 15012). */
  addService(def: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
    this.server.addService(def, impl);
  }

  /** Binds `host:port` (port 0 picks one), plaintext unless `credentials` say otherwise. Rejects with the bind error. */
  async listen(address: string, credentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(address, credentials, (err, port) => {
        if (!err) return resolve(port);
        // grpc-js wraps the socket error in a long sentence; keep the part a person needs.
        const m = /listen (E[A-Z]+): ([^,\]]+?)(?: [^ ]+:\d+)?(?:[,\]]|$)/.exec(err.message);
        reject(new Error(m ? `cannot listen on ${address} (xDS): ${m[2]} (${m[1]})` : `cannot listen on ${address} (xDS): ${err.message}`, { cause: err }));
      }));
    return this.port;
  }

  private serve(call: grpc.ServerDuplexStream<any, any>, protocol: 'sotw' | 'delta'): void {
    if (this.closed) {
      // A client reconnecting while we shut down: send it elsewhere at once.
      call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'control plane shutting down' });
      return;
    }
    const info: StreamInfo = { id: ++seq, protocol, peer: call.getPeer() };
    const log = this.log.child({ stream: info.id, protocol, peer: info.peer });
    const write = (r: SotwResponse | DeltaResponse): void => { if (!call.writableEnded) call.write(r); };
    const fail = (message: string): void => {
      log.warn('stream rejected', { reason: message });
      // grpc-js ends a server stream with this status when 'error' is emitted on it.
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: message });
    };
    const stream = protocol === 'sotw'
      ? new SotwStream(info, this.hooks, write, fail, this.identifier)
      : new DeltaStream(info, this.hooks, write, fail, this.identifier);
    const entry = { end: () => stream.end(), call };
    this.streams.add(entry);
    log.debug('stream opened');
    call.on('data', (req) => {
      try {
        stream.handle(req);
      } catch (err) {
        log.error('request failed', { error: err as Error });
        fail(`internal error: ${(err as Error).message}`);
      }
    });
    const done = (): void => {
      if (!this.streams.delete(entry)) return;
      stream.end();
      log.debug('stream closed');
      if (!call.writableEnded) call.end();
    };
    call.on('end', done);
    call.on('error', done);
    call.on('cancelled', done);
    call.on('close', done);
  }

  /**
   * Ends every stream (clients reconnect elsewhere) and stops, waiting at most `graceMs` for
   * calls to finish before cutting them. Idempotent.
   */
  async close(graceMs = 2000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams]) {
      s.end();
      if (!s.call.writableEnded) s.call.end();
    }
    this.streams.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.server.tryShutdown(() => resolve())),
      new Promise<void>((resolve) => (timer = setTimeout(() => {
        this.log.warn('calls still open after the grace period; closing them', { graceMs });
        this.server.forceShutdown();
        resolve();
      }, graceMs))),
    ]);
    clearTimeout(timer);
  }

  destroy(): void {
    this.closed = true;
    for (const s of this.streams) s.end();
    this.streams.clear();
    this.server.forceShutdown();
  }
}
