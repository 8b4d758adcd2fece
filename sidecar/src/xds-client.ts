/**
 * The sidecar's ADS client: incremental (delta) xDS over one gRPC stream (`grpc-stream-h2.ts`,
 * `node:http2`; no grpc-js in the sidecar), wildcard subscriptions
 * to every type it serves. Each response is validated together with everything already held (the
 * `apply` callback) and then ACKed, or NACKed with the reasons while the last good state stays.
 * While the control plane is away it reconnects with jittered exponential backoff, and on
 * reconnect it tells the new server what it holds (`initial_resource_versions`), so only
 * differences are sent again.
 */
import type { XdsMetrics } from './metrics-xds';
import { adsClientCodec, shortTypeName, sidecarXdsRoot, unpackAny, type AdsClientCodec, type AnyMessage, type Logger } from '@weft/api';
import { GrpcBidiCall, GrpcStatus, type GrpcCallError } from './grpc-stream-h2';

type Obj = Record<string, any>;

/**
 * Largest xDS response accepted. A first delta push carries every cluster a sidecar may reach at
 * once: about 584 bytes per Service, so 10,000 Services in scope are 5.8 MB, over grpc's default
 * 4 MiB (bench/kube-scale.mjs, docs/performance.md "Kubernetes mode at scale"). Envoy sets no
 * limit on its xDS stream; 64 MiB is about 110,000 Services.
 */
export const XDS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface HeldResource {
  readonly version: string;
  readonly resource: Obj;
}

/** Resources held, by type URL, then by name. Replaced, never mutated. */
export type HeldState = ReadonlyMap<string, ReadonlyMap<string, HeldResource>>;

export interface XdsClientOptions {
  readonly address: string;
  readonly nodeId: string;
  /** String node metadata (for example `INTERCEPTION_MODE`). */
  readonly nodeMetadata?: Readonly<Record<string, string>>;
  readonly types: readonly string[];
  readonly log: Logger;
  /**
   * Validates and applies a candidate state. Returns undefined when applied (→ ACK) or the
   * reason it cannot be (→ NACK; the caller must have left its config unchanged).
   */
  readonly apply: (candidate: HeldState, typeUrl: string) => Promise<string | undefined>;
  readonly backoff?: { readonly baseMs: number; readonly maxMs: number };
  /**
   * xDS over TLS (the control plane's 15012): the roots its certificate must chain to, read at
   * each connection (a rotated root file is picked up on the next one). Absent: h2c (15010).
   */
  readonly tls?: () => { readonly ca: string };
  /** xDS state metrics (metrics-xds.ts); absent: not recorded. */
  readonly metrics?: XdsMetrics;
}

type State = 'IDLE' | 'CONNECTING' | 'READY' | 'BACKOFF' | 'CLOSED';

export class XdsClient {
  private held: HeldState = new Map();
  private readonly initial = new Set<string>();
  /** The sidecar's own, smaller set of xDS types (api/src/xds-protos-subset.ts). */
  private readonly codec: AdsClientCodec = adsClientCodec('DeltaAggregatedResources', sidecarXdsRoot());
  private call?: GrpcBidiCall<Obj, Obj>;
  private state: State = 'IDLE';
  private attempt = 0;
  private timer?: NodeJS.Timeout;
  private queue: Promise<void> = Promise.resolve();
  private syncedResolve!: () => void;
  /** Resolves once every subscribed type has had a first response applied. */
  readonly synced = new Promise<void>((r) => (this.syncedResolve = r));
  /** Per type: the version last applied (for metrics and /config_dump). */
  readonly versions = new Map<string, string>();
  readonly nacks = new Map<string, string>();

  constructor(private readonly opts: XdsClientOptions) {}

  get current(): HeldState {
    return this.held;
  }

  start(): void {
    if (this.state === 'IDLE') this.connect();
  }

  private transition(to: State, fields: Record<string, unknown> = {}): void {
    if (this.state === to) return;
    this.opts.log.info(`xds ${this.state} -> ${to}`, { address: this.opts.address, ...fields });
    this.state = to;
    this.opts.metrics?.state(to);
  }

  private connect(): void {
    if (this.state === 'CLOSED') return;
    this.transition('CONNECTING');
    // One HTTP/2 connection per stream: a lost stream is retried on a new connection after the
    // backoff below (keepalive: a PING every 10 s, dropped when unanswered for 5 s).
    let tls: { ca: string } | undefined;
    try {
      tls = this.opts.tls?.();
    } catch (err) {
      this.retryLater(`cannot read the control plane's root certificate: ${(err as Error).message}`);
      return;
    }
    const call = new GrpcBidiCall<Obj, Obj>({
      address: this.opts.address,
      ...(tls ? { tls } : {}),
      path: this.codec.path,
      serialize: this.codec.serialize,
      deserialize: this.codec.deserialize,
      keepaliveMs: 10_000,
      keepaliveTimeoutMs: 5_000,
      maxMessageBytes: XDS_MAX_MESSAGE_BYTES,
    });
    this.call = call;
    call.on('data', (res: Obj) => {
      this.queue = this.queue.then(() => this.onResponse(call, res));
    });
    call.on('error', (err: GrpcCallError) => this.lost(call, err.details || err.message));
    call.on('end', () => this.lost(call, 'stream ended by the control plane'));
    for (const typeUrl of this.opts.types) {
      const have = this.held.get(typeUrl);
      call.write({
        node: {
          id: this.opts.nodeId,
          user_agent_name: 'weft-sidecar',
          metadata: { fields: Object.fromEntries(Object.entries(this.opts.nodeMetadata ?? {}).map(([k, v]) => [k, { stringValue: v }])) },
        },
        type_url: typeUrl,
        resource_names_subscribe: ['*'],
        initial_resource_versions: Object.fromEntries([...(have ?? new Map())].map(([n, r]) => [n, r.version])),
      });
    }
  }

  private lost(call: GrpcBidiCall<Obj, Obj>, reason: string): void {
    if (call !== this.call || this.state === 'CLOSED') return;
    this.call = undefined;
    call.removeAllListeners('data');
    call.cancel();
    this.retryLater(reason);
  }

  private retryLater(reason: string): void {
    const { baseMs, maxMs } = this.opts.backoff ?? { baseMs: 250, maxMs: 5_000 };
    // Equal jitter (between half and all of an exponential ceiling), so a fleet of sidecars does
    // not reconnect in step yet always waits a little.
    const ceiling = Math.min(maxMs, baseMs * 2 ** this.attempt++);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.transition('BACKOFF', { reason, retryInMs: delay });
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private async onResponse(call: GrpcBidiCall<Obj, Obj>, res: Obj): Promise<void> {
    if (call !== this.call) return;
    this.attempt = 0;
    this.transition('READY');
    const typeUrl: string = res.type_url;
    const ack = (error?: string): void => {
      if (call !== this.call || call.writableEnded) return;
      call.write({
        type_url: typeUrl,
        response_nonce: res.nonce,
        ...(error ? { error_detail: { code: GrpcStatus.INVALID_ARGUMENT, message: error } } : {}),
      });
    };
    let next: Map<string, HeldResource>;
    try {
      next = new Map(this.held.get(typeUrl) ?? []);
      for (const name of res.removed_resources ?? []) next.delete(name);
      for (const r of res.resources ?? []) {
        const any = r.resource as AnyMessage;
        if (any.type_url !== typeUrl) throw new Error(`resource ${r.name} has type ${any.type_url}, expected ${typeUrl}`);
        next.set(r.name, { version: r.version, resource: unpackAny(any, sidecarXdsRoot()) });
      }
    } catch (err) {
      return this.reject(typeUrl, res, `cannot decode: ${(err as Error).message}`, ack);
    }
    const candidate = new Map(this.held);
    candidate.set(typeUrl, next);
    const error = await this.opts.apply(candidate, typeUrl);
    if (error) return this.reject(typeUrl, res, error, ack);
    this.held = candidate;
    this.versions.set(typeUrl, res.system_version_info ?? '');
    this.nacks.delete(typeUrl);
    this.opts.metrics?.response(typeUrl, true);
    ack();
    this.opts.log.debug('applied', { type: shortTypeName(typeUrl), version: res.system_version_info, changed: res.resources?.length ?? 0, removed: res.removed_resources?.length ?? 0 });
    this.initial.add(typeUrl);
    if (this.opts.types.every((t) => this.initial.has(t))) this.syncedResolve();
  }

  private reject(typeUrl: string, res: Obj, error: string, ack: (error: string) => void): void {
    this.opts.log.warn('rejected config', { type: shortTypeName(typeUrl), version: res.system_version_info, error });
    this.nacks.set(typeUrl, error);
    this.opts.metrics?.response(typeUrl, false);
    ack(error);
  }

  /** Idempotent. */
  close(): void {
    if (this.state === 'CLOSED') return;
    this.transition('CLOSED');
    if (this.timer) clearTimeout(this.timer);
    this.call?.cancel();
    this.call = undefined;
  }
}
