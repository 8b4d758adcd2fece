/**
 * Envoy xDS v3 protos, loaded from the copy that ships inside `@grpc/grpc-js-xds` (its `deps/`
 * folder). We never copy protos into this repository: SPEC.md, "xDS".
 *
 * One protobufjs Root (`xdsRoot()`) encodes and decodes both the resources carried in `Any` and
 * the ADS messages themselves (`adsPackageDefinition()`), so the protos are loaded once.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as protobuf from 'protobufjs/light';
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
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  // Authorization: RBAC on inbound HTTP and TCP chains (translate-authz.ts).
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  // TCP: the proxy filter, and the listener filters for original destination, PROXY and detection.
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  // Cluster extensions: load-balancing policies (and TypedStruct for Weft's own), HTTP protocol options.
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'xds/type/v3/typed_struct.proto',
  // Tracing: the HCM's OpenTelemetry provider (docs/tracing.md).
  'envoy/config/trace/v3/opentelemetry.proto',
];

let root: protobuf.Root | undefined;

/** The protobufjs Root for every resource type (loaded once, synchronously). */
export function xdsRoot(): protobuf.Root {
  if (root) return root;
  // The full protobufjs build adds the .proto parser to the light one (same classes); required
  // only here, so a process that never parses .proto text (the sidecar) does not load it.
  require('protobufjs');
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
  compactReflection(r);
  root = r;
  return r;
}

/** Options protobufjs may still read after `resolveAll()` (Field.resolve, Enum aliases). */
const OPTIONS_KEPT = ['packed', 'default', 'proto3_optional', 'allow_alias'];

/**
 * Shrinks a resolved Root without changing what it encodes or decodes (docs/performance.md,
 * memory; about 1.5 MB in every process). Once resolved, encoding and decoding read only names,
 * ids, types and the resolved editions features, so:
 * - Names and type references are copied: protobufjs takes them as substrings of the `.proto`
 *   text, and V8's sliced strings keep that whole text alive (about 1 MB for Envoy's files).
 * - Declared options (validation rules, annotations) are dropped but for the few above; the
 *   resolved features objects, one per object and mostly equal, are shared.
 */
function compactReflection(r: protobuf.Root): void {
  const copy = <T>(v: T): T => (typeof v === 'string' && v.length >= 13 ? (JSON.parse(JSON.stringify(v)) as T) : v);
  const shared = new Map<string, object>();
  type Any = Record<string, any>;
  const visit = (o: Any): void => {
    o.name = copy(o.name);
    o.comment = null;
    o.parsedOptions = null;
    if (o.options) {
      const kept = Object.fromEntries(OPTIONS_KEPT.filter((k) => o.options[k] !== undefined).map((k) => [k, o.options[k]]));
      o.options = Object.keys(kept).length ? kept : undefined;
    }
    if (o._features) {
      const key = JSON.stringify(o._features);
      o._features = shared.get(key) ?? (shared.set(key, Object.freeze({ ...o._features })), shared.get(key));
    }
    if (o instanceof protobuf.Field) {
      o.type = copy(o.type);
      o.extend = copy(o.extend);
    } else if (o instanceof protobuf.OneOf) {
      o.oneof = o.oneof.map(copy);
    } else if (o instanceof protobuf.Enum) {
      for (const id of Object.keys(o.valuesById)) o.valuesById[id as unknown as number] = copy(o.valuesById[id as unknown as number]);
      o.comments = {};
      o.valuesOptions = undefined;
    }
    if (o instanceof protobuf.Type) {
      if (o.reserved) o.reserved = o.reserved.map(copy);
      o.fieldsArray.forEach(visit);
      o.oneofsArray.forEach(visit);
    }
    if (o instanceof protobuf.Namespace) o.nestedArray.forEach(visit);
  };
  visit(r);
}

const ADS_MESSAGES = {
  StreamAggregatedResources: ['envoy.service.discovery.v3.DiscoveryRequest', 'envoy.service.discovery.v3.DiscoveryResponse'],
  DeltaAggregatedResources: ['envoy.service.discovery.v3.DeltaDiscoveryRequest', 'envoy.service.discovery.v3.DeltaDiscoveryResponse'],
} as const;

let definition: grpc.ServiceDefinition | undefined;

/** How messages look to our code: proto field names, enums and 64-bit numbers as strings. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, enums: String, defaults: true, oneofs: true };

function method(name: string, request: string, response: string, from: protobuf.Root = xdsRoot()): grpc.MethodDefinition<object, object> {
  const req = from.lookupType(request);
  const res = from.lookupType(response);
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
    StreamAggregatedResources: method('StreamAggregatedResources', ...ADS_MESSAGES.StreamAggregatedResources),
    DeltaAggregatedResources: method('DeltaAggregatedResources', ...ADS_MESSAGES.DeltaAggregatedResources),
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

/**
 * The client side of an ADS method, encoded as the server's definitions are, with the message
 * types of `from` (the sidecar passes its own `sidecarXdsRoot()`).
 */
export function adsClientCodec(name: keyof typeof ADS_MESSAGES, from: protobuf.Root = xdsRoot()): AdsClientCodec {
  const [request, response] = ADS_MESSAGES[name];
  const m = method(name, request, response, from) as grpc.MethodDefinition<object, Record<string, any>>;
  return { path: m.path, serialize: m.requestSerialize, deserialize: m.responseDeserialize };
}
