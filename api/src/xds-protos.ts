/**
 * Envoy xDS v3 protos, loaded from the copy that ships inside `@grpc/grpc-js-xds` (its `deps/`
 * folder). We never copy protos into this repository: SPEC.md, "xDS".
 *
 * One protobufjs Root (`xdsRoot()`) encodes and decodes both the resources carried in `Any` and
 * the ADS messages themselves (`adsPackageDefinition()`), so the protos are loaded once.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as protobuf from 'protobufjs';
import type * as grpc from '@grpc/grpc-js';

/** The folders inside `@grpc/grpc-js-xds/deps` that imports resolve against. */
export function protoIncludeDirs(): string[] {
  const pkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const deps = path.join(pkg, 'deps');
  return [
    path.join(deps, 'envoy-api'),
    path.join(deps, 'xds'),
    path.join(deps, 'googleapis'),
    path.join(deps, 'protoc-gen-validate'),
  ];
}

/** Every proto file a Weft resource may reference. */
export const RESOURCE_PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  // Cluster extensions: load-balancing policies (and TypedStruct for Weft's own), HTTP protocol options.
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'xds/type/v3/typed_struct.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs Root for every resource type (loaded once, synchronously). */
export function xdsRoot(): protobuf.Root {
  if (root) return root;
  const dirs = protoIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target) && fs.existsSync(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    // Well-known types: Any, Duration, Struct... are built into protobufjs (resolved by name);
    // descriptor.proto (imported by the validation annotations) ships as a file beside it.
    const shipped = path.join(path.dirname(require.resolve('protobufjs/package.json')), target);
    return fs.existsSync(shipped) ? shipped : target;
  };
  r.loadSync([...RESOURCE_PROTO_FILES], { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

let definition: grpc.ServiceDefinition | undefined;

/** How messages look to our code: proto field names, enums and 64-bit numbers as strings. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

function method(name: string, request: string, response: string): grpc.MethodDefinition<object, object> {
  const req = xdsRoot().lookupType(request);
  const res = xdsRoot().lookupType(response);
  return {
    path: `/${ADS_SERVICE}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: (o: object) => Buffer.from(req.encode(req.fromObject(o)).finish()),
    requestDeserialize: (b: Buffer) => req.toObject(req.decode(b), TO_OBJECT),
    responseSerialize: (o: object) => Buffer.from(res.encode(res.fromObject(o)).finish()),
    responseDeserialize: (b: Buffer) => res.toObject(res.decode(b), TO_OBJECT),
  };
}

/**
 * The package definition holding `AggregatedDiscoveryService`, built from the same protobufjs
 * Root as the resources (loading the protos once), in the shape `grpc.loadPackageDefinition`
 * and `server.addService` take.
 */
export function adsPackageDefinition(): Record<string, grpc.ServiceDefinition> {
  definition ??= {
    StreamAggregatedResources: method('StreamAggregatedResources', 'envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse'),
    DeltaAggregatedResources: method('DeltaAggregatedResources', 'envoy.service.discovery.v3.DeltaDiscoveryRequest', 'envoy.service.discovery.v3.DeltaDiscoveryResponse'),
  } as unknown as grpc.ServiceDefinition;
  return { [ADS_SERVICE]: definition };
}

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';

/** What a client of one ADS method needs: its path and the message codecs (no gRPC library). */
export interface AdsClientCodec {
  readonly path: string;
  readonly serialize: (request: object) => Buffer;
  readonly deserialize: (response: Buffer) => Record<string, any>;
}

/** The client side of an ADS method, from the same definitions the server uses. */
export function adsClientCodec(name: 'StreamAggregatedResources' | 'DeltaAggregatedResources'): AdsClientCodec {
  const m = (adsPackageDefinition()[ADS_SERVICE] as unknown as Record<string, grpc.MethodDefinition<object, Record<string, any>>>)[name]!;
  return { path: m.path, serialize: m.requestSerialize, deserialize: m.responseDeserialize };
}
