/** Minimal raw ADS clients for tests: what a proxy we did not write would see on the wire. */
import * as grpc from '@grpc/grpc-js';
import { adsPackageDefinition, TypeUrl } from '@weft/api';

type Obj = Record<string, any>;

function adsClient(address: string): grpc.Client & Obj {
  const pkg = grpc.loadPackageDefinition(adsPackageDefinition()) as Obj;
  const Ctor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService as typeof grpc.Client;
  return new Ctor(address, grpc.credentials.createInsecure()) as grpc.Client & Obj;
}

/** Bytes of each resource, by type then name: compared as base64 strings. */
export type Held = Map<string, Map<string, string>>;

export interface Received {
  typeUrl: string;
  names: string[];
  removed: string[];
}

/** A state-of-the-world client: wildcard CDS and LDS, then EDS and RDS for the names they name. */
export class SotwClient {
  readonly held: Held = new Map();
  readonly log: Received[] = [];
  private readonly client: grpc.Client & Obj;
  private readonly call: grpc.ClientDuplexStream<Obj, Obj>;

  constructor(address: string, nodeId: string, private readonly namesFor: (typeUrl: string, held: Held) => string[] | undefined) {
    this.client = adsClient(address);
    this.call = this.client.StreamAggregatedResources();
    this.call.on('data', (res: Obj) => this.onResponse(res));
    this.call.on('error', () => undefined);
    for (const t of [TypeUrl.Cluster, TypeUrl.Listener]) this.call.write({ node: { id: nodeId }, type_url: t, resource_names: [] });
  }

  private readonly subscribed = new Map<string, string>();

  private onResponse(res: Obj): void {
    const m = new Map<string, string>();
    for (const any of res.resources) m.set(decodeName(res.type_url, any), Buffer.from(any.value).toString('base64'));
    this.held.set(res.type_url, m);
    this.log.push({ typeUrl: res.type_url, names: [...m.keys()], removed: [] });
    this.call.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: this.subscribedNames(res.type_url) });
    for (const t of [TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration]) {
      const names = this.namesFor(t, this.held);
      const key = JSON.stringify(names);
      if (names && this.subscribed.get(t) !== key) {
        this.subscribed.set(t, key);
        this.call.write({ type_url: t, resource_names: names });
      }
    }
  }

  private subscribedNames(t: string): string[] {
    return JSON.parse(this.subscribed.get(t) ?? '[]');
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

/** A delta client with wildcard subscriptions to the four types. */
export class DeltaClient {
  readonly held: Held = new Map();
  readonly log: Received[] = [];
  private readonly client: grpc.Client & Obj;
  private readonly call: grpc.ClientDuplexStream<Obj, Obj>;

  constructor(address: string, nodeId: string) {
    this.client = adsClient(address);
    this.call = this.client.DeltaAggregatedResources();
    this.call.on('data', (res: Obj) => {
      const m = this.held.get(res.type_url) ?? new Map<string, string>();
      for (const r of res.resources) m.set(r.name, Buffer.from(r.resource.value).toString('base64'));
      for (const n of res.removed_resources) m.delete(n);
      this.held.set(res.type_url, m);
      this.log.push({ typeUrl: res.type_url, names: res.resources.map((r: Obj) => r.name), removed: res.removed_resources });
      this.call.write({ type_url: res.type_url, response_nonce: res.nonce });
    });
    this.call.on('error', () => undefined);
    for (const t of [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration]) {
      this.call.write({ node: { id: nodeId }, type_url: t, resource_names_subscribe: ['*'] });
    }
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

function decodeName(typeUrl: string, any: Obj): string {
  // Every Weft resource but ClusterLoadAssignment carries `name` as field 1; a CLA's field 1 is
  // cluster_name. Both are a length-delimited string at the start of the message.
  const buf = Buffer.from(any.value);
  if (buf[0] !== 0x0a) throw new Error(`${typeUrl}: expected field 1 first`);
  let len = 0;
  let shift = 0;
  let i = 1;
  for (;;) {
    const b = buf[i++]!;
    len |= (b & 0x7f) << shift;
    if (!(b & 0x80)) break;
    shift += 7;
  }
  return buf.subarray(i, i + len).toString('utf8');
}
